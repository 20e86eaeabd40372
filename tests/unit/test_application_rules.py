"""What goes back to the trigger, without sockets: the application over the real services, on the
fakes of tests/fakes.py."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.fakes import (
    FakeCbr,
    FakeClock,
    FakeEventSink,
    FakeRequestQueue,
    FakeVaults,
    FakeWatchQueue,
    FlakyLedger,
    RecordingObserver,
)

from cbr_checkpointer.application import Application, BatchResult, MessageBody
from cbr_checkpointer.completion import CompletionService
from cbr_checkpointer.domain import (
    BackupRequest,
    CbrCallFailed,
    ErrorInfo,
    FieldError,
    Outcome,
    QueueUnavailable,
    Rejected,
    TransientFailure,
    Trigger,
    WatchCheck,
)
from cbr_checkpointer.fanout import FanoutService
from cbr_checkpointer.observability import logger
from cbr_checkpointer.retry import RetryPolicy
from cbr_checkpointer.service import MIN_CALL_SECONDS, CheckpointService

NOW = 1_800_000_000.0
PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
CHECKPOINT = "8b0851a8-adf3-4f4c-a914-dead08bf9664"


def request(key: str) -> BackupRequest:
    body = {"checkpoint": {"vault_id": VAULT, "parameters": {"name": key}}}
    return BackupRequest(key, PROJECT, body, Trigger("direct", "req-1"))


def rejected(key: str) -> Rejected:
    return Rejected(key, Trigger("sqs", "m"), (FieldError("vault_id", "required"),), payload={})


def watch(key: str = "watched", attempt: int = 1) -> WatchCheck:
    return WatchCheck(
        idempotency_key=key,
        project_id=PROJECT,
        vault_id=VAULT,
        checkpoint_id=CHECKPOINT,
        request={"checkpoint": {"vault_id": VAULT, "parameters": {"name": key}}},
        trigger=Trigger("direct", "req-1"),
        first_seen=datetime.fromtimestamp(NOW - 60, UTC),
        attempt=attempt,
    )


class World:
    def __init__(self, *, watched: bool = True) -> None:
        self.cbr = FakeCbr()
        self.ledger = FlakyLedger()
        self.clock = FakeClock(NOW)
        self.events = FakeEventSink()
        self.queue = FakeWatchQueue()
        self.observer = RecordingObserver()
        service = CheckpointService(
            self.cbr, self.ledger, retry=RetryPolicy(max_attempts=1), clock=self.clock, observer=self.observer
        )
        completion = (
            CompletionService(self.cbr, self.ledger, self.queue, max_age_seconds=3600, clock=self.clock)
            if watched
            else None
        )
        self.vaults = FakeVaults()
        self.request_queue = FakeRequestQueue()
        fanout = FanoutService(self.vaults, self.request_queue, inline_max=2, clock=self.clock)
        self.application = Application(
            service, self.events, completion, fanout=fanout, max_workers=4, observer=self.observer
        )

    def hold(self, key: str) -> None:
        """Another live invocation holds `key`."""
        self.ledger.memory.claim(key, now=NOW, lease_until=NOW + 600)

    def batch(
        self,
        messages: Sequence[tuple[str, MessageBody]],
        *,
        deadline: float = NOW + 60,
    ) -> BatchResult:
        """Run messages whose bodies are already read."""
        return self.application.run_sqs_batch(
            [(message_id, reading(body)) for message_id, body in messages], deadline=deadline
        )


def reading(body: MessageBody) -> Callable[[], MessageBody]:
    return lambda: body


def keys(ended: Sequence[Outcome | TransientFailure]) -> list[str]:
    return [end.item.idempotency_key for end in ended]


# -- a timer, rule or direct invocation ---------------------------------------------------------------


def test_given_every_request_ends_then_all_are_published_followed_and_the_invocation_succeeds() -> None:
    world = World()

    result = world.application.run_invocation([request("a"), request("b"), rejected("c")], deadline=NOW + 60)

    assert result.must_retry is False
    assert [summary["outcome"] for summary in result.summaries()] == ["created", "created", "rejected"]
    assert keys(world.events.published) == ["a", "b", "c"]
    assert [check.idempotency_key for check, _ in world.queue.sent] == ["a", "b"]  # first checks
    assert keys(world.observer.published) == ["a", "b", "c"]


def test_given_many_requests_then_their_outcomes_keep_the_order_of_the_trigger() -> None:
    world = World()
    names = [f"k{index}" for index in range(9)]

    result = world.application.run_invocation([request(name) for name in names], deadline=NOW + 60)

    assert keys(result.outcomes) == names
    assert world.cbr.names().count("create") == 9


def test_given_an_outcome_not_published_then_the_invocation_must_be_retried() -> None:
    world = World()
    world.events.refused_keys = {"b"}

    result = world.application.run_invocation([request("a"), request("b")], deadline=NOW + 60)

    assert result.must_retry is True
    assert keys(result.unpublished) == ["b"]
    assert "1 outcome(s) were not published" in result.failure_message()
    assert (keys(world.observer.published), keys(world.observer.unpublished)) == (["a"], ["b"])


def test_given_a_first_check_not_scheduled_then_the_invocation_must_be_retried() -> None:
    world = World()
    world.queue.down = QueueUnavailable("ServiceUnavailable", "down", http_status=503)

    result = world.application.run_invocation([request("a")], deadline=NOW + 60)

    assert result.must_retry is True
    assert keys(result.unfollowed) == ["a"]
    assert keys(world.events.published) == ["a"]  # the Created is out; the retry replays it and schedules


def test_given_a_transient_failure_then_the_others_are_published_and_the_invocation_retried() -> None:
    world = World()
    world.hold("busy")

    result = world.application.run_invocation([request("a"), request("busy")], deadline=NOW + 60)

    assert result.must_retry is True
    assert keys(result.transient) == ["busy"]
    assert keys(world.events.published) == ["a"]
    assert result.failure_message().startswith("1 request(s) failed transiently")


def test_given_nothing_to_do_then_nothing_is_published() -> None:
    world = World()

    result = world.application.run_invocation([], deadline=NOW + 60)

    assert (result.must_retry, result.outcomes, world.observer.published) == (False, (), [])


def test_given_the_ledger_down_then_the_invocation_fails_for_lambda_to_retry() -> None:
    world = World()
    world.ledger.down = {"claim"}

    result = world.application.run_invocation([request("a"), request("b")], deadline=NOW + 60)

    assert result.must_retry
    assert [failure.info.code for failure in result.transient] == ["InternalServerError"] * 2
    assert world.cbr.calls == []
    assert world.events.published == []


def test_given_more_requests_than_time_then_those_that_cannot_start_go_back_with_their_message() -> None:
    world = World()
    world.cbr.on_call = lambda name: world.clock.advance(0.25)
    deadline = NOW + 8
    margin = RetryPolicy(max_attempts=1).safety_margin
    items = [request(f"k{index}") for index in range(100)]

    first = world.batch([("m1", items)], deadline=deadline)
    started_by = world.clock.now()

    assert first.item_failures == ("m1",)
    assert started_by <= deadline - margin
    created = len(world.cbr.calls)
    assert created == int((deadline - margin - MIN_CALL_SECONDS - NOW) / 0.25) + 1
    assert len(first.outcomes) == created
    # Delivered again with a fresh invocation's time: the finished ones replay, the rest are created.
    world.cbr.on_call = lambda name: None
    again = world.batch([("m1", items)], deadline=world.clock.now() + 60)
    assert again.item_failures == ()
    assert len(world.cbr.calls) == 100
    assert sum(outcome.duplicate for outcome in again.outcomes) == created


def test_given_an_invocation_out_of_time_then_it_is_retried_rather_than_creating_past_its_deadline() -> None:
    world = World()
    world.application = Application(
        CheckpointService(world.cbr, world.ledger, retry=RetryPolicy(max_attempts=1), clock=world.clock),
        world.events,
        None,
        fanout=FanoutService(world.vaults, world.request_queue, inline_max=2, clock=world.clock),
        max_workers=1,
    )
    world.cbr.on_call = lambda name: world.clock.advance(0.25)

    result = world.application.run_invocation(
        [request(f"k{index}") for index in range(100)], deadline=NOW + 8
    )

    assert result.must_retry
    assert world.clock.now() <= NOW + 8 - RetryPolicy().safety_margin
    assert len(result.outcomes) + len(result.transient) == 100
    assert {failure.info.code for failure in result.transient} == {"NoTimeLeft"}


# -- an SQS batch --------------------------------------------------------------------------------------


def test_given_a_batch_then_only_the_messages_that_could_not_finish_go_back() -> None:
    world = World()
    world.hold("busy")

    result = world.batch([("m1", [request("a")]), ("m2", [request("busy")]), ("m3", [rejected("c")])])

    assert result.item_failures == ("m2",)
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert result.requeued == 1
    assert keys(world.events.published) == ["a", "c"]


def test_given_a_message_whose_outcome_was_not_published_then_it_goes_back() -> None:
    world = World()
    world.events.refused_keys = {"b"}

    result = world.batch([("m1", [request("a")]), ("m2", [request("b")])])

    assert result.item_failures == ("m2",)
    assert result.requeued == 0
    assert keys(result.unpublished) == ["b"]


def test_given_a_created_whose_first_check_was_not_scheduled_then_its_message_goes_back() -> None:
    world = World()
    world.queue.down = QueueUnavailable("ServiceUnavailable", "down", http_status=503)

    result = world.batch([("m1", [request("a")]), ("m2", [rejected("r")])])

    assert result.item_failures == ("m1",)
    assert keys(result.unfollowed) == ["a"]


def test_given_a_message_with_several_requests_then_one_transient_sends_it_back_after_all_ran() -> None:
    world = World()
    world.hold("busy")

    result = world.batch([("m1", [request("busy"), request("a")])])

    assert result.item_failures == ("m1",)
    assert keys(world.events.published) == ["a"]  # served again from the ledger on redelivery


def test_given_a_message_that_failed_and_was_not_published_then_it_is_named_once() -> None:
    world = World()
    world.hold("busy")
    world.events.refused_keys = {"a"}

    result = world.batch([("m1", [request("a"), request("busy")])])

    assert result.item_failures == ("m1",)


def test_given_the_ledger_down_then_the_message_goes_back_and_the_others_are_published() -> None:
    world = World()
    world.ledger.down = {"claim"}

    result = world.batch([("m1", [request("a")]), ("m2", [rejected("r")])])

    assert result.item_failures == ("m1",)
    assert keys(world.events.published) == ["r"]


# -- running a batch's messages (what goes back to SQS) ---------------------------------------------


class Captured:
    """The lines the function's logger writes while a test runs."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    capture = Captured()
    previous = handler.setStream(capture.stream)
    try:
        yield capture
    finally:
        handler.setStream(previous)


