"""The SQS request queue adapter without sockets: ten messages a call, bodies the request parser reads back
as the vaults' requests, and what SQS did not take as QueueUnavailable."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.fakes import FakeClock, FakeSqs

from cbr_checkpointer.aws import AwsError
from cbr_checkpointer.domain import BackupRequest, Selection, Trigger
from cbr_checkpointer.expansion import expand_selection
from cbr_checkpointer.request_queue import SqsRequestQueue
from cbr_checkpointer.retry import Retrier
from cbr_checkpointer.triggers import RequestDefaults, parse_sqs_record
from devtools.records import sqs_record

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/requests"
NOW = 1_800_000_000.0
PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
DEFAULTS = RequestDefaults(project_id=PROJECT, default_vault_id=None)
SELECTION = Selection(
    idempotency_key="u:nightly",
    project_id=PROJECT,
    selector={"tags": {"backup": ["nightly"]}},
    parameters={"incremental": True, "auto_trigger": False, "name": "fleet-20261127"},
    trigger=Trigger("schedule", "u:nightly", datetime(2026, 11, 27, 2, 0, tzinfo=UTC)),
)


def vaults(count: int) -> list[str]:
    return [f"00000000-0000-4000-8000-{index:012d}" for index in range(count)]


def queue(sqs: FakeSqs) -> SqsRequestQueue:
    return SqsRequestQueue(sqs, QUEUE_URL, retry=Retrier(clock=FakeClock(NOW)))


def test_vaults_go_ten_a_call_and_read_back_as_the_requests_the_selection_makes() -> None:
    sqs = FakeSqs()

    results = queue(sqs).send_vaults(SELECTION, vaults(23))

    assert results == [None] * 23
    assert [len(payload["Entries"]) for _, payload in sqs.sent] == [10, 10, 3]
    assert {payload["QueueUrl"] for _, payload in sqs.sent} == {QUEUE_URL}
    bodies = [entry["MessageBody"] for _, payload in sqs.sent for entry in payload["Entries"]]
    read_back = [item for body in bodies for item in parse_sqs_record(sqs_record(body), defaults=DEFAULTS)]
    assert read_back == expand_selection(SELECTION, vaults(23))
    assert all(isinstance(item, BackupRequest) for item in read_back)


def test_an_entry_sqs_failed_retryably_is_sent_again_alone() -> None:
    sqs = FakeSqs()
    sqs.batch_failures = {"3": {"Code": "InternalError", "Message": "try again", "SenderFault": False}}

    results = queue(sqs).send_vaults(SELECTION, vaults(5))

    assert results == [None] * 5
    resent = sqs.sent[1][1]["Entries"]
    assert len(resent) == 1
    assert json.loads(resent[0]["MessageBody"])["fanout"]["vault_id"] == vaults(5)[3]


def test_what_sqs_would_not_take_comes_back_per_vault() -> None:
    sqs = FakeSqs()
    sqs.batch_failures = {"1": {"Code": "InvalidParameterValue", "Message": "bad", "SenderFault": True}}

    results = queue(sqs).send_vaults(SELECTION, vaults(3))

    assert results[0] is None
    assert results[2] is None
    failure = results[1]
    assert failure is not None
    assert (failure.code, failure.retryable) == ("InvalidParameterValue", False)


def test_a_call_that_failed_as_a_whole_fails_each_of_its_vaults() -> None:
    sqs = FakeSqs()
    sqs.fail_with = AwsError("AccessDenied", "not allowed", http_status=403, retryable=False)

    results = queue(sqs).send_vaults(SELECTION, vaults(2))

    assert [failure.code if failure else None for failure in results] == ["AccessDenied", "AccessDenied"]
