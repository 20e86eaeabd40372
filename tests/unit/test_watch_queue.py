"""The SQS watch queue adapter without sockets: batching, retries, and SQS failures as QueueUnavailable."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from tests.fakes import FakeClock, FakeSqs

from cbr_checkpointer.aws import AwsError
from cbr_checkpointer.domain import QueueUnavailable, Trigger, WatchCheck
from cbr_checkpointer.retry import Retrier
from cbr_checkpointer.triggers import RequestDefaults, parse_watch_record
from cbr_checkpointer.watch_queue import SqsWatchQueue
from devtools.records import sqs_record

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/watch"
NOW = 1_800_000_000.0
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def make_check(key: str, attempt: int = 1) -> WatchCheck:
    return WatchCheck(
        idempotency_key=f"u:{key}",
        project_id="4229d7a4e1b64c4f9e7a2b1c3d5e6f70",
        vault_id="3b5816b5-f29c-4172-9d9a-76c719a659ce",
        checkpoint_id="8b0851a8-adf3-4f4c-a914-dead08bf9664",
        request={"checkpoint": {"vault_id": "3b5816b5-f29c-4172-9d9a-76c719a659ce", "parameters": {}}},
        trigger=Trigger("direct", "req-1"),
        first_seen=T0,
        attempt=attempt,
    )


def queue(sqs: FakeSqs) -> SqsWatchQueue:
    return SqsWatchQueue(sqs, QUEUE_URL, retry=Retrier(clock=FakeClock(NOW)))


def test_checks_go_ten_a_call_and_read_back_as_the_checks_sent() -> None:
    sqs = FakeSqs()
    checks = [(make_check(f"key-{i}"), 30) for i in range(12)]

    assert queue(sqs).send_all(checks) == [None] * 12

    assert [operation for operation, _ in sqs.sent] == ["SendMessageBatch", "SendMessageBatch"]
    assert [len(payload["Entries"]) for _, payload in sqs.sent] == [10, 2]
    entry = sqs.sent[0][1]["Entries"][0]
    record = sqs_record(json.loads(entry["MessageBody"]), message_id="m", queue="watch")
    assert (
        parse_watch_record(
            record,
            "arn:aws:sqs:us-east-1:123456789012:watch",
            defaults=RequestDefaults(project_id=checks[0][0].project_id, default_vault_id=None),
        )
        == checks[0][0]
    )


def test_a_delay_is_held_to_what_sqs_allows() -> None:
    sqs = FakeSqs()

    queue(sqs).send(make_check("k"), 5000)
    queue(sqs).send(make_check("k"), -3)

    assert [delay for _, delay in sqs.bodies()] == [900, 0]


def test_a_batch_entry_refused_by_sqs_is_retried_then_reported() -> None:
    sqs = FakeSqs()
    sqs.batch_failures = {"1": {"Code": "InternalError", "Message": "try again", "SenderFault": False}}

    assert queue(sqs).send_all([(make_check("a"), 30), (make_check("b"), 30)]) == [None, None]

    (_, first), (_, retry) = sqs.sent
    assert [entry["Id"] for entry in first["Entries"]] == ["0", "1"]
    assert [entry["Id"] for entry in retry["Entries"]] == ["0"]  # Ids number the entries of each call
    assert json.loads(retry["Entries"][0]["MessageBody"])["watch"]["idempotency_key"] == "u:b"


def test_a_batch_entry_refused_for_good_is_reported_at_once() -> None:
    sqs = FakeSqs()
    sqs.batch_failures = {"0": {"Code": "InvalidMessageContents", "Message": "no", "SenderFault": True}}

    results = queue(sqs).send_all([(make_check("a"), 30), (make_check("b"), 30)])

    assert isinstance(results[0], QueueUnavailable)
    assert (results[0].code, results[0].retryable) == ("InvalidMessageContents", False)
    assert results[1] is None
    assert len(sqs.sent) == 1


def test_sqs_down_is_queue_unavailable() -> None:
    # (The AWS client has retried what was worth retrying before the adapter sees the error.)
    sqs = FakeSqs()
    sqs.fail_with = AwsError("ServiceUnavailable", "down", http_status=503, retryable=True)

    with pytest.raises(QueueUnavailable) as raised:
        queue(sqs).send(make_check("k"), 30)
    results = queue(sqs).send_all([(make_check("a"), 30)])

    assert (raised.value.code, raised.value.http_status) == ("ServiceUnavailable", 503)
    assert [type(result) for result in results] == [QueueUnavailable]
