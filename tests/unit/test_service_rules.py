"""The rules of one request, without sockets: CBR, the clock and the observer are the fakes of
tests/fakes.py; the ledger is the real MemoryLedger (or it, failing on demand)."""

from __future__ import annotations

import random

import pytest
from tests.fakes import FakeCbr, FakeClock, FlakyLedger, RecordingObserver, checkpoint

from cbr_checkpointer.credentials import CredentialsError
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
from cbr_checkpointer.service import (
    MIN_CALL_SECONDS,
    RECONCILE_SKEW_SECONDS,
    CheckpointService,
    pinned_request,
)
from cbr_checkpointer.values import replace

NOW = 1_800_000_000.0
PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, safety_margin=5.0)


def body(name: str = "nightly") -> dict[str, object]:
    return {"checkpoint": {"vault_id": VAULT, "parameters": {"name": name}}}


def request(
    key: str = "key-1", *, name: str = "nightly", dry_run: bool = False, name_template: str | None = None
) -> BackupRequest:
    return BackupRequest(
        key, PROJECT, body(name), Trigger("direct", "req-1"), dry_run=dry_run, name_template=name_template
    )


def pinned(name: str = "nightly", *, name_template: str | None = None) -> dict[str, object]:
    """What the first claim of `request(name=name)` pinned."""
    return pinned_request(request(name=name, name_template=name_template))


def with_parameters(*, vault_id: str = VAULT, **parameters: object) -> BackupRequest:
    """request() with its vault or parameters changed."""
    changed = {"checkpoint": {"vault_id": vault_id, "parameters": {"name": "nightly", **parameters}}}
    return replace(request(), body=changed)


def cbr_failure(
    code: str,
    status: int | None,
    *,
    retryable: bool,
    ambiguous: bool = False,
    retry_after: float | None = None,
) -> CbrCallFailed:
    # As the CBR client classifies them: a 429 is the gateway's throttle.
    kind: ErrorKind = "timeout" if status is None else "throttled" if status == 429 else "api"
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
    assert world.stored() == Completed(StoredOutcome("created", checkpoint=outcome.checkpoint), pinned())


def test_given_a_completed_key_when_delivered_again_then_its_result_is_replayed_without_cbr() -> None:
    world = World()
    first = world.service.execute(request(), deadline=NOW + 60)

    again = world.service.execute(request(), deadline=NOW + 60)

    assert (again.kind, again.checkpoint, again.duplicate) == ("created", first.checkpoint, True)
    assert world.cbr.names() == ["create"]


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        (replace(request(), project_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0"), "project_id"),
        (replace(request(), region="ap-southeast-1"), "region"),
        (request(name="weekly"), "name"),
        (request(name="nightly-0102", name_template="nightly-{time:%m%d}"), "name"),
        (with_parameters(vault_id="0e5e7a3c-9d1b-4b8f-a2c4-6d8e0f1a3b5c"), "vault_id"),
        (with_parameters(resources=["6f1e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"]), "resources"),
        (with_parameters(incremental=False), "incremental"),
        (with_parameters(auto_trigger=True), "auto_trigger"),
        (with_parameters(description="another"), "description"),
    ],
)
def test_given_a_completed_key_reused_for_another_request_then_it_is_rejected_without_cbr(
    changed: BackupRequest, field: str
) -> None:
    world = World()
    world.service.execute(request(), deadline=NOW + 60)

    refused = world.service.execute(changed, deadline=NOW + 60)

    assert refused.kind == "rejected"
    assert refused.error is not None
    assert (refused.error.code, refused.error.kind) == ("IdempotencyKeyReused", "validation")
    assert f"differs in {field})" in refused.error.message
    assert world.cbr.names() == ["create"]
    assert isinstance(world.stored(), Completed)  # the first request's result stays


def test_given_a_key_whose_holder_died_reused_for_another_request_then_it_is_rejected_not_sent() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())

    refused = world.service.execute(request(name="weekly"), deadline=NOW + 60)
    resumed = world.service.execute(request(), deadline=NOW + 60)

    assert refused.kind == "rejected"
    assert refused.error is not None
    assert refused.error.code == "IdempotencyKeyReused"
    # The key still waits for its own request, which still reconciles first.
    assert resumed.kind == "created"
    assert world.cbr.names() == ["backups", "create"]


def test_given_a_templated_name_rendered_again_later_then_it_is_the_same_request_replayed() -> None:
    world = World()
    first = world.service.execute(
        request(name="nightly-0101", name_template="nightly-{time:%m%d}"), deadline=NOW + 60
    )

    again = world.service.execute(
        request(name="nightly-0102", name_template="nightly-{time:%m%d}"), deadline=NOW + 60
    )

    assert (again.kind, again.duplicate, again.checkpoint) == ("created", True, first.checkpoint)
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
    # Its holder died.
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())
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
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "created"
    assert world.cbr.names() == ["backups", "create"]


