"""Completion without sockets: the delay schedule, the watch message, and the rules of one check.

CBR, SQS and the clock are in-memory fakes; the ledger is the real MemoryLedger.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cbr_checkpointer.aws import AwsError
from cbr_checkpointer.cbr import CbrError
from cbr_checkpointer.completion import (
    MAX_DELAY_SECONDS,
    CompletionService,
    WatchQueue,
    check_delay,
    check_key,
    completion_key,
    follow_up,
    scheduled_key,
)
from cbr_checkpointer.domain import BackupRequest, ErrorInfo, Outcome, Trigger, WatchCheck
from cbr_checkpointer.ledger import Completed, MemoryLedger
from cbr_checkpointer.models import CheckpointCreate
from cbr_checkpointer.publisher import detail_type, event_detail
from cbr_checkpointer.service import TransientFailure

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


# -- fakes ----------------------------------------------------------------------------------------------


class FakeCbr:
    """Scripted ShowCheckpoint / ListBackups / ListOpLogs answers; an exception instance is raised."""

    def __init__(self) -> None:
        self.status: str | Exception = "protecting"
        self.backups: list[dict[str, Any]] | Exception = []
        self.logs: list[dict[str, Any]] | Exception = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def show_checkpoint(self, project_id: str, checkpoint_id: str) -> CheckpointCreate:
        self.calls.append(("show", {"project_id": project_id, "checkpoint_id": checkpoint_id}))
        if isinstance(self.status, Exception):
            raise self.status
        return CheckpointCreate.model_validate(
            {"id": checkpoint_id, "project_id": project_id, "status": self.status, "created_at": "2026"}
        )

    def list_backups(self, project_id: str, **filters: str) -> list[dict[str, Any]]:
        self.calls.append(("backups", filters))
        if isinstance(self.backups, Exception):
            raise self.backups
        return self.backups

    def list_operation_logs(self, project_id: str, **filters: Any) -> list[dict[str, Any]]:
        self.calls.append(("logs", filters))
        if isinstance(self.logs, Exception):
            raise self.logs
        return self.logs


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail_with: AwsError | None = None
        self.batch_failures: dict[str, dict[str, Any]] = {}

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((operation, payload))
        if operation == "SendMessageBatch":
            failed = [
                {"Id": entry["Id"], **self.batch_failures.pop(entry["Id"])}
                for entry in payload["Entries"]
                if entry["Id"] in self.batch_failures
            ]
            ok = [
                {"Id": entry["Id"]}
                for entry in payload["Entries"]
                if entry["Id"] not in {f["Id"] for f in failed}
            ]
            return {"Successful": ok, "Failed": failed}
        return {"MessageId": "m"}

    def bodies(self) -> list[tuple[dict[str, Any], int]]:
        """(watch, DelaySeconds) of every message sent, in order."""
        found = []
        for operation, payload in self.sent:
            entries = payload["Entries"] if operation == "SendMessageBatch" else [payload]
            found.extend(
                (json.loads(entry["MessageBody"])["watch"], entry["DelaySeconds"]) for entry in entries
            )
        return found


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class World:
    def __init__(self, *, max_age: float = 24 * 3600) -> None:
        self.cbr = FakeCbr()
        self.sqs = FakeSqs()
        self.ledger = MemoryLedger(ttl_seconds=7 * 24 * 3600)
        self.clock = Clock(T0 + timedelta(seconds=30))
        self.service = CompletionService(
            self.cbr,  # type: ignore[arg-type]
            self.ledger,
            WatchQueue(
                self.sqs, "https://sqs.us-east-1.amazonaws.com/123456789012/watch", sleep=lambda _: None
            ),  # type: ignore[arg-type]
            max_age_seconds=max_age,
            clock=self.clock,
        )

    def check(self, check: WatchCheck, message_id: str = "msg-1") -> Outcome | None:
        return self.service.check(check, deadline=self.clock() + DEADLINE_AHEAD, message_id=message_id)


def backup(resource_id: str, status: str, backup_id: str = "b-1") -> dict[str, Any]:
    return {
        "id": backup_id,
        "checkpoint_id": CHECKPOINT,
        "resource_id": resource_id,
        "resource_name": f"res-{resource_id[:4]}",
        "resource_type": "OS::Nova::Server",
        "status": status,
    }


def task(
    resource_id: str, status: str, code: str = "", message: str = "", checkpoint: str = CHECKPOINT
) -> dict[str, Any]:
    return {
        "checkpoint_id": checkpoint,
        "operation_type": "backup",
        "status": status,
        "error_info": {"code": code, "message": message},
        "extra_info": {"resource": {"id": resource_id, "type": "OS::Nova::Server", "name": "r"}},
    }


def cbr_error(code: str, status: int, *, retryable: bool) -> CbrError:
    return CbrError(ErrorInfo("api", f"{code} said no", code=code, http_status=status, retryable=retryable))


# -- one check ------------------------------------------------------------------------------------------


def test_a_protecting_checkpoint_schedules_the_next_check_later_and_publishes_nothing() -> None:
    world = World()

    assert world.check(make_check(attempt=2)) is None

    ((watch, delay),) = world.sqs.bodies()
    assert watch["attempt"] == 3
    assert delay == 120
    assert watch["checkpoint_id"] == CHECKPOINT
    assert watch["first_seen"] == T0.isoformat()
    assert [name for name, _ in world.cbr.calls] == ["show"]


def test_the_last_delay_is_cut_so_the_timeout_lands_on_time() -> None:
    world = World(max_age=100)
    world.clock.advance(40)  # 70 s old, 30 s left

    world.check(make_check(attempt=6))

    ((_, delay),) = world.sqs.bodies()
    assert delay == 30


def test_all_backups_available_is_completed_with_each_resource() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [backup(SERVER, "available", "b-server")]

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "completed"
    assert outcome.resources == (
        {
            "resource_id": SERVER,
            "resource_name": "res-94eb",
            "resource_type": "OS::Nova::Server",
            "backup_id": "b-server",
            "status": "available",
        },
    )
    assert world.sqs.sent == []
    assert ("backups", {"checkpoint_id": CHECKPOINT}) in world.cbr.calls
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


def test_an_available_checkpoint_with_backups_still_running_is_looked_at_again() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [backup(SERVER, "protecting")]

    assert world.check(make_check()) is None
    assert [watch["attempt"] for watch, _ in world.sqs.bodies()] == [2]


def test_a_failed_backup_is_failed_with_the_reason_of_its_own_task() -> None:
    world = World()
    world.cbr.status = "error"
    world.cbr.backups = [backup(SERVER, "available", "b-1"), backup(VOLUME, "error", "b-2")]
    world.cbr.logs = [
        task(VOLUME, "failed", "BackupService.0000", "another checkpoint's failure", checkpoint="other"),
        task(VOLUME, "failed", "BackupService.7003", "The disk status does not allow backup."),
        task(SERVER, "success"),
    ]

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "failed"
    by_id = {entry["resource_id"]: entry for entry in outcome.resources or ()}
    assert "error" not in by_id[SERVER]
    assert by_id[VOLUME]["error"] == {
        "code": "BackupService.7003",
        "message": "The disk status does not allow backup.",
    }
    assert outcome.error is not None
    assert outcome.error.code == "BackupService.7003"
    assert VOLUME in outcome.error.message
    assert ("logs", {"vault_id": VAULT, "operation_type": "backup"}) in world.cbr.calls
    assert detail_type(outcome) == "CBR Checkpoint Failed"
    assert event_detail(outcome)["stage"] == "completion"


def test_a_resource_skipped_at_the_create_fails_the_completion() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = []  # the request named SERVER; CBR made no backup of it

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "failed"
    assert outcome.resources == (
        {
            "resource_id": SERVER,
            "backup_id": None,
            "status": "skipped",
            "error": {
                "code": "NoBackup",
                "message": "the request named this resource but CBR made no backup of it",
            },
        },
    )


def test_failure_reasons_that_cannot_be_read_leave_the_failure_unexplained() -> None:
    world = World()
    world.cbr.status = "error"
    world.cbr.backups = [backup(SERVER, "error")]
    world.cbr.logs = cbr_error("APIGW.0302", 403, retryable=False)

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "failed"
    assert outcome.resources is not None
    assert outcome.resources[0]["error"]["code"] is None


@pytest.mark.parametrize("status", ["deleted", "deleting", "error-deleting"])
def test_a_deleted_checkpoint_is_a_clear_failure(status: str) -> None:
    world = World()
    world.cbr.status = status

    outcome = world.check(make_check())

    assert outcome is not None
    assert outcome.kind == "failed"
    assert outcome.error is not None
    assert outcome.error.code == "CheckpointDeleted"
    assert status in outcome.error.message


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
    assert world.sqs.sent == []

    world.cbr.status = "protecting"
    assert world.check(make_check()) is None  # the claim was released
    assert len(world.sqs.bodies()) == 1


def test_a_next_check_that_cannot_be_sent_hands_the_message_back() -> None:
    world = World()
    world.sqs.fail_with = AwsError("ServiceUnavailable", "down", http_status=503, retryable=True)

    with pytest.raises(TransientFailure):
        world.check(make_check())

    world.sqs.fail_with = None
    assert world.check(make_check()) is None
    assert len(world.sqs.bodies()) == 1


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
    assert outcome.resources[0]["status"] == "protecting"
    assert world.sqs.sent == []
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

    assert [watch["attempt"] for watch, _ in world.sqs.bodies()] == [2]  # one chain, not two


def test_a_stale_check_is_dropped_after_the_chain_moved_on() -> None:
    world = World()
    world.check(make_check(attempt=1), "msg-a")
    world.check(make_check(attempt=2), "msg-b")

    assert world.check(make_check(attempt=1), "msg-a-again") is None
    assert [watch["attempt"] for watch, _ in world.sqs.bodies()] == [2, 3]


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
    stored = world.ledger.claim(completion_key("nightly-key"), now=world.clock(), lease_until=world.clock())
    assert isinstance(stored, Completed)
    assert stored.result["outcome"] == "completed"


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


# -- after a Created ------------------------------------------------------------------------------------


def created(key: str = "nightly-key", *, duplicate: bool = False, kind: str = "created") -> Outcome:
    request = BackupRequest(idempotency_key=key, project_id=PROJECT, body=REQUEST, trigger=TRIGGER)
    return Outcome(kind, request, checkpoint={"id": CHECKPOINT, "status": "protecting"}, duplicate=duplicate)  # type: ignore[arg-type]


def test_each_created_checkpoint_schedules_its_first_check_in_one_batch() -> None:
    world = World()
    outcomes = [created(f"key-{i}") for i in range(12)] + [created("failed-one", kind="failed")]

    assert world.service.follow(outcomes, deadline=world.clock() + 60) == []

    assert [operation for operation, _ in world.sqs.sent] == ["SendMessageBatch", "SendMessageBatch"]
    sent = world.sqs.bodies()
    assert [watch["idempotency_key"] for watch, _ in sent] == [f"key-{i}" for i in range(12)]
    assert {(watch["attempt"], delay) for watch, delay in sent} == {(1, 30)}
    assert sent[0][0]["first_seen"] == datetime.fromtimestamp(world.clock(), UTC).isoformat()


def test_a_duplicate_created_schedules_only_when_the_first_delivery_could_not() -> None:
    world = World()
    world.sqs.batch_failures = {"0": {"Code": "InternalError", "Message": "try later", "SenderFault": False}}
    world.sqs.fail_with = AwsError("ServiceUnavailable", "down", http_status=503, retryable=True)

    failed = world.service.follow([created()], deadline=world.clock() + 60)
    assert [outcome.item.idempotency_key for outcome in failed] == ["nightly-key"]

    world.sqs.fail_with = None
    world.sqs.batch_failures = {}
    assert world.service.follow([created(duplicate=True)], deadline=world.clock() + 60) == []
    assert world.service.follow([created(duplicate=True)], deadline=world.clock() + 60) == []
    assert len(world.sqs.bodies()) == 1


def test_a_batch_entry_refused_by_sqs_is_retried_then_reported() -> None:
    world = World()
    world.sqs.batch_failures = {"1": {"Code": "InternalError", "Message": "try again", "SenderFault": False}}

    assert world.service.follow([created("a"), created("b")], deadline=world.clock() + 60) == []
    (_, first), (_, retry) = world.sqs.sent
    assert [entry["Id"] for entry in first["Entries"]] == ["0", "1"]
    assert [entry["Id"] for entry in retry["Entries"]] == ["1"]
    assert json.loads(retry["Entries"][0]["MessageBody"])["watch"]["idempotency_key"] == "b"


def test_a_batch_entry_refused_for_good_is_reported_at_once() -> None:
    world = World()
    world.sqs.batch_failures = {"0": {"Code": "InvalidMessageContents", "Message": "no", "SenderFault": True}}

    failed = world.service.follow([created("a"), created("b")], deadline=world.clock() + 60)

    assert [outcome.item.idempotency_key for outcome in failed] == ["a"]
    assert len(world.sqs.sent) == 1


def test_a_watch_message_without_a_watch_queue_goes_back_to_its_queue() -> None:
    with pytest.raises(TransientFailure) as raised:
        follow_up(None, make_check(), deadline=0)
    assert raised.value.info.code == "WatchNotConfigured"


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
