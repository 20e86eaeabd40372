"""EventPublisher over real HTTP: moto for the happy paths, an in-memory PutEvents for failures."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from tests.fakes import AnsweringTransport, FakeClock, HighestJitter

from cbr_checkpointer import http
from cbr_checkpointer.aws import AwsCredentials, AwsJsonClient, aws_json_client
from cbr_checkpointer.domain import (
    BackupRequest,
    ErrorInfo,
    FieldError,
    Outcome,
    OutcomeKind,
    Rejected,
    ResourceError,
    ResourceResult,
    Trigger,
    WatchCheck,
)
from cbr_checkpointer.ports import SystemClock
from cbr_checkpointer.publisher import MAX_ENTRY_BYTES, RESOURCE_LISTS, EventPublisher, event_detail
from cbr_checkpointer.retry import Deadline, Retrier, RetryPolicy
from cbr_checkpointer.tls import trusting_no_one

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CREDENTIALS = AwsCredentials("AKIAIOSFODNN7EXAMPLE", SecretStr("moto-secret"), None)
BUS = "cbr-checkpointer"
SOURCE = "cbr.checkpointer"
PROJECT_ID = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
TRIGGER = Trigger(kind="sqs", id="msg-1", time=datetime(2026, 11, 27, 2, 0, tzinfo=UTC))
NOW = 1_800_000_000.0
KINDS: tuple[OutcomeKind, ...] = ("created", "failed", "rejected", "validated")


def make_outcome(kind: OutcomeKind, key: str = "key-1", *, payload: Any = None) -> Outcome:
    if kind == "rejected":
        item: BackupRequest | Rejected = Rejected(
            idempotency_key=key,
            trigger=TRIGGER,
            errors=(FieldError("incremntal", "unknown field"),),
            payload={"vault_id": VAULT_ID, "incremntal": True} if payload is None else payload,
        )
        return Outcome(kind="rejected", item=item)
    item = BackupRequest(
        idempotency_key=key,
        project_id=PROJECT_ID,
        body={"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": f"cbr-{key}"}}},
        trigger=TRIGGER,
        dry_run=kind == "validated",
    )
    if kind == "created":
        return Outcome(kind="created", item=item, checkpoint={"id": f"cp-{key}", "status": "protecting"})
    if kind == "failed":
        return Outcome(
            kind="failed", item=item, error=ErrorInfo(kind="api", code="BackupService.6105", message="full")
        )
    return Outcome(kind="validated", item=item)


class CountingTransport:
    """A real connection pool (to moto on loopback) that counts the PutEvents calls going through it."""

    def __init__(self) -> None:
        self._inner = http.ConnectionPool(ssl_context=trusting_no_one(), max_connections=10)
        self.put_events_calls = 0

    def send(self, request: http.Request, timeout: http.Timeout) -> http.Response:
        if request.headers.get("x-amz-target") == "AWSEvents.PutEvents":
            self.put_events_calls += 1
        return self._inner.send(request, timeout)

    def close(self) -> None:
        self._inner.close()


class Bus:
    """A bus on moto whose rule sends every event of our source to a queue we can read back."""

    def __init__(self, moto: str) -> None:
        self.transport = CountingTransport()
        self.events = aws_json_client("events", moto, REGION, CREDENTIALS, transport=self.transport)
        self.sqs = aws_json_client("sqs", moto, REGION, CREDENTIALS)
        self.events.call("CreateEventBus", {"Name": BUS})
        self.queue_url = self.sqs.call("CreateQueue", {"QueueName": "capture"})["QueueUrl"]
        queue_arn = self.sqs.call(
            "GetQueueAttributes", {"QueueUrl": self.queue_url, "AttributeNames": ["QueueArn"]}
        )["Attributes"]["QueueArn"]
        self.events.call(
            "PutRule", {"Name": "all", "EventBusName": BUS, "EventPattern": json.dumps({"source": [SOURCE]})}
        )
        self.events.call(
            "PutTargets", {"Rule": "all", "EventBusName": BUS, "Targets": [{"Id": "q", "Arn": queue_arn}]}
        )
        self.transport.put_events_calls = 0

    def publisher(self) -> EventPublisher:
        return EventPublisher(self.events, source=SOURCE, bus_name=BUS, retry=Retrier(clock=NeverSleeps()))

    def received(self) -> list[dict[str, Any]]:
        envelopes: list[dict[str, Any]] = []
        while messages := self.sqs.call(
            "ReceiveMessage", {"QueueUrl": self.queue_url, "MaxNumberOfMessages": 10}
        ).get("Messages"):
            for message in messages:
                envelopes.append(json.loads(message["Body"]))
                self.sqs.call(
                    "DeleteMessage", {"QueueUrl": self.queue_url, "ReceiptHandle": message["ReceiptHandle"]}
                )
        return envelopes

    def close(self) -> None:
        self.events.close()
        self.sqs.close()


class NeverSleeps(SystemClock):
    """The machine's time, for a publish that expects no retry: asked to sleep, it fails the test."""

    def sleep(self, seconds: float) -> None:
        raise AssertionError(f"no retry expected, yet asked to sleep {seconds}s")


