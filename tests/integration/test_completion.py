"""Following checkpoints to their end over loopback: handler -> watch queue (moto) -> handler -> final event.

Time is compressed: the emulator finishes backups after a fraction of a second, and the sandbox hands
the watch queue's messages to the handler without waiting their DelaySeconds (it waits 1/500 of it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cbr_checkpointer.handler import InvocationFailed, lambda_handler
from cbr_emulator import Fault
from devtools.faults import FaultProxy, Rule
from devtools.records import sqs_record as _sqs_record
from devtools.sandbox import PROJECT_ID, RESOURCE_ID, VAULT_ID, WATCH_QUEUE, LocalContext, Sandbox

pytestmark = pytest.mark.integration

SERVER_ID = "2a6f0d3c-9b1e-4f7a-8c5d-3e2b1a0f9c8d"
VOLUME_ID = "6c1b5e9a-0d2f-4a3b-9e8c-7f6a5b4c3d2e"


@pytest.fixture
def watched(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox with completion followed (WATCH_QUEUE_URL set), AK/SK auth, in-memory ledger."""
    with sandbox.configured(WATCH_QUEUE_URL=sandbox.watch_queue_url):
        yield sandbox


@pytest.fixture
def two_resource_vault(sandbox: Sandbox) -> str:
    """A fresh vault with a server and a volume bound to it."""
    vault_id = str(uuid.uuid4())
    sandbox.emulator.add_vault(
        vault_id,
        [
            {"id": SERVER_ID, "type": "OS::Nova::Server", "name": "ecs-app-1"},
            {"id": VOLUME_ID, "type": "OS::Cinder::Volume", "name": "evs-data-1"},
        ],
        name="vault-app",
    )
    return vault_id


def request(key: str, vault_id: str = VAULT_ID, **fields: Any) -> dict[str, Any]:
    return {"vault_id": vault_id, "idempotency_key": key, **fields}


def create(sandbox: Sandbox, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke the handler directly; the one Created event's detail."""
    lambda_handler(event, LocalContext())
    (created,) = sandbox.published_events()
    assert created["detail-type"] == "CBR Checkpoint Created"
    detail: dict[str, Any] = created["detail"]
    return detail


def finals(events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(event["detail-type"], event["detail"]) for event in events]


def show_requests(sandbox: Sandbox, checkpoint_id: str) -> list[int]:
    """The statuses CBR answered to ShowCheckpoint of this checkpoint, in order."""
    path = f"/v3/{PROJECT_ID}/checkpoints/{checkpoint_id}"
    return [r.status for r in sandbox.emulator.requests if r.method == "GET" and r.path == path]


def watch_body(check: dict[str, Any]) -> dict[str, Any]:
    """A scheduled check as its message body (without the DelaySeconds that watch_messages adds)."""
    return {"watch": check["watch"]}


# -- the whole life --------------------------------------------------------------------------------------


def test_a_checkpoint_that_succeeds_ends_completed_with_each_resource_backup(watched: Sandbox) -> None:
    created = create(watched, request("nightly-1", resources=[RESOURCE_ID], name="nightly"))
    (scheduled,) = watched.take_watch_messages()
    # The first check finds it still protecting; then the backup finishes
    first = lambda_handler({"Records": [sqs_record(watch_body(scheduled))]}, LocalContext())
    watched.emulator.backup_duration = 0.0
    events = watched.follow_completion(lambda_handler)

    checkpoint_id = created["checkpoint"]["id"]
    assert scheduled["DelaySeconds"] == 30
    assert scheduled["watch"] | {"first_seen": None} == {
        "version": 1,
        "project_id": PROJECT_ID,
        "checkpoint_id": checkpoint_id,
        "vault_id": VAULT_ID,
        "idempotency_key": "u:nightly-1",
        "request": created["request"],
        "trigger": created["trigger"],
        "first_seen": None,
        "attempt": 1,
    }
    ((kind, detail),) = finals(events)
    assert kind == "CBR Checkpoint Completed"
    assert detail["outcome"] == "completed"
    assert detail["stage"] == "completion"
    assert detail["version"] == "1"
    assert detail["idempotency_key"] == "u:nightly-1"
    assert (detail["project_id"], detail["vault_id"]) == (PROJECT_ID, VAULT_ID)
    assert detail["request"] == created["request"]
    assert detail["trigger"] == created["trigger"]
    assert detail["checkpoint"]["id"] == checkpoint_id
    assert detail["checkpoint"]["status"] == "available"
    (task,) = watched.emulator.operation_logs
    assert detail["resources"] == [
        {
            "resource_id": RESOURCE_ID,
            "resource_name": "ecs-web-1",
            "resource_type": "OS::Nova::Server",
            "backup_id": task["extra_info"]["backup"]["backup_id"],
            "status": "available",
        }
    ]
    assert first == {"batchItemFailures": []}
    assert detail["checks"] == 2
    assert detail["duplicate"] is False
    assert "error" not in detail
    assert watched.watch_messages() == []
    assert not [r for r in watched.emulator.requests if "operation-logs" in r.path]


def test_each_check_schedules_the_next_one_later(watched: Sandbox) -> None:
    checkpoint_id = create(watched, request("slow-1"))["checkpoint"]["id"]
    seen = []
    for _ in range(5):
        (scheduled,) = watched.take_watch_messages()
        seen.append((scheduled["watch"]["attempt"], scheduled["DelaySeconds"]))
        response = lambda_handler({"Records": [sqs_record(watch_body(scheduled))]}, LocalContext())
        assert response == {"batchItemFailures": []}

    assert seen == [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480)]
    assert show_requests(watched, checkpoint_id) == [200] * 5
    assert watched.published_events() == []  # still protecting: nothing to say yet
    ((following, delay),) = [(m["watch"]["attempt"], m["DelaySeconds"]) for m in watched.watch_messages()]
    assert (following, delay) == (6, 900)


