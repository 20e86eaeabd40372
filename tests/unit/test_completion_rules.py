"""Completion without sockets: the delay schedule, the ledger keys, and the chain of checks.

CBR, the watch queue and the clock are the fakes of tests/fakes.py; the ledger is the real MemoryLedger.
What CBR's answers mean (completed, failed and why, skipped, deleted, timed out) is tested on its own
in test_checkpoint_verdict.py; here, that each check asks for it, acts on it and ends once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.fakes import FakeCbr, FakeClock, FakeWatchQueue, FlakyLedger, backup_task

from cbr_checkpointer.cbr import CbrError
from cbr_checkpointer.completion import (
    TASKS_SKEW_SECONDS,
    CompletionService,
    check_delay,
    check_key,
    completion_key,
    scheduled_key,
)
from cbr_checkpointer.domain import (
    BackupRequest,
    Completed,
    ErrorInfo,
    Outcome,
    OutcomeKind,
    QueueUnavailable,
    ResourceError,
    ResourceResult,
    StoredOutcome,
    TransientFailure,
    Trigger,
    WatchCheck,
)
from cbr_checkpointer.ports import MAX_DELAY_SECONDS
from cbr_checkpointer.publisher import detail_type, event_detail
from cbr_checkpointer.values import replace

PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
CHECKPOINT = "8b0851a8-adf3-4f4c-a914-dead08bf9664"
SERVER = "94eba8b2-acc9-4d82-badc-127144cc5526"
VOLUME = "5f0f3b1e-8d2c-4c1a-9e57-2b0a6c1d9e44"
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
REQUEST = {"checkpoint": {"vault_id": VAULT, "parameters": {"name": "nightly", "resources": [SERVER]}}}
TRIGGER = Trigger("schedule", "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/nightly", T0)
DEADLINE_AHEAD = 60.0


def make_check(attempt: int = 1, *, first_seen: datetime = T0, key: str = "nightly-key") -> WatchCheck:
    return WatchCheck(
        idempotency_key=key,
        project_id=PROJECT,
        vault_id=VAULT,
        checkpoint_id=CHECKPOINT,
        request=REQUEST,
        trigger=TRIGGER,
        first_seen=first_seen,
        attempt=attempt,
    )


# -- the delay schedule ---------------------------------------------------------------------------------


def test_checks_back_off_from_30_seconds_doubling_up_to_the_sqs_maximum() -> None:
    assert [check_delay(attempt) for attempt in range(1, 9)] == [30, 60, 120, 240, 480, 900, 900, 900]
    assert check_delay(10_000) == MAX_DELAY_SECONDS == 900


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        check_delay(0)


def test_ledger_keys_are_derived_from_the_request_key() -> None:
    assert scheduled_key("k") == "k#watch"
    assert check_key("k", 3) == "k#watch#3"
    assert completion_key("k") == "k#completion"


# -- the world of one check ----------------------------------------------------------------------------


class World:
    def __init__(self, *, max_age: float = 24 * 3600) -> None:
        self.cbr = FakeCbr()
        self.queue = FakeWatchQueue()
        self.ledger = FlakyLedger()
        self.clock = FakeClock((T0 + timedelta(seconds=30)).timestamp())
        self.service = CompletionService(
            self.cbr, self.ledger, self.queue, max_age_seconds=max_age, clock=self.clock
        )

    def check(self, check: WatchCheck, message_id: str = "msg-1") -> Outcome | None:
        return self.service.check(check, deadline=self.clock.now() + DEADLINE_AHEAD, message_id=message_id)

    def scheduled(self) -> list[tuple[int, int]]:
        """(attempt, delay) of every check scheduled."""
        return [(check.attempt, delay) for check, delay in self.queue.sent]


def backup(resource_id: str, status: str, backup_id: str = "b-1") -> dict[str, Any]:
    return {
        "id": backup_id,
        "checkpoint_id": CHECKPOINT,
        "resource_id": resource_id,
        "resource_name": f"res-{resource_id[:4]}",
        "resource_type": "OS::Nova::Server",
        "status": status,
    }


def cbr_error(code: str, status: int, *, retryable: bool) -> CbrError:
    return CbrError(ErrorInfo("api", f"{code} said no", code=code, http_status=status, retryable=retryable))


# -- one check ------------------------------------------------------------------------------------------


def test_a_protecting_checkpoint_schedules_the_next_check_later_and_publishes_nothing() -> None:
    world = World()

    assert world.check(make_check(attempt=2)) is None

    ((watch, delay),) = world.queue.sent
    assert watch.attempt == 3
    assert delay == 120
    assert watch.checkpoint_id == CHECKPOINT
    assert watch.first_seen == T0
    assert [name for name, _ in world.cbr.calls] == ["show"]


def test_the_last_delay_is_cut_so_the_timeout_lands_on_time() -> None:
    world = World(max_age=100)
    world.clock.advance(40)  # 70 s old, 30 s left

    world.check(make_check(attempt=6))

    assert world.scheduled() == [(7, 30)]


def test_all_backups_available_is_completed_with_each_resource() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [backup(SERVER, "available", "b-server")]

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "completed"
    assert outcome.resources == (
        ResourceResult(
            SERVER, "available", "b-server", resource_name="res-94eb", resource_type="OS::Nova::Server"
        ),
    )
    assert world.queue.sent == []
    assert ("backups", {"checkpoint_id": CHECKPOINT, "region": None}) in world.cbr.calls
    assert not [call for call in world.cbr.calls if call[0] == "logs"]
    detail = event_detail(outcome)
    assert detail_type(outcome) == "CBR Checkpoint Completed"
    assert detail["stage"] == "completion"
    assert detail["outcome"] == "completed"
    assert detail["idempotency_key"] == "nightly-key"
    assert detail["trigger"] == TRIGGER.to_detail()
    assert detail["request"] == REQUEST
    assert detail["checks"] == 1
    assert detail["duplicate"] is False
    assert "error" not in detail
    assert detail["resources"] == [
        {
            "resource_id": SERVER,
            "resource_name": "res-94eb",
            "resource_type": "OS::Nova::Server",
            "backup_id": "b-server",
            "status": "available",
        }
    ]


def test_an_available_checkpoint_with_backups_still_running_is_looked_at_again() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [backup(SERVER, "protecting")]

    assert world.check(make_check()) is None
    assert world.scheduled() == [(2, 60)]


def test_a_failed_backup_reads_the_backup_tasks_from_before_the_create_for_its_reason() -> None:
    world = World()
    world.cbr.status = "error"
    world.cbr.backups = [backup(SERVER, "available", "b-1"), backup(VOLUME, "error", "b-2")]
    refused = "The disk status does not allow backup."
    world.cbr.logs = [backup_task(CHECKPOINT, VOLUME, "failed", "BackupService.7003", refused)]

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "failed"
    by_id = {entry.resource_id: entry for entry in outcome.resources or ()}
    assert by_id[VOLUME].error == ResourceError("BackupService.7003", refused)
    assert outcome.error is not None
    assert outcome.error.code == "BackupService.7003"
    # Tasks are read from 5 minutes before the checkpoint was seen created: a busy vault's newer ones
    # cannot push this checkpoint's out of the pages read.
    since = {"start_time": "2026-11-27T01:55:00Z"}
    assert (
        "logs",
        {"vault_id": VAULT, "operation_type": "backup", "region": None} | since,
    ) in world.cbr.calls
    assert TASKS_SKEW_SECONDS == 300
    assert detail_type(outcome) == "CBR Checkpoint Failed"
    assert event_detail(outcome)["stage"] == "completion"


def test_a_checkpoint_deleted_before_it_finished_fails_without_reading_backup_tasks() -> None:
    world = World()
    world.cbr.status = "deleted"
    world.cbr.backups = [backup(SERVER, "protecting")]

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.error is not None
    assert (outcome.kind, outcome.error.code) == ("failed", "CheckpointDeleted")
    assert world.cbr.names() == ["show", "backups"]


def test_a_checkpoint_in_an_unknown_status_is_looked_at_again_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    world.cbr.status = "frozen"

    assert world.check(make_check()) is None

    assert world.scheduled() == [(2, 60)]
    assert world.cbr.names() == ["show"]
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.getMessage() == "unknown checkpoint status; looking again later"
    assert (vars(warning)["checkpoint_id"], vars(warning)["state"]) == (CHECKPOINT, "frozen")


def test_a_check_looks_at_the_checkpoint_in_its_own_region_and_the_next_check_keeps_it() -> None:
    world = World()
    world.cbr.status = "error"
    world.cbr.backups = [backup(VOLUME, "error", "b-2")]
    far = replace(make_check(), region="ap-southeast-1")

    outcome = world.check(far)
    world.cbr.status = "protecting"
    world.check(replace(far, idempotency_key="u:other-key"))

    assert outcome is not None
    assert outcome.kind == "failed"
    assert [(name, arguments["region"]) for name, arguments in world.cbr.calls] == [
        ("show", "ap-southeast-1"),
        ("backups", "ap-southeast-1"),
        ("logs", "ap-southeast-1"),
        ("show", "ap-southeast-1"),
    ]
    ((following, _),) = world.queue.sent
    assert following.region == "ap-southeast-1"


def test_failure_reasons_that_cannot_be_read_leave_the_failure_unexplained() -> None:
    world = World()
    world.cbr.status = "error"
    world.cbr.backups = [backup(SERVER, "error")]
    world.cbr.logs = cbr_error("APIGW.0302", 403, retryable=False)

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "failed"
    assert outcome.resources is not None
    error = outcome.resources[0].error
    assert error is not None
    assert error.code is None


def test_not_found_right_after_the_create_is_looked_at_again_and_later_is_a_failure() -> None:
    world = World()
    world.cbr.status = cbr_error("BackupService.6217", 404, retryable=False)

    assert world.check(make_check()) is None  # 30 s after the create
    world.clock.advance(300)
    outcome = world.check(make_check(attempt=2))

    assert outcome is not None
    assert outcome.kind == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "BackupService.6217"
    assert "no longer exists" in outcome.error.message


def test_a_transient_cbr_error_hands_the_message_back_and_the_check_can_run_again() -> None:
    world = World()
    world.cbr.status = cbr_error("APIGW.0308", 429, retryable=True)

    with pytest.raises(TransientFailure) as raised:
        world.check(make_check())
    assert raised.value.info.code == "APIGW.0308"
    assert world.queue.sent == []

    world.cbr.status = "protecting"
    assert world.check(make_check()) is None  # the claim was released
    assert len(world.queue.sent) == 1


def test_a_next_check_that_cannot_be_sent_hands_the_message_back() -> None:
    world = World()
    world.queue.down = QueueUnavailable("ServiceUnavailable", "down", http_status=503)

    with pytest.raises(TransientFailure):
        world.check(make_check())

    world.queue.down = None
    assert world.check(make_check()) is None
    assert len(world.queue.sent) == 1


def test_past_the_maximum_age_a_protecting_checkpoint_times_out() -> None:
    world = World(max_age=3600)
    world.clock.advance(3600)
    world.cbr.backups = [backup(SERVER, "protecting")]

    outcome = world.check(make_check(attempt=9))

    assert outcome is not None
    assert outcome.kind == "timed_out"
    assert outcome.error is not None
    assert outcome.error.kind == "timeout"
    assert outcome.resources is not None
    assert outcome.resources[0].status == "protecting"
    assert world.queue.sent == []
    assert detail_type(outcome) == "CBR Checkpoint Timed Out"


def test_past_the_maximum_age_even_an_unreachable_cbr_times_out() -> None:
    world = World(max_age=3600)
    world.clock.advance(4000)
    world.cbr.status = cbr_error("BackupService.9910", 500, retryable=True)
    world.cbr.backups = cbr_error("BackupService.9910", 500, retryable=True)

    outcome = world.check(make_check(attempt=9))

    assert outcome is not None
    assert outcome.kind == "timed_out"


# -- duplicates and the one end -------------------------------------------------------------------------


def test_a_second_message_for_the_same_check_is_dropped() -> None:
    world = World()

    assert world.check(make_check(), "msg-a") is None
    assert world.check(make_check(), "msg-b") is None

    assert world.scheduled() == [(2, 60)]  # one chain, not two


def test_a_stale_check_is_dropped_after_the_chain_moved_on() -> None:
    world = World()
    world.check(make_check(attempt=1), "msg-a")
    world.check(make_check(attempt=2), "msg-b")

    assert world.check(make_check(attempt=1), "msg-a-again") is None
    assert [attempt for attempt, _ in world.scheduled()] == [2, 3]


def test_the_end_is_stored_once_and_only_its_own_message_republishes_it() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [backup(SERVER, "available")]
    first = world.check(make_check(), "msg-a")

    # the same message again (its publish failed): the same end, marked duplicate
    again = world.check(make_check(), "msg-a")
    # another message for the same check: nothing
    other = world.check(make_check(), "msg-b")

    assert first is not None
    assert again is not None
    assert (again.kind, again.resources, again.duplicate) == (first.kind, first.resources, True)
    assert other is None
    now = world.clock.now()
    stored = world.ledger.claim(completion_key("nightly-key"), now=now, lease_until=now)
    assert isinstance(stored, Completed)
    assert isinstance(stored.result, StoredOutcome)
    assert stored.result.kind == "completed"


def test_two_different_ends_cannot_both_be_published() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [backup(SERVER, "available")]
    first = world.check(make_check(attempt=3), "msg-a")

    # a later check of the same checkpoint (a chain that forked) now sees it deleted
    world.cbr.status = "deleted"
    later = world.check(make_check(attempt=4), "msg-b")

    assert first is not None
    assert later is not None
    assert later.kind == first.kind == "completed"
    assert later.duplicate is True


# -- the ledger down -----------------------------------------------------------------------------------


def test_given_the_ledger_down_at_the_claim_then_the_message_goes_back_without_looking() -> None:
    world = World()
    world.ledger.down = {"claim"}

    with pytest.raises(TransientFailure) as raised:
        world.check(make_check())

    assert (raised.value.info.code, raised.value.info.retryable) == ("InternalServerError", True)
    assert world.cbr.calls == []


def test_given_the_end_cannot_be_stored_then_nothing_is_published_and_the_check_can_run_again() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [backup(SERVER, "available")]
    world.ledger.down = {"complete"}

    with pytest.raises(TransientFailure):
        world.check(make_check())

    world.ledger.down = set()
    outcome = world.check(make_check())
    assert outcome is not None
    assert (outcome.kind, outcome.duplicate) == ("completed", False)


def test_given_a_step_mark_that_cannot_be_written_then_the_chain_still_goes_on() -> None:
    world = World()
    world.ledger.down = {"complete"}

    assert world.check(make_check()) is None

    assert world.scheduled() == [(2, 60)]


# -- after a Created ------------------------------------------------------------------------------------


def created(key: str = "nightly-key", *, duplicate: bool = False, kind: OutcomeKind = "created") -> Outcome:
    request = BackupRequest(idempotency_key=key, project_id=PROJECT, body=REQUEST, trigger=TRIGGER)
    return Outcome(kind, request, checkpoint={"id": CHECKPOINT, "status": "protecting"}, duplicate=duplicate)


def test_each_created_checkpoint_schedules_its_first_check_in_one_batch() -> None:
    world = World()
    outcomes = [created(f"key-{i}") for i in range(12)] + [created("failed-one", kind="failed")]

    assert world.service.follow(outcomes, deadline=world.clock.now() + 60) == []

    sent = world.queue.sent
    assert [watch.idempotency_key for watch, _ in sent] == [f"key-{i}" for i in range(12)]
    assert set(world.scheduled()) == {(1, 30)}
    assert sent[0][0].first_seen == datetime.fromtimestamp(world.clock.now(), UTC)


def test_a_duplicate_created_schedules_only_when_the_first_delivery_could_not() -> None:
    world = World()
    world.queue.down = QueueUnavailable("ServiceUnavailable", "down", http_status=503)

    failed = world.service.follow([created()], deadline=world.clock.now() + 60)
    assert [outcome.item.idempotency_key for outcome in failed] == ["nightly-key"]

    world.queue.down = None
    assert world.service.follow([created(duplicate=True)], deadline=world.clock.now() + 60) == []
    assert world.service.follow([created(duplicate=True)], deadline=world.clock.now() + 60) == []
    assert len(world.queue.sent) == 1


# -- configuration --------------------------------------------------------------------------------------


def test_completion_is_followed_only_with_a_watch_queue() -> None:
    from cbr_checkpointer.runtime import build_runtime
    from cbr_checkpointer.settings import Settings

    base = {
        "CBR_REGION": "cn-north-4",
        "HUAWEICLOUD_SDK_AK": "AK",
        "HUAWEICLOUD_SDK_SK": "SK",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/cbr-checkpointer-watch"

    without = build_runtime(Settings.from_env(base))
    with_queue = build_runtime(Settings.from_env(base | {"WATCH_QUEUE_URL": queue}))

    assert without.completion is None
    assert with_queue.completion is not None
    assert len(with_queue.clients) == len(without.clients) + 1  # the SQS client, closed with the rest
    without.close()
    with_queue.close()


def test_watch_settings_default_and_validate() -> None:
    from cbr_checkpointer.settings import ConfigurationError, Settings

    assert Settings.from_env({"CBR_REGION": "cn-north-4"}).watch_max_age_seconds == 24 * 3600
    assert (
        Settings.from_env({"CBR_REGION": "cn-north-4", "WATCH_MAX_AGE_SECONDS": "0.5"}).watch_max_age_seconds
        == 0.5
    )
    with pytest.raises(ConfigurationError, match="WATCH_MAX_AGE_SECONDS"):
        Settings.from_env({"CBR_REGION": "cn-north-4", "WATCH_MAX_AGE_SECONDS": "0"})
    with pytest.raises(ConfigurationError, match="WATCH_QUEUE_URL"):
        Settings.from_env({"CBR_REGION": "cn-north-4", "WATCH_QUEUE_URL": "http://10.0.0.5/123/q"})
