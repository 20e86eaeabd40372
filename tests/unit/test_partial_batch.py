"""The partial-batch sender and the PutEvents / SendMessageBatch answers, with scripted calls (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from tests.fakes import AnsweringTransport, FakeClock, HighestJitter

from cbr_checkpointer.aws import AwsCredentials, AwsError, AwsJsonClient, aws_json_client
from cbr_checkpointer.aws.partial_batch import (
    EntryFailure,
    EntryResult,
    PartialBatchSender,
    put_events,
    send_message_batch,
)
from cbr_checkpointer.retry import Deadline, Retrier, RetryPolicy

NOW = 1_800_000_000.0
THROTTLED = EntryFailure("ThrottlingException", "Rate exceeded", retryable=True)
DENIED = EntryFailure("AccessDeniedException", "no", retryable=False)
POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, safety_margin=5.0)


class ScriptedCalls:
    """One call per reply: each reply maps an entry to its result (default: taken)."""

    def __init__(self, *replies: Callable[[str], EntryResult] | AwsError) -> None:
        self._replies = list(replies)
        self.calls: list[list[str]] = []

    def __call__(self, entries: Sequence[str]) -> list[EntryResult]:
        self.calls.append(list(entries))
        reply = self._replies[len(self.calls) - 1] if len(self.calls) <= len(self._replies) else None
        if isinstance(reply, AwsError):
            raise reply
        return [None if reply is None else reply(entry) for entry in entries]


def failing(results: dict[str, EntryFailure]) -> Callable[[str], EntryResult]:
    return results.get


def sender(
    calls: ScriptedCalls,
    time: FakeClock,
    *,
    deadline: float | None = None,
    max_entries: int = 10,
    max_bytes: int | None = None,
) -> PartialBatchSender[str]:
    retry = Retrier(POLICY, deadline=Deadline(deadline), clock=time, rng=HighestJitter())
    size: Callable[[str], int] | None = len if max_bytes is not None else None
    return PartialBatchSender(calls, retry=retry, max_entries=max_entries, max_bytes=max_bytes, size=size)


def test_entries_go_at_most_max_entries_a_call() -> None:
    calls = ScriptedCalls()
    entries = [f"e{index}" for index in range(23)]

    results = sender(calls, FakeClock(NOW)).send(entries)

    assert results == [None] * 23
    assert [len(call) for call in calls.calls] == [10, 10, 3]
    assert [entry for call in calls.calls for entry in call] == entries


def test_entries_go_at_most_max_bytes_a_call() -> None:
    calls = ScriptedCalls()

    sender(calls, FakeClock(NOW), max_bytes=10).send(["aaaa", "bbbb", "cccc", "dddddddddd", "e"])

    assert calls.calls == [["aaaa", "bbbb"], ["cccc"], ["dddddddddd"], ["e"]]


def test_only_the_retryable_failures_are_sent_again_after_a_pause() -> None:
    time = FakeClock(NOW)
    calls = ScriptedCalls(failing({"b": THROTTLED, "c": DENIED}))

    results = sender(calls, time).send(["a", "b", "c", "d"])

    assert calls.calls == [["a", "b", "c", "d"], ["b"]]
    assert results == [None, None, DENIED, None]
    assert time.slept == [1.0]


def test_an_entry_failing_every_attempt_ends_with_its_last_failure() -> None:
    time = FakeClock(NOW)
    calls = ScriptedCalls(*[failing({"b": THROTTLED})] * POLICY.max_attempts)

    results = sender(calls, time).send(["a", "b"])

    assert results == [None, THROTTLED]
    assert len(calls.calls) == POLICY.max_attempts
    assert time.slept == [1.0, 2.0, 4.0]


def test_retries_of_entries_respect_the_deadline() -> None:
    time = FakeClock(NOW)
    calls = ScriptedCalls(*[failing({"a": THROTTLED})] * POLICY.max_attempts)

    results = sender(calls, time, deadline=NOW + POLICY.safety_margin + 1.5).send(["a"])

    assert results == [THROTTLED]
    assert calls.calls == [["a"], ["a"]]
    assert time.slept == [1.0]


def test_a_whole_call_failure_ends_its_entries_without_another_call() -> None:
    # The AWS client already retried the call as far as the policy allows.
    time = FakeClock(NOW)
    refused = AwsError("ThrottlingException", "Rate exceeded", http_status=400, retryable=True)
    calls = ScriptedCalls(refused)

    results = sender(calls, time, max_entries=2).send(["a", "b", "c"])

    assert calls.calls == [["a", "b"], ["c"]]
    assert results == [EntryFailure("ThrottlingException", "Rate exceeded", True, 400)] * 2 + [None]
    assert time.slept == []


@pytest.mark.parametrize(
    ("max_entries", "max_bytes", "size", "problem"),
    [(0, None, None, "max_entries"), (10, 100, None, "max_bytes and size")],
)
def test_bad_limits_are_refused(
    max_entries: int, max_bytes: int | None, size: Callable[[str], int] | None, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        PartialBatchSender(
            ScriptedCalls(), retry=Retrier(), max_entries=max_entries, max_bytes=max_bytes, size=size
        )


# -- the two operations' answers, over the AWS JSON protocol on an in-memory transport

CREDENTIALS = AwsCredentials("AKIAIOSFODNN7EXAMPLE", SecretStr("secret"), None)


def client_answering(service: str, answer: dict[str, Any], sent: list[dict[str, Any]]) -> AwsJsonClient:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=answer)

    return aws_json_client(
        service, "https://aws.example.test", "eu-west-1", CREDENTIALS, transport=AnsweringTransport(handler)
    )


def test_put_events_reads_each_entrys_error_code() -> None:
    sent: list[dict[str, Any]] = []
    answer = {
        "FailedEntryCount": 2,
        "Entries": [
            {"EventId": "1"},
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"},
            {"ErrorCode": "MalformedDetail", "ErrorMessage": "bad"},
            {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
        ],
    }
    events = client_answering("events", answer, sent)

    results = put_events(events, [{"Detail": str(index)} for index in range(4)])

    assert sent == [{"Entries": [{"Detail": "0"}, {"Detail": "1"}, {"Detail": "2"}, {"Detail": "3"}]}]
    assert results == [
        None,
        EntryFailure("ThrottlingException", "Rate exceeded", True),
        EntryFailure("MalformedDetail", "bad", False),
        EntryFailure("InternalFailure", "oops", True),
    ]


def test_put_events_without_one_result_per_entry_fails_them_all_retryably() -> None:
    events = client_answering("events", {"FailedEntryCount": 1, "Entries": []}, [])

    results = put_events(events, [{"Detail": "0"}, {"Detail": "1"}])

    assert [result.code if result else None for result in results] == ["InvalidResponse"] * 2
    assert all(result is not None and result.retryable for result in results)


def test_send_message_batch_numbers_the_entries_and_reads_sender_fault() -> None:
    sent: list[dict[str, Any]] = []
    answer = {
        "Successful": [{"Id": "0", "MessageId": "m0"}],
        "Failed": [
            {"Id": "2", "Code": "InternalError", "Message": "try again", "SenderFault": False},
            {"Id": "1", "Code": "InvalidParameterValue", "Message": "too big", "SenderFault": True},
        ],
    }
    sqs = client_answering("sqs", answer, sent)

    results = send_message_batch(
        sqs, "https://queue", [{"MessageBody": "a"}, {"MessageBody": "b"}, {"MessageBody": "c"}]
    )

    assert sent == [
        {
            "QueueUrl": "https://queue",
            "Entries": [
                {"Id": "0", "MessageBody": "a"},
                {"Id": "1", "MessageBody": "b"},
                {"Id": "2", "MessageBody": "c"},
            ],
        }
    ]
    assert results == [
        None,
        EntryFailure("InvalidParameterValue", "too big", False),
        EntryFailure("InternalError", "try again", True),
    ]


def test_an_entry_send_message_batch_did_not_answer_for_is_a_retryable_failure() -> None:
    sqs = client_answering("sqs", {"Successful": [{"Id": "0", "MessageId": "m0"}]}, [])

    results = send_message_batch(sqs, "https://queue", [{"MessageBody": "a"}, {"MessageBody": "b"}])

    assert results[0] is None
    unanswered = EntryFailure("InvalidResponse", "SendMessageBatch did not answer for this entry", True)
    assert results[1] == unanswered