@pytest.fixture
def bus(moto: str) -> Iterator[Bus]:
    built = Bus(moto)
    yield built
    built.close()


@pytest.mark.parametrize("kind", KINDS)
def test_ten_outcomes_are_one_put_events_call(bus: Bus, kind: OutcomeKind) -> None:
    outcomes = [make_outcome(kind, f"key-{index}") for index in range(10)]

    assert bus.publisher().publish(outcomes) == []

    assert bus.transport.put_events_calls == 1
    received = bus.received()
    assert sorted(e["detail"]["idempotency_key"] for e in received) == sorted(f"key-{i}" for i in range(10))


def test_twenty_three_outcomes_are_three_calls(bus: Bus) -> None:
    outcomes = [make_outcome(KINDS[index % 4], f"key-{index:02}") for index in range(23)]

    assert bus.publisher().publish(outcomes) == []

    assert bus.transport.put_events_calls == 3
    received = bus.received()
    assert sorted(e["detail"]["idempotency_key"] for e in received) == [f"key-{i:02}" for i in range(23)]


def test_large_entries_are_split_so_no_call_exceeds_the_size_limit(bus: Bus) -> None:
    big = {"id": "cp", "status": "protecting", "extra_info": {"blob": "x" * 60_000}}
    outcomes = [
        Outcome(kind="created", item=make_outcome("created", f"key-{i}").item, checkpoint=big)
        for i in range(10)
    ]

    assert bus.publisher().publish(outcomes) == []

    assert bus.transport.put_events_calls == 3  # 4 + 4 + 2 entries of ~60 KB under 256 KiB each
    assert len(bus.received()) == 10


@pytest.mark.parametrize("kind", KINDS)
def test_the_envelope_read_back_carries_the_exact_detail(bus: Bus, kind: OutcomeKind) -> None:
    outcome = make_outcome(kind)

    bus.publisher().publish([outcome])

    (envelope,) = bus.received()
    assert envelope["source"] == SOURCE
    assert (
        envelope["detail-type"]
        == {
            "created": "CBR Checkpoint Created",
            "failed": "CBR Checkpoint Failed",
            "rejected": "CBR Backup Request Rejected",
            "validated": "CBR Backup Request Validated",
        }[kind]
    )
    assert envelope["detail"] == event_detail(outcome)