def test_a_failed_resource_ends_failed_with_the_reason_from_its_own_task(
    watched: Sandbox, two_resource_vault: str
) -> None:
    emulator = watched.emulator
    # B is created first; A after it, and A fails first with another reason: its task is the newest
    # for the volume, so only matching tasks by checkpoint_id finds B's own reason.
    b = create(watched, request("app-b", two_resource_vault))["checkpoint"]["id"]
    a = create(watched, request("app-a", two_resource_vault))["checkpoint"]["id"]
    emulator.complete_checkpoint(a, failed_resources=[VOLUME_ID])
    emulator.fail_resources(VOLUME_ID, "BackupService.7003", "The disk status does not allow backup.")
    emulator.backup_duration = 0.0

    events = watched.follow_completion(lambda_handler)

    by_checkpoint = {detail["checkpoint"]["id"]: (kind, detail) for kind, detail in finals(events)}
    assert sorted(by_checkpoint) == sorted([a, b])
    kind, detail = by_checkpoint[b]
    assert kind == "CBR Checkpoint Failed"
    assert (detail["outcome"], detail["stage"]) == ("failed", "completion")
    assert detail["idempotency_key"] == "u:app-b"
    assert detail["checkpoint"]["status"] == "error"
    resources = {entry["resource_id"]: entry for entry in detail["resources"]}
    assert resources[SERVER_ID]["status"] == "available"
    assert "error" not in resources[SERVER_ID]
    assert resources[VOLUME_ID]["status"] == "error"
    assert resources[VOLUME_ID]["resource_name"] == "evs-data-1"
    assert resources[VOLUME_ID]["error"] == {
        "code": "BackupService.7003",
        "message": "The disk status does not allow backup.",
    }
    assert detail["error"]["code"] == "BackupService.7003"
    assert detail["error"]["retryable"] is False
    assert "evs-data-1" in detail["error"]["message"]
    other = {e["resource_id"]: e for e in by_checkpoint[a][1]["resources"]}
    assert other[VOLUME_ID]["error"]["code"] == "BackupService.9910"
    # The API has no checkpoint_id filter: the function asks by vault and operation type
    queries = [r.query for r in emulator.requests if r.path.endswith("/operation-logs")]
    assert queries
    for query in queries:
        assert query["vault_id"] == [two_resource_vault]
        assert query["operation_type"] == ["backup"]
        assert "checkpoint_id" not in query