def failing(error: Exception) -> Callable[[], MessageBody]:
    def read() -> MessageBody:
        raise error

    return read


@pytest.mark.parametrize(
    "error", [KeyError("body"), ValueError("not a number"), RuntimeError("boom"), TypeError("None")]
)
def test_given_one_message_raising_any_exception_then_it_alone_goes_back(error: Exception) -> None:
    world = World()

    result = world.application.run_sqs_batch(
        [("m1", reading([request("a")])), ("m2", failing(error)), ("m3", reading([request("c")]))],
        deadline=NOW + 60,
    )

    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert result.requeued == 1
    assert keys(world.events.published) == ["a", "c"]


def test_given_an_exception_that_is_not_ours_while_a_message_runs_then_it_alone_goes_back() -> None:
    world = World()
    world.cbr.creates = [RuntimeError("the client broke")]  # the first create only

    result = world.batch([("m1", [request("a")])])
    second = world.batch([("m2", [request("b")])])

    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert second.item_failures == ()


def test_given_every_message_failing_then_every_one_goes_back_and_nothing_is_raised() -> None:
    world = World()
    world.hold("busy")

    result = world.application.run_sqs_batch(
        [
            ("m1", failing(ValueError("x"))),
            ("m2", reading([request("busy")])),
            ("m3", failing(KeyError("y"))),
        ],
        deadline=NOW + 60,
    )

    assert result.item_failures == ("m1", "m2", "m3")  # in the batch's order
    assert result.requeued == 3
    assert (result.outcomes, world.events.published) == ((), [])