def test_the_shapes_read_back_have_exactly_the_keys_that_apply(bus: Bus) -> None:
    bus.publisher().publish([make_outcome(kind, kind) for kind in KINDS])

    details = {e["detail"]["outcome"]: e["detail"] for e in bus.received()}
    trigger = {"kind": "sqs", "id": "msg-1", "time": "2026-11-27T02:00:00+00:00"}
    request = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "cbr-created"}}}
    assert details["created"] == {
        "version": "1",
        "outcome": "created",
        "idempotency_key": "created",
        "project_id": PROJECT_ID,
        "vault_id": VAULT_ID,
        "request": request,
        "checkpoint": {"id": "cp-created", "status": "protecting"},
        "trigger": trigger,
        "duplicate": False,
    }
    assert details["failed"] == {
        "version": "1",
        "outcome": "failed",
        "idempotency_key": "failed",
        "project_id": PROJECT_ID,
        "vault_id": VAULT_ID,
        "request": {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "cbr-failed"}}},
        "error": {"kind": "api", "code": "BackupService.6105", "message": "full", "retryable": False},
        "trigger": trigger,
    }
    assert details["rejected"] == {
        "version": "1",
        "outcome": "rejected",
        "idempotency_key": "rejected",
        "error": {
            "kind": "validation",
            "code": "InvalidRequest",
            "message": "incremntal: unknown field",
            "retryable": False,
        },
        "errors": [{"field": "incremntal", "message": "unknown field"}],
        "trigger": trigger,
        "payload": {"vault_id": VAULT_ID, "incremntal": True},
    }
    assert details["validated"] == {
        "version": "1",
        "outcome": "validated",
        "idempotency_key": "validated",
        "project_id": PROJECT_ID,
        "vault_id": VAULT_ID,
        "request": {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "cbr-validated"}}},
        "trigger": trigger,
    }


def test_a_rejected_payload_over_32_kib_arrives_truncated(bus: Bus) -> None:
    payload = {"requests": [{"vault_id": f"vault-{index}", "name": "ünïcode"} for index in range(2000)]}
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

    bus.publisher().publish([make_outcome("rejected", payload=payload)])

    (envelope,) = bus.received()
    assert envelope["detail"]["payload_truncated"] is True
    truncated = envelope["detail"]["payload"]
    assert text.startswith(truncated)
    assert 32 * 1024 - 4 < len(truncated.encode("utf-8")) <= 32 * 1024


def test_a_missing_bus_leaves_every_outcome_unpublished(moto: str) -> None:
    events = aws_json_client("events", moto, REGION, CREDENTIALS)
    outcomes = [make_outcome("created", f"key-{index}") for index in range(3)]

    unpublished = EventPublisher(
        events, source=SOURCE, bus_name="no-such-bus", retry=Retrier(clock=NeverSleeps())
    ).publish(outcomes)

    assert unpublished == outcomes
    events.close()


# Failures moto cannot produce: a scripted PutEvents answering through an AnsweringTransport.