def test_a_checkpoint_that_never_finishes_times_out(sandbox: Sandbox) -> None:
    with sandbox.configured(WATCH_QUEUE_URL=sandbox.watch_queue_url, WATCH_MAX_AGE_SECONDS="0.8"):
        created = create(sandbox, request("stuck-1", resources=[RESOURCE_ID]))
        events = sandbox.follow_completion(lambda_handler)

    ((kind, detail),) = finals(events)
    assert kind == "CBR Checkpoint Timed Out"
    assert detail["outcome"] == "timed_out"
    assert detail["stage"] == "completion"
    assert detail["checkpoint"]["id"] == created["checkpoint"]["id"]
    assert detail["checkpoint"]["status"] == "protecting"
    assert detail["error"]["kind"] == "timeout"
    assert detail["error"]["code"] == "CompletionTimedOut"
    assert "WATCH_MAX_AGE_SECONDS" in detail["error"]["message"]
    assert [(r["resource_id"], r["status"]) for r in detail["resources"]] == [(RESOURCE_ID, "protecting")]
    assert sandbox.watch_messages() == []


def test_a_check_long_past_the_maximum_age_times_out_at_once(watched: Sandbox) -> None:
    created = create(watched, request("old-1"))
    (scheduled,) = watched.watch_messages()
    scheduled["watch"]["first_seen"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()

    response = lambda_handler({"Records": [sqs_record(watch_body(scheduled))]}, LocalContext())

    assert response == {"batchItemFailures": []}
    ((kind, detail),) = finals(watched.published_events())
    assert kind == "CBR Checkpoint Timed Out"
    assert detail["checkpoint"]["id"] == created["checkpoint"]["id"]
    assert "86400 s" in detail["error"]["message"]


# -- at least once, and still one end --------------------------------------------------------------------


def test_a_watch_message_delivered_twice_ends_in_one_final_event(watched: Sandbox) -> None:
    watched.emulator.backup_duration = 0.0
    create(watched, request("twice-1"))
    (scheduled,) = watched.watch_messages()
    first = sqs_record(watch_body(scheduled), "copy-1")
    second = sqs_record(watch_body(scheduled), "copy-2")

    response = lambda_handler({"Records": [first, second]}, LocalContext())
    events = watched.published_events()
    # Both copies again, as if neither had been deleted: only the one that ended it republishes
    again = lambda_handler({"Records": [first, second]}, LocalContext())
    republished = watched.published_events()
    # And the original message, a third copy of the same check: dropped
    rest = watched.follow_completion(lambda_handler)

    assert response == again == {"batchItemFailures": []}
    ((kind, detail),) = finals(events)
    assert kind == "CBR Checkpoint Completed"
    ((kind_again, detail_again),) = finals(republished)
    assert kind_again == kind
    assert detail_again["duplicate"] is True
    assert detail_again["resources"] == detail["resources"]
    assert rest == []
    assert watched.watch_messages() == []


def test_with_the_dynamodb_ledger_the_end_is_one_too(sandbox: Sandbox) -> None:
    table = sandbox.create_ledger_table()
    sandbox.emulator.backup_duration = 0.1
    with sandbox.configured(IDEMPOTENCY_TABLE=table, WATCH_QUEUE_URL=sandbox.watch_queue_url):
        create(sandbox, request("dynamo-1"))
        (scheduled,) = sandbox.watch_messages()
        copies = [sqs_record(watch_body(scheduled), f"copy-{i}") for i in range(3)]
        lambda_handler({"Records": copies}, LocalContext())  # three copies of the first check at once
        events = sandbox.follow_completion(lambda_handler)

    ((kind, detail),) = finals(events + sandbox.published_events())
    assert kind == "CBR Checkpoint Completed"
    assert detail["duplicate"] is False
    keys = sandbox.aws("dynamodb").call("Scan", {"TableName": table, "ProjectionExpression": "id"})["Items"]
    assert {item["id"]["S"] for item in keys} >= {"u:dynamo-1", "u:dynamo-1#watch", "u:dynamo-1#completion"}


def test_a_redelivered_created_does_not_schedule_its_check_again(watched: Sandbox) -> None:
    batch = {"Records": [request_record(request("queued-1"), "msg-1")]}

    assert lambda_handler(batch, LocalContext()) == {"batchItemFailures": []}
    assert lambda_handler(batch, LocalContext()) == {"batchItemFailures": []}

    created = [e["detail"]["duplicate"] for e in watched.published_events()]
    assert created == [False, True]
    assert len(watched.watch_messages()) == 1


def test_a_check_that_cannot_be_scheduled_sends_the_record_back_and_its_redelivery_schedules_it(
    sandbox: Sandbox,
) -> None:
    table = sandbox.create_ledger_table()  # outlives the runtime, as DynamoDB does
    missing_queue = f"{sandbox.moto_url}/123456789012/no-such-queue"
    batch = {"Records": [request_record(request("queued-2"), "msg-2")]}

    with sandbox.configured(IDEMPOTENCY_TABLE=table, WATCH_QUEUE_URL=missing_queue):
        first = lambda_handler(batch, LocalContext())
    first_events = sandbox.published_events()
    with sandbox.configured(IDEMPOTENCY_TABLE=table, WATCH_QUEUE_URL=sandbox.watch_queue_url):
        second = lambda_handler(batch, LocalContext())
        third = lambda_handler(batch, LocalContext())

    assert first == {"batchItemFailures": [{"itemIdentifier": "msg-2"}]}
    assert [e["detail"]["duplicate"] for e in first_events] == [False]  # published all the same
    assert second == third == {"batchItemFailures": []}
    assert len(sandbox.emulator.created) == 1
    (scheduled,) = sandbox.watch_messages()
    assert scheduled["watch"]["checkpoint_id"] == sandbox.emulator.created[0]["id"]


def test_a_check_sqs_throttled_in_the_batch_is_sent_again_alone_and_scheduled_once(sandbox: Sandbox) -> None:
    throttled: list[str] = []

    def second_entry_throttled(document: Any) -> dict[str, Any]:
        # Takes the first entry without passing it on, throttles the second.
        first, second = document["Entries"]
        throttled.append(json.loads(second["MessageBody"])["watch"]["idempotency_key"])
        return {
            "Successful": [{"Id": first["Id"], "MessageId": "scripted", "MD5OfMessageBody": ""}],
            "Failed": [
                {
                    "Id": second["Id"],
                    "Code": "RequestThrottled",
                    "Message": "Rate exceeded",
                    "SenderFault": False,
                }
            ],
        }

    proxy = FaultProxy("sqs-proxy").start(sandbox.moto_url)
    proxy.rules.append(Rule(target=".SendMessageBatch", status=200, body=second_entry_throttled))
    batch = {"Records": [sqs_record(request("queued-a"), "msg-a"), sqs_record(request("queued-b"), "msg-b")]}
    try:
        with sandbox.configured(WATCH_QUEUE_URL=sandbox.watch_queue_url, AWS_ENDPOINT_URL_SQS=proxy.url):
            result = lambda_handler(batch, LocalContext())
        sends = proxy.count(target=".SendMessageBatch")
    finally:
        proxy.stop()

    assert result == {"batchItemFailures": []}
    assert sends == 2
    # Only the throttled check went again, and once: the first never reached the queue (scripted away).
    scheduled = [message["watch"]["idempotency_key"] for message in sandbox.watch_messages()]
    assert scheduled == throttled


def test_a_timer_whose_check_cannot_be_scheduled_is_retried_by_lambda(sandbox: Sandbox) -> None:
    missing_queue = f"{sandbox.moto_url}/123456789012/no-such-queue"
    with (
        sandbox.configured(WATCH_QUEUE_URL=missing_queue),
        pytest.raises(InvocationFailed, match="1 completion check"),
    ):
        lambda_handler(request("timer-1"), LocalContext())

    assert [e["detail-type"] for e in sandbox.published_events()] == ["CBR Checkpoint Created"]


def test_dry_runs_and_failures_schedule_nothing(watched: Sandbox) -> None:
    lambda_handler(request("dry-1", dry_run=True), LocalContext())
    lambda_handler(request("gone-1", str(uuid.uuid4())), LocalContext())

    assert [e["detail-type"] for e in watched.published_events()] == [
        "CBR Backup Request Validated",
        "CBR Checkpoint Failed",
    ]
    assert watched.watch_messages() == []


# -- CBR misbehaving ------------------------------------------------------------------------------------


def test_a_404_right_after_the_create_is_looked_at_again(watched: Sandbox) -> None:
    checkpoint_id = create(watched, request("fresh-1"))["checkpoint"]["id"]
    watched.emulator.faults.append(
        Fault(
            method="GET",
            path_suffix=f"/checkpoints/{checkpoint_id}",
            status=404,
            body={
                "error_code": "BackupService.6217",
                "error_msg": f"Checkpoint {checkpoint_id} does not exist.",
            },
        )
    )
    watched.emulator.backup_duration = 0.2

    events = watched.follow_completion(lambda_handler)

    ((kind, _),) = finals(events)
    assert kind == "CBR Checkpoint Completed"
    statuses = show_requests(watched, checkpoint_id)
    assert statuses[0] == 404
    assert statuses[-1] == 200


def test_a_checkpoint_still_unknown_long_after_the_create_is_a_failure(watched: Sandbox) -> None:
    create(watched, request("lost-1"))
    (scheduled,) = watched.watch_messages()
    scheduled["watch"]["checkpoint_id"] = str(uuid.uuid4())
    scheduled["watch"]["first_seen"] = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()

    response = lambda_handler({"Records": [sqs_record(watch_body(scheduled))]}, LocalContext())

    assert response == {"batchItemFailures": []}
    ((kind, detail),) = finals(watched.published_events())
    assert kind == "CBR Checkpoint Failed"
    assert detail["stage"] == "completion"
    assert detail["error"]["code"] == "BackupService.6217"
    assert detail["error"]["http_status"] == 404
    assert detail["checkpoint"] == {"id": scheduled["watch"]["checkpoint_id"]}


def test_a_checkpoint_deleted_before_it_finished_is_a_clear_failure(watched: Sandbox) -> None:
    created = create(watched, request("deleted-1"))
    watched.emulator.backup_duration = None  # its backup never finishes
    deleted = created["checkpoint"] | {"status": "deleted"}
    watched.emulator.faults.append(
        Fault(
            method="GET",
            path_suffix=f"/checkpoints/{deleted['id']}",
            status=200,
            body={"checkpoint": deleted},
        )
    )

    ((kind, detail),) = finals(watched.follow_completion(lambda_handler))

    assert kind == "CBR Checkpoint Failed"
    assert detail["error"]["code"] == "CheckpointDeleted"
    assert detail["checkpoint"]["status"] == "deleted"


def test_a_backup_restored_from_right_after_it_finished_ends_completed_whatever_cbr_leaves_null(
    watched: Sandbox,
) -> None:
    created = create(watched, request("restored-1", resources=[RESOURCE_ID]))
    checkpoint_id = created["checkpoint"]["id"]
    watched.emulator.backup_duration = 0.0
    # Given ShowCheckpoint answering without any name, and the backup already being restored from
    backup_id = str(uuid.uuid4())
    restoring = {
        "id": backup_id,
        "checkpoint_id": checkpoint_id,
        "resource_id": RESOURCE_ID,
        "status": "restoring",
    }
    watched.emulator.faults.extend(
        [
            Fault(
                "GET",
                f"/checkpoints/{checkpoint_id}",
                nulls=("checkpoint.vault.name", "checkpoint.vault.resources[].name", "checkpoint.extra_info"),
                times=10,
            ),
            Fault(
                "GET",
                "/backups",
                status=200,
                body={"backups": [restoring | {"name": None}], "count": 1},
                times=10,
            ),
        ]
    )

    ((kind, detail),) = finals(watched.follow_completion(lambda_handler))

    # Then the backup finished: Completed, not Failed
    assert kind == "CBR Checkpoint Completed"
    assert "error" not in detail
    assert detail["checkpoint"]["status"] == "available"
    assert detail["checkpoint"]["vault"]["name"] is None
    assert detail["resources"] == [
        {"resource_id": RESOURCE_ID, "backup_id": backup_id, "status": "restoring"}
    ]
    assert not [r for r in watched.emulator.requests if "operation-logs" in r.path]


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        pytest.param(
            "checkpoint", 429, {"error_code": "APIGW.0308", "error_msg": "throttled"}, id="throttled"
        ),
        pytest.param("checkpoint", 500, {"error_code": "BackupService.9910", "error_msg": "boom"}, id="500"),
        pytest.param("/backups", 503, b"Service Unavailable", id="backups 503"),
    ],
)
def test_transient_cbr_errors_send_the_watch_record_back(
    watched: Sandbox, path: str, status: int, body: dict[str, Any] | bytes
) -> None:
    checkpoint_id = create(watched, request("busy-1"))["checkpoint"]["id"]
    watched.emulator.backup_duration = 0.0
    suffix = f"/checkpoints/{checkpoint_id}" if path == "checkpoint" else path
    watched.emulator.faults.append(Fault(method="GET", path_suffix=suffix, status=status, body=body))
    (scheduled,) = watched.watch_messages()
    record = sqs_record(watch_body(scheduled), "watch-1")

    failed = lambda_handler({"Records": [record]}, LocalContext())
    nothing = watched.published_events()
    redelivered = lambda_handler({"Records": [record]}, LocalContext())

    assert failed == {"batchItemFailures": [{"itemIdentifier": "watch-1"}]}
    assert nothing == []
    assert redelivered == {"batchItemFailures": []}
    ((kind, _),) = finals(watched.published_events())
    assert kind == "CBR Checkpoint Completed"