def test_given_a_body_pinned_by_the_first_claim_then_that_body_is_searched_and_sent() -> None:
    world = World()
    first = pinned("manual-0101", name_template="manual-{time:%m%d}")
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=first)

    again = request(name="manual-0102", name_template="manual-{time:%m%d}")
    outcome = world.service.execute(again, deadline=NOW + 60)

    assert world.cbr.calls[0][1]["name"] == "manual-0101"
    assert world.cbr.calls[1][1]["body"] == body("manual-0101")
    assert isinstance(outcome.item, BackupRequest)
    assert outcome.item.name == "manual-0101"


def test_given_backups_whose_names_only_resemble_the_request_then_none_is_adopted() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())
    # The API's name filter may match more than the exact name.
    world.cbr.backups = [backup_of("cp-a", "nightly-2"), backup_of("cp-b", "Nightly"), backup_of("cp-c", "")]

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert world.cbr.names() == ["backups", "create"]
    assert outcome.checkpoint is not None
    assert outcome.checkpoint["id"] not in {"cp-a", "cp-b", "cp-c"}


def test_given_a_checkpoint_of_the_same_name_made_by_another_key_then_it_is_not_adopted() -> None:
    world = World()
    # key-2 gave the same name to the same vault, and made cp-theirs.
    world.cbr.creates = [checkpoint("cp-theirs", PROJECT), checkpoint("cp-ours", PROJECT)]
    world.service.execute(request("key-2"), deadline=NOW + 60)
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())
    world.cbr.backups = [backup_of("cp-theirs")]

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.checkpoint is not None
    assert outcome.checkpoint["id"] == "cp-ours"
    assert world.cbr.names() == ["create", "backups", "create"]


def test_given_two_keys_reconciling_one_checkpoint_then_only_the_first_adopts_it() -> None:
    world = World()
    for key in ("key-1", "key-2"):
        world.ledger.memory.claim(key, now=NOW - 120, lease_until=NOW - 60, request=pinned())
    world.cbr.backups = [backup_of("cp-found"), backup_of("cp-found")]  # one backup per resource

    first = world.service.execute(request("key-1"), deadline=NOW + 60)
    second = world.service.execute(request("key-2"), deadline=NOW + 60)

    assert first.checkpoint is not None
    assert second.checkpoint is not None
    assert first.checkpoint["id"] == "cp-found"
    assert second.checkpoint["id"] != "cp-found"
    assert world.cbr.names() == ["backups", "show", "backups", "create"]


def test_given_the_ledger_down_while_adopting_then_the_request_goes_back_without_creating() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())
    world.cbr.backups = [backup_of("cp-found")]
    world.ledger.down = {"own"}

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 60)

    assert raised.value.info.code == "InternalServerError"
    assert world.cbr.names() == ["backups"]
    assert world.stored() == Claimed(reconcile_since=NOW - 120, request=pinned())


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
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())
    world.cbr.backups = [backup_of("cp-found")]
    world.cbr.status = cbr_failure("BackupService.6217", 404, retryable=False)

    outcome = world.service.execute(request(), deadline=NOW + 60)

    assert outcome.kind == "created"
    assert outcome.checkpoint is not None
    assert (outcome.checkpoint["id"], outcome.checkpoint["status"]) == ("cp-found", "available")


def test_given_cbr_refuses_the_search_then_the_fate_is_unknown_and_the_request_goes_back() -> None:
    world = World()
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned())
    world.cbr.backups = cbr_failure("APIGW.0303", 403, retryable=False)

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 60)

    assert raised.value.info.code == "APIGW.0303"
    assert "create" not in world.cbr.names()
    assert world.stored() == Claimed(reconcile_since=NOW - 120, request=pinned())  # still to reconcile


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
    world.cbr.backups = []
    world.ledger.memory.claim("key-1", now=NOW - 100, lease_until=NOW - 1, request=pinned())

    # Enough time to start; the search for an earlier create then eats into the time left.
    world.cbr.on_call = lambda name: world.clock.advance(1.5) if name == "backups" else None
    world.service.execute(request(), deadline=NOW + POLICY.safety_margin + MIN_CALL_SECONDS + 0.5)

    assert world.cbr.names() == ["backups", "create"]
    assert world.cbr.calls[1][1]["time_left"] == MIN_CALL_SECONDS


def test_given_too_little_time_left_to_start_then_it_goes_back_untouched() -> None:
    world = World()

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + POLICY.safety_margin + MIN_CALL_SECONDS - 0.01)

    assert raised.value.info.code == "NoTimeLeft"
    assert world.cbr.calls == []
    assert world.ledger.calls == []  # not even claimed: a redelivery starts clean