class ScriptedPutEvents:
    """Answers each PutEvents call with the next scripted reply (a function of the entries sent)."""

    def __init__(self, *replies: Callable[[list[dict[str, Any]]], httpx.Response]) -> None:
        self._replies = list(replies)
        self.calls: list[list[dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["x-amz-target"] == "AWSEvents.PutEvents"
        entries: list[dict[str, Any]] = json.loads(request.content)["Entries"]
        self.calls.append(entries)
        return self._replies[len(self.calls) - 1](entries)

    def client(self, retry: Retrier) -> AwsJsonClient:
        return aws_json_client(
            "events",
            "https://events.example.test",
            REGION,
            CREDENTIALS,
            transport=AnsweringTransport(self),
            retry=retry,
        )


def all_accepted(entries: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(
        200, json={"FailedEntryCount": 0, "Entries": [{"EventId": f"id-{i}"} for i in range(len(entries))]}
    )


def entry_fails(index: int, code: str) -> Callable[[list[dict[str, Any]]], httpx.Response]:
    def reply(entries: list[dict[str, Any]]) -> httpx.Response:
        results: list[dict[str, Any]] = [{"EventId": f"id-{i}"} for i in range(len(entries))]
        results[index] = {"ErrorCode": code, "ErrorMessage": "scripted"}
        return httpx.Response(200, json={"FailedEntryCount": 1, "Entries": results})

    return reply


def call_fails(status: int, code: str) -> Callable[[list[dict[str, Any]]], httpx.Response]:
    return lambda _: httpx.Response(status, json={"__type": code, "message": "scripted"})


POLICY = RetryPolicy()


def scripted_publisher(
    script: ScriptedPutEvents,
    clock: FakeClock,
    *,
    policy: RetryPolicy = POLICY,
    rng: random.Random | None = None,
    deadline: float | None = None,
) -> EventPublisher:
    """A publisher whose client and partial-batch retries share one retrier, as the runtime builds them."""
    retry = Retrier(policy, deadline=Deadline(deadline), clock=clock, rng=rng)
    return EventPublisher(script.client(retry), source=SOURCE, bus_name=BUS, retry=retry)


def test_a_throttled_entry_is_retried_alone_after_a_jittered_pause() -> None:
    script = ScriptedPutEvents(entry_fails(1, "ThrottlingException"), all_accepted)
    clock = FakeClock(NOW)
    outcomes = [make_outcome("created", f"key-{index}") for index in range(3)]

    unpublished = scripted_publisher(script, clock).publish(outcomes)

    assert unpublished == []
    assert len(script.calls) == 2
    assert script.calls[1] == [script.calls[0][1]]
    assert json.loads(script.calls[1][0]["Detail"])["idempotency_key"] == "key-1"
    assert len(clock.slept) == 1
    assert 0.0 <= clock.slept[0] <= POLICY.delay(1, None, HighestJitter())


def test_an_access_denied_entry_is_returned_without_retry() -> None:
    script = ScriptedPutEvents(entry_fails(0, "AccessDeniedException"))
    clock = FakeClock(NOW)
    outcomes = [make_outcome("failed", "denied"), make_outcome("created", "fine")]

    unpublished = scripted_publisher(script, clock).publish(outcomes)

    assert unpublished == [outcomes[0]]
    assert len(script.calls) == 1
    assert clock.slept == []


def test_entries_still_failing_after_every_attempt_are_returned(caplog: pytest.LogCaptureFixture) -> None:
    script = ScriptedPutEvents(*[entry_fails(0, "InternalFailure")] * 4)
    clock = FakeClock(NOW)
    outcome = make_outcome("rejected", "stuck", payload={"secret_looking": "do-not-log-me"})

    unpublished = scripted_publisher(script, clock, policy=RetryPolicy(max_attempts=4)).publish([outcome])

    assert unpublished == [outcome]
    assert len(script.calls) == 4
    assert len(clock.slept) == 3
    assert all(0.0 <= pause <= limit for pause, limit in zip(clock.slept, [1.0, 2.0, 4.0], strict=True))
    assert "InternalFailure" in caplog.text
    assert "stuck" in caplog.text
    assert "do-not-log-me" not in caplog.text


def test_a_whole_call_server_error_is_retried() -> None:
    script = ScriptedPutEvents(call_fails(500, "InternalFailure"), all_accepted)
    clock = FakeClock(NOW)
    outcomes = [make_outcome("created", f"key-{index}") for index in range(2)]

    assert scripted_publisher(script, clock).publish(outcomes) == []

    assert len(script.calls) == 2
    assert script.calls[0] == script.calls[1]
    assert len(clock.slept) == 1


def test_a_whole_call_refusal_is_not_retried() -> None:
    script = ScriptedPutEvents(call_fails(400, "AccessDeniedException"))
    clock = FakeClock(NOW)
    outcomes = [make_outcome("created", f"key-{index}") for index in range(2)]

    assert scripted_publisher(script, clock).publish(outcomes) == outcomes

    assert len(script.calls) == 1
    assert clock.slept == []


def test_backoff_grows_to_the_cap() -> None:
    script = ScriptedPutEvents(*[call_fails(503, "ServiceUnavailable")] * 8)
    clock = FakeClock(NOW)

    policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=8.0)
    scripted_publisher(script, clock, policy=policy, rng=HighestJitter()).publish([make_outcome("created")])

    assert len(script.calls) == 8
    assert clock.slept == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0])