def test_a_transient_error_reading_the_reasons_sends_the_record_back(
    watched: Sandbox, two_resource_vault: str
) -> None:
    create(watched, request("reasons-1", two_resource_vault))
    watched.emulator.fail_resources(VOLUME_ID, "BackupService.7003", "The disk status does not allow backup.")
    watched.emulator.backup_duration = 0.0
    watched.emulator.faults.append(
        Fault(
            method="GET", path_suffix="/operation-logs", status=500, body={"error_code": "BackupService.9910"}
        )
    )
    (scheduled,) = watched.watch_messages()
    record = sqs_record(watch_body(scheduled), "watch-2")

    failed = lambda_handler({"Records": [record]}, LocalContext())
    redelivered = lambda_handler({"Records": [record]}, LocalContext())

    assert failed == {"batchItemFailures": [{"itemIdentifier": "watch-2"}]}
    assert redelivered == {"batchItemFailures": []}
    ((kind, detail),) = finals(watched.published_events())
    assert kind == "CBR Checkpoint Failed"
    assert detail["error"]["code"] == "BackupService.7003"


# -- watch messages that cannot be followed --------------------------------------------------------------


def test_a_broken_watch_message_is_rejected_by_field(watched: Sandbox) -> None:
    record = sqs_record({"watch": {"version": 1, "checkpoint_id": "not-a-uuid"}}, "broken-1")

    response = lambda_handler({"Records": [record]}, LocalContext())

    assert response == {"batchItemFailures": []}
    ((kind, detail),) = finals(watched.published_events())
    assert kind == "CBR Backup Request Rejected"
    fields = {error["field"] for error in detail["errors"]}
    assert {"watch.checkpoint_id", "watch.project_id", "watch.first_seen"} <= fields
    assert detail["trigger"]["id"] == "broken-1"


