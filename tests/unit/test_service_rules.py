"""The rules of one request, without sockets: CBR, the clock and the observer are the fakes of
tests/fakes.py; the ledger is the real MemoryLedger (or it, failing on demand)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from tests.fakes import FakeCbr, FakeClock, FlakyLedger, RecordingObserver, checkpoint

from cbr_checkpointer.domain import (
    BackupRequest,
    CbrCallFailed,
    Claimed,
    Completed,
    ErrorInfo,
    ErrorKind,
    FieldError,
    LedgerUnavailable,
    Rejected,
    StepDone,
    StoredOutcome,
    TransientFailure,
    Trigger,
)
from cbr_checkpointer.retry import RetryPolicy
from cbr_checkpointer.service import RECONCILE_SKEW_SECONDS, CheckpointService

NOW = 1_800_000_000.0
PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, safety_margin=5.0)


def body(name: str = "nightly") -> dict[str, object]:
    return {"checkpoint": {"vault_id": VAULT, "parameters": {"name": name}}}


def request(key: str = "key-1", *, name: str = "nightly", dry_run: bool = False) -> BackupRequest:
    return BackupRequest(key, PROJECT, body(name), Trigger("direct", "req-1"), dry_run=dry_run)


def cbr_failure(
    code: str,
    status: int | None,
    *,
    retryable: bool,
    ambiguous: bool = False,
    retry_after: float | None = None,
) -> CbrCallFailed:
    kind: ErrorKind = "timeout" if status is None else "api"
    info = ErrorInfo(kind, f"{code} said no", code=code, http_status=status, retryable=retryable)
    return CbrCallFailed(info, retry_after=retry_after, ambiguous=ambiguous)


def backup_of(checkpoint_id: str, name: str = "nightly") -> dict[str, object]:
    return {"checkpoint_id": checkpoint_id, "name": name, "status": "available", "created_at": "2026-11-27"}


class World:
    def __init__(self) -> None:
        self.cbr = FakeCbr()
        self.ledger = FlakyLedger(ttl_seconds=3600)
        self.clock = FakeClock(NOW)
        self.observer = RecordingObserver()
        self.service = CheckpointService(
            self.cbr,
            self.ledger,
            retry=POLICY,
            clock=self.clock,
            rng=random.Random(7),
            observer=self.observer,
        )

    def stored(self, key: str = "key-1") -> object:
        """What the next claim of `key` would find (it takes the key if it is free)."""
        return self.ledger.memory.claim(key, now=self.clock.now(), lease_until=self.clock.now() + 1)


# -- what never reaches CBR ---------------------------------------------------------------------------


def test_given_a_rejected_payload_then_it_is_rejected_without_the_ledger_or_cbr() -> None:
    world = World()
    rejected = Rejected("key-1", Trigger("direct", "r"), (FieldError("vault_id", "required"),), payload={})

    outcome = world.service.execute(rejected, deadline=NOW + 60)

    assert (outcome.kind, outcome.error and outcome.error.code) == ("rejected", "InvalidRequest")
    assert world.cbr.calls == []
    assert world.ledger.calls == []


def test_given_a_dry_run_then_it_is_validated_without_the_ledger_or_cbr() -> None:
    world = World()

    assert world.service.execute(request(dry_run=True), deadline=NOW + 60).kind == "validated"
    assert world.cbr.calls == []
    assert world.ledger.calls == []


# -- one checkpoint per key ---------------------------------------------------------------------------


def test_given_a_free_key_when_executed_then_one_checkpoint_is_created_and_its_result_stored() -> None:
    world = World()
    world.cbr.creates = [checkpoint("cp-1", PROJECT)]

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "created"
    assert outcome.checkpoint is not None
    assert outcome.checkpoint["id"] == "cp-1"
    assert outcome.duplicate is False
    assert world.cbr.names() == ["create"]
    assert world.cbr.calls[0][1]["body"] == body()
    assert world.cbr.calls[0][1]["time_left"] == 60 - POLICY.safety_margin
    assert world.stored() == Completed(StoredOutcome("created", checkpoint=outcome.checkpoint))


def test_given_a_completed_key_when_delivered_again_then_its_result_is_replayed_without_cbr() -> None:
    world = World()
    first = world.service.execute(request(), deadline=NOW + 60)

    again = world.service.execute(request(), deadline=NOW + 60)

    assert (again.kind, again.checkpoint, again.duplicate) == ("created", first.checkpoint, True)
    assert world.cbr.names() == ["create"]


def test_given_a_key_held_by_a_live_invocation_then_the_request_is_handed_back_busy() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW, lease_until=NOW + 100)

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 60)

    assert raised.value.info.code == "InProgress"
    assert raised.value.info.retryable is True
    assert world.cbr.calls == []


# -- reconciliation -----------------------------------------------------------------------------------


def test_given_an_expired_lease_then_cbr_is_searched_and_the_found_checkpoint_is_not_created_again() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=body())  # its holder died
    world.cbr.backups = [backup_of("cp-found")]
    world.cbr.status = "available"

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "created"
    assert outcome.checkpoint is not None
    assert outcome.checkpoint["id"] == "cp-found"
    assert world.cbr.names() == ["backups", "show"]
    filters = world.cbr.calls[0][1]
    assert (filters["vault_id"], filters["name"]) == (VAULT, "nightly")
    assert filters["start_time"] == "2027-01-15T07:53:00Z"  # the dead holder's claim, minus the skew
    assert RECONCILE_SKEW_SECONDS == 300


def test_given_an_expired_lease_and_nothing_in_cbr_then_it_is_created_once() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=body())

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "created"
    assert world.cbr.names() == ["backups", "create"]


def test_given_a_body_pinned_by_the_first_claim_then_that_body_is_searched_and_sent() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=body("manual-0101"))

    outcome = world.service.execute(request(name="manual-0102"), deadline=NOW + 60)

    assert world.cbr.calls[0][1]["name"] == "manual-0101"
    assert world.cbr.calls[1][1]["body"] == body("manual-0101")
    assert isinstance(outcome.item, BackupRequest)
    assert outcome.item.name == "manual-0101"


def test_given_an_ambiguous_create_then_the_retry_searches_before_creating_again() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("ReadTimeout", None, retryable=True, ambiguous=True)]
    world.cbr.backups = [backup_of("cp-made-anyway")]

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.checkpoint is not None
    assert outcome.checkpoint["id"] == "cp-made-anyway"
    assert world.cbr.names() == ["create", "backups", "show"]
    assert world.cbr.calls[1][1]["start_time"] == "2027-01-15T07:55:00Z"  # this claim, minus the skew


def test_given_a_checkpoint_found_that_cbr_will_not_describe_then_it_is_reported_from_its_backup() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=body())
    world.cbr.backups = [backup_of("cp-found")]
    world.cbr.status = cbr_failure("BackupService.6217", 404, retryable=False)

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "created"
    assert outcome.checkpoint is not None
    assert (outcome.checkpoint["id"], outcome.checkpoint["status"]) == ("cp-found", "available")


def test_given_cbr_refuses_the_search_then_the_fate_is_unknown_and_the_request_goes_back() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=body())
    world.cbr.backups = cbr_failure("APIGW.0303", 403, retryable=False)

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 60)

    assert raised.value.info.code == "APIGW.0303"
    assert "create" not in world.cbr.names()
    assert world.stored() == Claimed(reconcile_since=NOW - 120, request=body())  # still to reconcile


# -- retries ------------------------------------------------------------------------------------------


def test_given_a_throttled_create_then_it_waits_at_least_retry_after_and_tries_again() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("APIGW.0308", 429, retryable=True, retry_after=7.0)]

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "created"
    assert world.cbr.names() == ["create", "create"]
    assert world.clock.slept == [7.0]
    assert world.observer.retried == [("key-1", 1, 7.0, "APIGW.0308")]


def test_given_backoff_then_each_wait_is_jittered_within_its_exponential_bound() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("BackupService.9910", 500, retryable=True) for _ in range(3)]

    world.service.execute(request(), deadline=NOW + 600)

    assert len(world.clock.slept) == 3
    for attempt, delay in enumerate(world.clock.slept, start=1):
        assert 0 <= delay <= min(POLICY.max_delay, POLICY.base_delay * 2**attempt)


def test_given_a_create_failing_every_time_then_it_stops_after_max_attempts_and_frees_the_key() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("BackupService.9910", 500, retryable=True) for _ in range(10)]

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 600)

    assert raised.value.info.code == "BackupService.9910"
    assert world.cbr.names() == ["create"] * POLICY.max_attempts
    assert world.stored() == Claimed()  # released clean: nothing was created


def test_given_a_wait_that_would_cross_the_safety_margin_then_it_hands_back_instead_of_sleeping() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("APIGW.0308", 429, retryable=True, retry_after=20.0)]

    with pytest.raises(TransientFailure):
        world.service.execute(request(), deadline=NOW + 24)  # 20 s wait + 5 s margin > 24 s left

    assert world.clock.slept == []
    assert world.cbr.names() == ["create"]


def test_given_little_time_left_then_the_create_still_gets_the_shortest_useful_wait() -> None:
    world = World()

    world.service.execute(request(), deadline=NOW + 3)

    assert world.cbr.calls[0][1]["time_left"] == 1.0


def test_given_an_ambiguous_failure_out_of_time_then_the_key_is_released_for_reconciliation() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("ReadTimeout", None, retryable=True, ambiguous=True, retry_after=1.0)]

    with pytest.raises(TransientFailure):
        world.service.execute(request(), deadline=NOW + 5.5)

    assert world.stored() == Claimed(reconcile_since=NOW, request=body())


# -- permanent failures -------------------------------------------------------------------------------


def test_given_a_permanent_refusal_then_failed_is_stored_and_replayed_without_cbr() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("BackupService.6105", 404, retryable=False)]

    outcome = world.service.execute(request(), deadline=NOW + 60)
    again = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "BackupService.6105"
    assert (again.kind, again.error, again.duplicate) == ("failed", outcome.error, True)
    assert world.cbr.names() == ["create"]


# -- the ledger down, and the observer -----------------------------------------------------------------


def test_given_the_ledger_down_then_nothing_is_sent_to_cbr_and_the_failure_propagates() -> None:
    world = World()
    world.ledger.down = {"claim"}

    with pytest.raises(LedgerUnavailable):
        world.service.execute(request(), deadline=NOW + 60)

    assert world.cbr.calls == []


def test_the_observer_sees_each_request_start_and_finish() -> None:
    world = World()
    world.ledger.memory.claim("busy", now=NOW, lease_until=NOW + 100)

    created = world.service.execute(request(), deadline=NOW + 60)
    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request("busy"), deadline=NOW + 60)

    assert [item.idempotency_key for item in world.observer.started] == ["key-1", "busy"]
    assert [result for _, result in world.observer.finished] == [created, raised.value]


def test_given_a_key_that_holds_a_completion_step_then_it_is_not_replayed_as_an_outcome() -> None:
    # A request key spelled like another request's completion marker ("<key>#watch").
    world = World()
    world.ledger.memory.complete("key-1#watch", StepDone(scheduled=True), now=NOW)

    with pytest.raises(TypeError, match="completion step"):
        world.service.execute(request("key-1#watch"), deadline=NOW + 60)

    assert world.cbr.calls == []


def test_every_cbr_call_for_a_request_goes_to_the_region_it_names() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=body())  # its holder died
    world.cbr.backups = [backup_of("cp-found")]
    far = replace(request(), region="ap-southeast-1")
    near = request("key-2")

    world.service.execute(far, deadline=NOW + 60)
    world.service.execute(near, deadline=NOW + 60)

    assert [(name, arguments["region"]) for name, arguments in world.cbr.calls] == [
        ("backups", "ap-southeast-1"),
        ("show", "ap-southeast-1"),
        ("create", None),
    ]