def test_a_whole_call_retried_by_the_client_is_not_retried_again_by_the_publisher() -> None:
    script = ScriptedPutEvents(*[call_fails(500, "InternalFailure")] * POLICY.max_attempts)
    clock = FakeClock(NOW)
    outcomes = [make_outcome("created", f"key-{index}") for index in range(2)]

    assert scripted_publisher(script, clock).publish(outcomes) == outcomes

    assert len(script.calls) == POLICY.max_attempts
    assert len(clock.slept) == POLICY.max_attempts - 1


def test_a_throttled_entry_is_not_retried_past_the_deadline() -> None:
    script = ScriptedPutEvents(entry_fails(0, "ThrottlingException"), all_accepted)
    clock = FakeClock(NOW)
    outcome = make_outcome("created")

    # The invocation is already inside its safety margin: no pause fits.
    publisher = scripted_publisher(script, clock, deadline=NOW + POLICY.safety_margin / 2)

    assert publisher.publish([outcome]) == [outcome]
    assert len(script.calls) == 1
    assert clock.slept == []


def test_an_entry_too_large_even_without_payload_is_never_sent() -> None:
    script = ScriptedPutEvents(all_accepted)
    huge = Outcome(
        kind="created",
        item=make_outcome("created").item,
        checkpoint={"id": "cp", "blob": "x" * MAX_ENTRY_BYTES},
    )
    small = make_outcome("created", "small")

    unpublished = scripted_publisher(script, FakeClock(NOW)).publish([huge, small])

    assert unpublished == [huge]
    assert [json.loads(entry["Detail"])["idempotency_key"] for entry in script.calls[0]] == ["small"]


def test_a_rejected_entry_over_the_size_limit_gives_up_more_of_its_payload() -> None:
    script = ScriptedPutEvents(all_accepted)
    # Field errors take ~250 KB on their own (named in the message and listed), so the 32 KiB
    # payload no longer fits and must shrink for the entry to stay under 256 KiB.
    errors = tuple(FieldError(f"requests.{index}.name", "y" * 100) for index in range(950))
    rejected = Rejected(
        idempotency_key="many-errors", trigger=TRIGGER, errors=errors, payload={"blob": "z" * 40_000}
    )
    outcome = Outcome(kind="rejected", item=rejected)
    assert len(json.dumps(event_detail(outcome), separators=(",", ":"))) > MAX_ENTRY_BYTES
    assert (
        len(json.dumps(event_detail(outcome, payload_limit_bytes=0), separators=(",", ":"))) < MAX_ENTRY_BYTES
    )

    unpublished = scripted_publisher(script, FakeClock(NOW)).publish([outcome])

    assert unpublished == []
    (entry,) = script.calls[0]
    size = 14 + sum(len(entry[name].encode("utf-8")) for name in ("Source", "DetailType", "Detail"))
    assert size <= MAX_ENTRY_BYTES
    detail = json.loads(entry["Detail"])
    assert detail["payload_truncated"] is True
    assert 0 < len(detail["payload"]) < 32 * 1024
    assert len(detail["errors"]) == 950


def test_each_entry_names_bus_source_and_type() -> None:
    script = ScriptedPutEvents(all_accepted)

    scripted_publisher(script, FakeClock(NOW)).publish([make_outcome("validated")])

    (entry,) = script.calls[0]
    assert entry["Source"] == SOURCE
    assert entry["EventBusName"] == BUS
    assert entry["DetailType"] == "CBR Backup Request Validated"
    assert entry["Resources"] == []
    assert isinstance(entry["Time"], float)
    assert json.loads(entry["Detail"]) == event_detail(make_outcome("validated"))


# -- a vault of many resources: the event stays within EventBridge's entry limit ------------------------

MANY = 256
LONG_NAME = "n" * 255
LONG_MESSAGE = "m" * 255