def test_without_a_watch_queue_nothing_is_scheduled_and_a_watch_message_is_not_honoured(
    sandbox: Sandbox,
) -> None:
    with sandbox.configured(WATCH_QUEUE_URL=sandbox.watch_queue_url):
        create(sandbox, request("switched-1"))
    (scheduled,) = sandbox.watch_messages()

    lambda_handler(request("unwatched-1"), LocalContext())  # the sandbox fixture sets no WATCH_QUEUE_URL
    response = lambda_handler({"Records": [sqs_record(watch_body(scheduled), "watch-3")]}, LocalContext())

    assert len(sandbox.watch_messages()) == 1
    # Without a watch queue, no queue's records are checks: the message is refused, not followed
    assert response == {"batchItemFailures": []}
    assert [e["detail-type"] for e in sandbox.published_events()] == [
        "CBR Checkpoint Created",
        "CBR Backup Request Rejected",
    ]
    assert [r.method for r in sandbox.emulator.requests] == ["POST", "POST"]


def sqs_record(body: Any, message_id: str | None = None) -> dict[str, Any]:
    """A record of the watch queue."""
    return _sqs_record(body, message_id=message_id, queue=WATCH_QUEUE)


def request_record(body: Any, message_id: str | None = None) -> dict[str, Any]:
    """A record of the request queue."""
    return _sqs_record(body, message_id=message_id)
