"""The application: runs the work of one invocation and decides what goes back to its trigger.

For a timer, rule or direct invocation: expand its selections (`FanoutService`), run its requests
(concurrently, bounded), publish their outcomes, schedule the completion follow-up of each created
checkpoint, and ask for the invocation to be retried when anything could not be finished, published
or followed. For an SQS batch: the same per message (the messages concurrently, bounded), and the ids
of the messages that must be delivered again. The Lambda event and metrics stay in the handler;
everything here goes through ports and is tested with fakes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias

from cbr_checkpointer.completion import CompletionService
from cbr_checkpointer.domain import (
    ErrorInfo,
    Expansion,
    Outcome,
    Rejected,
    RequestItem,
    Selection,
    TransientFailure,
    WatchCheck,
    WorkItem,
)
from cbr_checkpointer.fanout import FanoutService
from cbr_checkpointer.observability import logger
from cbr_checkpointer.ports import EventSink, NoObserver, Observer
from cbr_checkpointer.service import CheckpointService
from cbr_checkpointer.values import value

MessageBody: TypeAlias = Sequence[RequestItem] | WatchCheck | Rejected
"""What one SQS message asks for: requests, or (a watch queue's message) a completion check or the
rejection of a malformed one."""
SqsMessage: TypeAlias = tuple[str, Callable[[], MessageBody]]
"""One message of an SQS batch: its message id, and how to read its body (called in the thread that
runs the message, so that a body that cannot be read fails that message alone)."""


@value
class InvocationResult:
    """What came of a timer, rule or direct invocation."""

    outcomes: tuple[Outcome, ...]
    transient: tuple[TransientFailure, ...]
    unpublished: tuple[Outcome, ...]
    unfollowed: tuple[Outcome, ...]
    expansions: tuple[Expansion, ...] = ()
    unpublished_expansions: tuple[Expansion, ...] = ()

    @property
    def must_retry(self) -> bool:
        """Whether the invocation must fail, so that Lambda retries it (every finished request is served
        again from the ledger, and those that were not finish then)."""
        return bool(self.transient or self.unpublished or self.unfollowed or self.unpublished_expansions)

    def failure_message(self) -> str:
        selections = (
            f"; {len(self.unpublished_expansions)} selection event(s) were not published"
            if self.unpublished_expansions
            else ""
        )
        return (
            f"{len(self.transient)} request(s) failed transiently and {len(self.unpublished)} outcome(s) "
            f"were not published{selections}; {len(self.unfollowed)} completion check(s) could not be "
            "scheduled; the invocation will be retried"
        )

    def summaries(self) -> list[dict[str, Any]]:
        return [summary(outcome) for outcome in self.outcomes]


@value
class BatchResult:
    """What came of an SQS batch: `item_failures` are the ids of the messages to deliver again."""

    item_failures: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    unpublished: tuple[Outcome, ...]
    unfollowed: tuple[Outcome, ...]
    requeued: int  # messages that failed by themselves (before publishing)
    checks: int  # watch messages among them
    expansions: tuple[Expansion, ...] = ()

    def response(self) -> dict[str, Any]:
        """The Lambda response for SQS partial batch failures."""
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.item_failures]}


class Application:
    def __init__(
        self,
        service: CheckpointService,
        events: EventSink,
        completion: CompletionService | None,
        *,
        fanout: FanoutService,
        max_workers: int,
        observer: Observer | None = None,
    ) -> None:
        self._service = service
        self._events = events
        self._completion = completion
        self._fanout = fanout
        self._max_workers = max_workers
        self._observer = observer or NoObserver()

    def run_invocation(self, items: Sequence[RequestItem], *, deadline: float) -> InvocationResult:
        """Run a timer's, rule's or direct invocation's requests (its selections expanded) to their ends
        and publish them."""
        work: list[WorkItem] = []
        expansions: list[Expansion] = []
        transient: list[TransientFailure] = []
        for item in items:
            if not isinstance(item, Selection):
                work.append(item)
                continue
            try:
                expansion, expanded = self._fanout.expand(item, deadline=deadline)
            except TransientFailure as failure:
                transient.append(failure)
                continue
            expansions.append(expansion)
            work.extend(expanded)
        results = self._execute_all(work, deadline=deadline)
        outcomes = [result for result in results if isinstance(result, Outcome)]
        transient.extend(result for result in results if isinstance(result, TransientFailure))
        unpublished_expansions = self.publish_expansions(expansions)
        unpublished, unfollowed = self.publish_and_follow(outcomes, deadline=deadline)
        return InvocationResult(
            tuple(outcomes),
            tuple(transient),
            tuple(unpublished),
            tuple(unfollowed),
            expansions=tuple(expansions),
            unpublished_expansions=tuple(unpublished_expansions),
        )

    def run_sqs_batch(self, messages: Sequence[SqsMessage], *, deadline: float) -> BatchResult:
        """Run an SQS batch's messages concurrently (at most `max_workers` at once), then publish and
        follow what finished.

        A message whose reading or running raises, whatever the exception, goes back to its queue and
        the others are not affected; when every message fails, every one goes back and nothing is
        raised. The log lines written while a message runs carry its `message_id`.
        """
        return SqsBatch(self, deadline=deadline).run(messages, max_workers=self._max_workers)

    def run_watch(self, item: WatchCheck | Rejected, *, deadline: float, message_id: str) -> Outcome | None:
        """One watch message: a completion check (its final outcome, or None when it goes on), or the
        rejection of a malformed message. Raises TransientFailure when it must be delivered again."""
        if isinstance(item, Rejected):
            return Outcome("rejected", item, error=item.error_info())
        if self._completion is None:
            # Not followed here: back to the queue, and after its receives to the watch DLQ (alarmed).
            info = ErrorInfo(
                "api",
                "a watch message arrived but WATCH_QUEUE_URL is not set: completion is not followed",
                code="WatchNotConfigured",
                retryable=True,
            )
            raise TransientFailure(item, info)
        return self._completion.check(item, deadline=deadline, message_id=message_id)

    def execute(self, item: WorkItem, *, deadline: float) -> Outcome:
        return self._service.execute(item, deadline=deadline)

    def expand(self, selection: Selection, *, deadline: float) -> tuple[Expansion, list[WorkItem]]:
        return self._fanout.expand(selection, deadline=deadline)

    def publish_expansions(self, expansions: Sequence[Expansion]) -> list[Expansion]:
        return self._events.publish_expansions(expansions) if expansions else []

    def publish_and_follow(
        self, outcomes: Sequence[Outcome], *, deadline: float
    ) -> tuple[list[Outcome], list[Outcome]]:
        """Publish the outcomes, then schedule the first completion check of each created checkpoint;
        the outcomes that were not published, and those whose check could not be scheduled."""
        if not outcomes:
            return [], []
        unpublished = self._events.publish(outcomes)
        published = [outcome for outcome in outcomes if not _among(outcome, unpublished)]
        self._observer.events_published(published, unpublished)
        unfollowed = [] if self._completion is None else self._completion.follow(outcomes, deadline=deadline)
        return unpublished, unfollowed

    def _execute_all(self, items: Sequence[WorkItem], *, deadline: float) -> list[Outcome | TransientFailure]:
        """Run items concurrently (at most `max_workers` at once), results in input order."""

        def run(item: WorkItem) -> Outcome | TransientFailure:
            try:
                return self._service.execute(item, deadline=deadline)
            except TransientFailure as failure:
                return failure

        if len(items) <= 1:
            return [run(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self._max_workers, len(items))) as pool:
            return list(pool.map(run, items))


class SqsBatch:
    """One SQS batch in progress: `run` runs each message in a thread of a pool, then publishes what
    finished and names every message to deliver again."""

    def __init__(self, application: Application, *, deadline: float) -> None:
        self._application = application
        self._deadline = deadline
        # (position of the message in the batch, message id, ...): published in the batch's order,
        # whatever order the threads finished in.
        self._finished: list[tuple[int, str, Outcome]] = []
        self._expansions: list[tuple[int, str, Expansion]] = []
        self._checks = 0
        self._lock = threading.Lock()

    def run(self, messages: Sequence[SqsMessage], *, max_workers: int) -> BatchResult:
        failed: list[str] = []
        if messages:
            with ThreadPoolExecutor(
                max_workers=min(max_workers, len(messages)), thread_name_prefix="sqs-message"
            ) as pool:
                ran = pool.map(self._run_message, range(len(messages)), messages)
                failed = [message_id for message_id in ran if message_id is not None]
        return self._finish(failed)

    def _run_message(self, position: int, message: SqsMessage) -> str | None:
        """Read and run one message; its id when it must be delivered again."""
        message_id, read = message
        logger.thread_safe_append_keys(message_id=message_id)  # replaces the previous message's
        try:
            body = read()
            if isinstance(body, WatchCheck | Rejected):
                self._run_watch(position, message_id, body)
            else:
                self._run_requests(position, message_id, body)
        except TransientFailure:
            return message_id  # the service and the completion check logged why
        except Exception:
            logger.exception("message failed; it goes back to its queue")
            return message_id
        return None

    def _run_requests(self, position: int, message_id: str, items: Sequence[RequestItem]) -> None:
        """Every request of one message (its selections expanded); the first transient failure is raised
        after all were tried."""
        first_failure: TransientFailure | None = None
        work: list[WorkItem] = []
        for item in items:
            if not isinstance(item, Selection):
                work.append(item)
                continue
            try:
                expansion, expanded = self._application.expand(item, deadline=self._deadline)
            except TransientFailure as failure:
                first_failure = first_failure or failure
                continue
            with self._lock:
                self._expansions.append((position, message_id, expansion))
            work.extend(expanded)
        for item in work:
            try:
                outcome = self._application.execute(item, deadline=self._deadline)
            except TransientFailure as failure:
                first_failure = first_failure or failure
                continue
            with self._lock:
                self._finished.append((position, message_id, outcome))
        if first_failure is not None:
            raise first_failure

    def _run_watch(self, position: int, message_id: str, item: WatchCheck | Rejected) -> None:
        with self._lock:
            self._checks += 1
        final = self._application.run_watch(item, deadline=self._deadline, message_id=message_id)
        if final is not None:
            with self._lock:
                self._finished.append((position, message_id, final))

    def _finish(self, failed_message_ids: Sequence[str]) -> BatchResult:
        """Publish and follow what finished; `failed_message_ids` are the messages that raised.

        A message goes back to its queue when it failed, when one of its outcomes was not published, or
        when the first completion check of a checkpoint it created could not be scheduled.
        """
        # Each message appended from one thread, in its own order: a stable sort keeps that order.
        finished = [(message_id, outcome) for _, message_id, outcome in sorted(self._finished, key=_position)]
        expansions = [
            (message_id, expansion) for _, message_id, expansion in sorted(self._expansions, key=_position)
        ]
        outcomes = [outcome for _, outcome in finished]
        unpublished_expansions = self._application.publish_expansions(
            [expansion for _, expansion in expansions]
        )
        unpublished, unfollowed = self._application.publish_and_follow(outcomes, deadline=self._deadline)
        again = list(dict.fromkeys(failed_message_ids))
        for message_id, expansion in expansions:
            if message_id not in again and any(expansion is other for other in unpublished_expansions):
                again.append(message_id)
        for message_id, outcome in finished:
            if message_id not in again and (_among(outcome, unpublished) or _among(outcome, unfollowed)):
                again.append(message_id)
        return BatchResult(
            item_failures=tuple(again),
            outcomes=tuple(outcomes),
            unpublished=tuple(unpublished),
            unfollowed=tuple(unfollowed),
            requeued=len(set(failed_message_ids)),
            checks=self._checks,
            expansions=tuple(expansion for _, expansion in expansions),
        )


def summary(outcome: Outcome) -> dict[str, Any]:
    """One outcome in a line: what the invocation returns and what the log says."""
    result: dict[str, Any] = {"idempotency_key": outcome.item.idempotency_key, "outcome": outcome.kind}
    if outcome.checkpoint is not None:
        result["checkpoint_id"] = outcome.checkpoint.get("id")
    if outcome.error is not None:
        result["error"] = {
            "kind": outcome.error.kind,
            "code": outcome.error.code,
            "message": outcome.error.message,
        }
    if outcome.duplicate:
        result["duplicate"] = True
    return result


def expansion_summary(expansion: Expansion) -> dict[str, Any]:
    """One selection in a line: how many vaults it matched, and how many went to the request queue."""
    result: dict[str, Any] = {
        "idempotency_key": expansion.selection.idempotency_key,
        "outcome": "expanded" if expansion.error is None else "failed",
        "selected": len(expansion.vault_ids),
        "queued": expansion.queued,
    }
    if expansion.error is not None:
        result["error"] = {
            "kind": expansion.error.kind,
            "code": expansion.error.code,
            "message": expansion.error.message,
        }
    return result


def _among(outcome: Outcome, outcomes: Sequence[Outcome]) -> bool:
    """Whether this very outcome is one of `outcomes` (two equal outcomes of two messages are not)."""
    return any(outcome is other for other in outcomes)


def _position(entry: tuple[int, str, Any]) -> int:
    return entry[0]