def test_given_no_message_then_nothing_goes_back_and_nothing_is_published() -> None:
    world = World()

    result = world.application.run_sqs_batch([], deadline=NOW + 60)

    assert result.response() == {"batchItemFailures": []}
    assert (result.outcomes, result.requeued, result.checks) == ((), 0, 0)
    assert world.events.published == []


def test_the_messages_of_a_batch_run_at_most_max_workers_at_once() -> None:
    world = World()  # max_workers=4
    # The first four messages can pass only together, then the next four: fewer at once breaks the
    # barrier (its timeout bounds the wait), which fails those messages.
    together = threading.Barrier(4, timeout=10)
    lock = threading.Lock()
    running = 0
    peak = 0
    workers: set[str] = set()

    def read(key: str) -> Callable[[], MessageBody]:
        def body() -> MessageBody:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
                workers.add(threading.current_thread().name)
            together.wait()
            with lock:
                running -= 1
            return [request(key)]

        return body

    result = world.application.run_sqs_batch(
        [(f"m{index}", read(f"k{index}")) for index in range(8)], deadline=NOW + 60
    )

    assert result.item_failures == ()
    assert peak == 4
    assert len(workers) == 4
    assert sorted(keys(result.outcomes)) == [f"k{index}" for index in range(8)]


def test_each_message_runs_with_its_own_message_id_in_the_log_keys(captured: Captured) -> None:
    world = World()
    seen: dict[str, object] = {}
    lock = threading.Lock()

    def read(message_id: str) -> Callable[[], MessageBody]:
        def body() -> MessageBody:
            with lock:
                seen[message_id] = logger.thread_safe_get_current_keys().get("message_id")
            if message_id == "m5":
                raise ValueError("unreadable")
            return [request(message_id)]

        return body

    result = world.application.run_sqs_batch(
        [(f"m{index}", read(f"m{index}")) for index in range(8)], deadline=NOW + 60
    )

    assert seen == {f"m{index}": f"m{index}" for index in range(8)}  # 8 messages on 4 reused threads
    assert result.item_failures == ("m5",)
    failure = [line for line in captured.lines() if line["message"].startswith("message failed")]
    assert [(line["message_id"], line["exception_name"]) for line in failure] == [("m5", "ValueError")]