def test_given_a_throttle_on_every_attempt_then_it_keeps_trying_until_the_deadline_not_max_attempts() -> None:
    world = World()
    throttles = 3 * POLICY.max_attempts
    world.cbr.creates = [cbr_failure("APIGW.0308", 429, retryable=True) for _ in range(throttles)]

    outcome = world.service.execute(request(), deadline=NOW + 600)

    assert outcome.kind == "created"
    assert world.cbr.names() == ["create"] * (throttles + 1)


def test_given_throttles_forever_then_the_deadline_still_bounds_the_retries() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("APIGW.0308", 429, retryable=True, retry_after=1.0) for _ in range(100)]

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 30)

    assert raised.value.info.code == "APIGW.0308"
    assert world.clock.now() <= NOW + 30 - POLICY.safety_margin
    assert 10 < len(world.cbr.calls) < 100
    assert world.stored() == Claimed()


def test_given_throttles_between_failures_then_only_the_failures_spend_attempts() -> None:
    world = World()
    failures = [cbr_failure("BackupService.9910", 500, retryable=True) for _ in range(POLICY.max_attempts)]
    throttle = cbr_failure("APIGW.0308", 429, retryable=True)
    world.cbr.creates = [answer for failure in failures for answer in (throttle, failure)]

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 600)

    assert raised.value.info.code == "BackupService.9910"
    assert world.cbr.names() == ["create"] * (2 * POLICY.max_attempts)


def test_given_an_ambiguous_failure_out_of_time_then_the_key_is_released_for_reconciliation() -> None:
    world = World()
    world.cbr.creates = [cbr_failure("ReadTimeout", None, retryable=True, ambiguous=True, retry_after=3.0)]

    with pytest.raises(TransientFailure):
        world.service.execute(request(), deadline=NOW + 7)  # 3 s wait + 5 s margin > 7 s left

    assert world.stored() == Claimed(reconcile_since=NOW, request=pinned())


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


def test_given_the_ledger_down_then_nothing_is_sent_to_cbr_and_the_request_goes_back() -> None:
    world = World()
    world.ledger.down = {"claim"}

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 60)

    assert (raised.value.info.code, raised.value.info.retryable) == ("InternalServerError", True)
    assert isinstance(raised.value.__cause__, LedgerUnavailable)
    assert world.cbr.calls == []


def test_given_the_ledger_refusing_the_release_then_the_request_still_goes_back() -> None:
    world = World()
    world.ledger.down = {"release"}
    world.cbr.creates = [cbr_failure("BackupService.9910", 500, retryable=True) for _ in range(10)]

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 600)

    assert raised.value.info.code == "BackupService.9910"
    assert ("release", "key-1") in world.ledger.calls


def test_given_the_ledger_refusing_the_result_then_it_is_retried_and_the_outcome_answered_anyway() -> None:
    world = World()
    world.ledger.down = {"complete"}

    outcome = world.service.execute(request(), deadline=NOW + 600)

    assert outcome.kind == "created"
    assert world.cbr.names() == ["create"]
    assert world.ledger.calls.count(("complete", "key-1")) == POLICY.max_attempts


def test_given_the_ledger_refusing_the_result_once_then_the_retry_stores_it() -> None:
    world = World()
    world.ledger.fail_next = {"complete": 1}

    outcome = world.service.execute(request(), deadline=NOW + 600)
    again = world.service.execute(request(), deadline=NOW + 600)

    assert (outcome.kind, again.kind, again.duplicate) == ("created", "created", True)
    assert world.cbr.names() == ["create"]


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
    far = replace(request(), region="ap-southeast-1")
    # its holder died
    world.ledger.memory.claim("key-1", now=NOW - 120, lease_until=NOW - 60, request=pinned_request(far))
    world.cbr.backups = [backup_of("cp-found")]
    near = request("key-2")

    world.service.execute(far, deadline=NOW + 60)
    world.service.execute(near, deadline=NOW + 60)

    assert [(name, arguments["region"]) for name, arguments in world.cbr.calls] == [
        ("backups", "ap-southeast-1"),
        ("show", "ap-southeast-1"),
        ("create", None),
    ]


# -- the deployment's own faults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "secret cbr-credentials is not a JSON object",
        "cannot read secret cbr-credentials: AccessDeniedException",
        "cannot read secret cbr-credentials: ResourceNotFoundException",
    ],
)
def test_given_unusable_credentials_then_the_request_goes_back_and_nothing_is_stored(message: str) -> None:
    world = World()
    world.cbr.creates = [CredentialsError(message) for _ in range(POLICY.max_attempts)]

    with pytest.raises(TransientFailure) as raised:
        world.service.execute(request(), deadline=NOW + 600)
    # The secret is fixed: the same key is created, not replayed as a stored failure.
    fixed = world.service.execute(request(), deadline=NOW + 600)

    assert (raised.value.info.kind, raised.value.info.code) == ("auth", "CredentialsUnavailable")
    assert (fixed.kind, fixed.duplicate) == ("created", False)
    assert world.cbr.names() == ["create"] * (POLICY.max_attempts + 1)