def many_resources_outcome(kind: OutcomeKind) -> Outcome:
    """256 resources with 255-character names everywhere an event lists resources."""
    ids = [f"{index:08x}-0000-4000-8000-000000000000" for index in range(MANY)]
    details = [{"id": rid, "type": "OS::Nova::Server", "name": LONG_NAME} for rid in ids]
    body = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "many", "resource_details": details}}}
    checkpoint = {
        "id": "cp-many",
        "status": "protecting",
        "vault": {
            "id": VAULT_ID,
            "resources": [
                {"id": rid, "name": LONG_NAME, "type": "OS::Nova::Server", "protect_status": "available"}
                for rid in ids
            ],
            "skipped_resources": [
                {"id": rid, "name": LONG_NAME, "code": "BackupService.6302", "reason": LONG_MESSAGE}
                for rid in ids
            ],
        },
    }
    if kind in ("created", "validated"):
        item = BackupRequest("many", PROJECT_ID, body, TRIGGER, dry_run=kind == "validated")
        return Outcome(kind, item, checkpoint=checkpoint if kind == "created" else None)
    check = WatchCheck(
        idempotency_key="many",
        project_id=PROJECT_ID,
        vault_id=VAULT_ID,
        checkpoint_id="cp-many",
        request=body,
        trigger=TRIGGER,
        first_seen=TRIGGER.time or datetime.now(UTC),
        attempt=3,
    )
    resources = tuple(
        ResourceResult(
            resource_id=rid,
            status="error",
            backup_id=rid,
            resource_name=LONG_NAME,
            resource_type="OS::Nova::Server",
            error=ResourceError("BackupService.6001", LONG_MESSAGE),
        )
        for rid in ids
    )
    error = ErrorInfo("api", LONG_MESSAGE, code="CheckpointError") if kind == "failed" else None
    return Outcome(kind, check, checkpoint=checkpoint, error=error, resources=resources)


def eventbridge_entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it: 14 bytes for Time, then the UTF-8 bytes of Source,
    DetailType, Detail and each of Resources."""
    texts = [entry["Source"], entry["DetailType"], entry["Detail"], *entry.get("Resources", [])]
    return (14 if "Time" in entry else 0) + sum(len(text.encode("utf-8")) for text in texts)


def listed(detail: dict[str, Any], path: tuple[str, ...]) -> tuple[int, int] | None:
    """(entries kept, entries omitted) of the list at `path`, or None when the detail has no such list."""
    parent: Any = detail
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or path[-1] not in parent:
        return None
    return len(parent[path[-1]]), parent.get(f"{path[-1]}_omitted", 0)


@pytest.mark.parametrize("kind", ["created", "validated", "completed", "failed", "timed_out"])
def test_an_event_listing_many_resources_is_trimmed_to_fit_and_says_how_many_it_left_out(
    kind: OutcomeKind,
) -> None:
    script = ScriptedPutEvents(all_accepted)
    outcome = many_resources_outcome(kind)
    untrimmed = json.dumps(event_detail(outcome), separators=(",", ":"), ensure_ascii=False)

    unpublished = scripted_publisher(script, FakeClock(NOW)).publish([outcome])

    assert unpublished == []
    (entry,) = script.calls[0]
    assert eventbridge_entry_size(entry) <= MAX_ENTRY_BYTES
    detail = json.loads(entry["Detail"])
    lists = {path: listed(detail, path) for path in RESOURCE_LISTS}
    present = {path: counts for path, counts in lists.items() if counts is not None}
    assert all(kept + omitted == MANY for kept, omitted in present.values())
    if len(untrimmed.encode("utf-8")) > MAX_ENTRY_BYTES:
        assert sum(omitted for _, omitted in present.values()) > 0
    else:
        assert kind == "validated"  # the request alone fits: nothing is left out
        assert sum(omitted for _, omitted in present.values()) == 0
    assert detail["idempotency_key"] == "many"
    # The outcome itself is untouched: the ledger and other events share it.
    assert json.dumps(event_detail(outcome), separators=(",", ":"), ensure_ascii=False) == untrimmed