# -- watch checks ------------------------------------------------------------------------------------


def test_given_a_check_of_a_running_checkpoint_then_the_next_is_scheduled_and_nothing_published() -> None:
    world = World()

    result = world.batch([("w1", watch())])

    assert result.item_failures == ()
    assert result.checks == 1
    assert [(check.attempt, delay) for check, delay in world.queue.sent] == [(2, 60)]
    assert world.events.published == []


def test_given_a_check_that_ends_the_checkpoint_then_its_end_is_published() -> None:
    world = World()
    world.cbr.status = "available"
    world.cbr.backups = [{"checkpoint_id": CHECKPOINT, "resource_id": "r", "id": "b", "status": "available"}]

    result = world.batch([("w1", watch())])

    assert [outcome.kind for outcome in result.outcomes] == ["completed"]
    assert keys(world.events.published) == ["watched"]


def test_given_cbr_busy_during_a_check_then_the_watch_message_goes_back() -> None:
    world = World()
    world.cbr.status = CbrCallFailed(
        ErrorInfo("api", "busy", code="APIGW.0308", http_status=429, retryable=True)
    )

    result = world.batch([("w1", watch()), ("m1", [request("a")])])

    assert result.item_failures == ("w1",)
    assert keys(world.events.published) == ["a"]


def test_given_a_malformed_watch_message_then_it_is_rejected_and_published() -> None:
    world = World()

    result = world.batch([("w1", rejected("bad-watch"))])

    assert (result.item_failures, [outcome.kind for outcome in result.outcomes]) == ((), ["rejected"])
    assert result.checks == 1


def test_given_no_watch_queue_then_a_watch_message_goes_back_to_its_queue() -> None:
    world = World(watched=False)

    with pytest.raises(TransientFailure) as raised:
        world.application.run_watch(watch(), deadline=NOW + 60, message_id="w1")
    result = world.batch([("w1", watch())])

    assert raised.value.info.code == "WatchNotConfigured"
    assert result.item_failures == ("w1",)


def test_given_no_watch_queue_then_created_checkpoints_are_not_followed() -> None:
    world = World(watched=False)

    result = world.application.run_invocation([request("a")], deadline=NOW + 60)

    assert (result.must_retry, world.queue.sent) == (False, [])
