"""Lambda entry point: wires Powertools and dispatches a trigger to the service and the publisher."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from cbr_checkpointer.completion import follow_up
from cbr_checkpointer.domain import FieldError, Outcome, Rejected, Selection, WorkItem
from cbr_checkpointer.observability import logger, metrics
from cbr_checkpointer.runtime import Runtime, get_runtime
from cbr_checkpointer.service import TransientFailure
from cbr_checkpointer.triggers import (
    RequestItem,
    is_sqs_batch,
    parse_invocation,
    parse_sqs_record,
    parse_watch_record,
    watch_queue_arn,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

OUTCOME_METRICS = {
    "created": "CheckpointsCreated",
    "failed": "CheckpointsFailed",
    "rejected": "RequestsRejected",
    "validated": "RequestsValidated",
    "completed": "CheckpointsCompleted",
    "timed_out": "CheckpointsTimedOut",
}


class InvocationFailed(Exception):
    """Raised from a timer or direct invocation so that Lambda's retries and failure destination take over."""


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000
    if is_sqs_batch(event):
        return _handle_sqs_batch(event, runtime, deadline)
    return _handle_invocation(event, context, runtime, deadline)


def _handle_invocation(
    event: dict[str, Any], context: LambdaContext, runtime: Runtime, deadline: float
) -> dict[str, Any]:
    items = _runnable(
        parse_invocation(
            event, request_id=context.aws_request_id, now=datetime.now(UTC), defaults=runtime.defaults
        )
    )
    results = runtime.service.execute_all(
        items, deadline=deadline, max_workers=runtime.settings.max_concurrency
    )
    outcomes = [result for result in results if isinstance(result, Outcome)]
    transient = [result for result in results if isinstance(result, TransientFailure)]
    unpublished = _publish(runtime, outcomes)
    unfollowed = _follow(runtime, outcomes, deadline)
    _count_requeued(len(transient))
    if transient or unpublished or unfollowed:
        raise InvocationFailed(
            f"{len(transient)} request(s) failed transiently and {len(unpublished)} outcome(s) were not "
            f"published; {len(unfollowed)} completion check(s) could not be scheduled; the invocation "
            "will be retried"
        )
    return {"outcomes": [_summary(outcome) for outcome in outcomes]}


def _handle_sqs_batch(event: dict[str, Any], runtime: Runtime, deadline: float) -> dict[str, Any]:
    finished: list[tuple[str, Outcome]] = []
    finished_lock = threading.Lock()
    checks = 0
    watch_queue = runtime.settings.watch_queue_url
    watch_arn = watch_queue_arn(watch_queue, runtime.settings.aws_region) if watch_queue else None

    def handle_record(record: SQSRecord) -> None:
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(message_id=record.message_id)
        nonlocal checks
        watch = parse_watch_record(record.raw_event, watch_arn)
        if watch is not None:
            with finished_lock:
                checks += 1
            final = follow_up(runtime.completion, watch, deadline=deadline, message_id=record.message_id)
            if final is not None:
                with finished_lock:
                    finished.append((record.message_id, final))
            return
        items = _runnable(parse_sqs_record(record.raw_event, defaults=runtime.defaults))
        first_failure: TransientFailure | None = None
        for item in items:
            try:
                outcome = runtime.service.execute(item, deadline=deadline)
            except TransientFailure as failure:
                first_failure = first_failure or failure
                continue
            with finished_lock:
                finished.append((record.message_id, outcome))
        if first_failure is not None:
            raise first_failure

    # Lazy: Powertools' batch utility costs ~25 ms at import, and only SQS batches need it.
    from cbr_checkpointer.batch import ConcurrentSqsProcessor  # noqa: PLC0415

    processor = ConcurrentSqsProcessor(max_workers=runtime.settings.max_concurrency)
    with processor(records=event["Records"], handler=handle_record):
        processor.process()
    response = processor.response()
    if checks:
        metrics.add_metric(name="CompletionChecks", unit=MetricUnit.Count, value=checks)
    _count_requeued(len(response["batchItemFailures"]))
    unpublished = {id(outcome) for outcome in _publish(runtime, [outcome for _, outcome in finished])}
    # A created checkpoint whose first completion check could not be scheduled goes back too.
    unpublished |= {
        id(outcome) for outcome in _follow(runtime, [outcome for _, outcome in finished], deadline)
    }
    already_failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    for message_id, outcome in finished:
        if id(outcome) in unpublished and message_id not in already_failed:
            response["batchItemFailures"].append({"itemIdentifier": message_id})
            already_failed.add(message_id)
    return dict(response)


def _runnable(items: Sequence[RequestItem]) -> list[WorkItem]:
    """The items the service runs. A selection needs its project's vaults listed, which this handler
    does not do: it is refused by name rather than dropped."""
    return [
        Rejected(
            idempotency_key=item.idempotency_key,
            trigger=item.trigger,
            errors=(FieldError("select", "is not supported by this deployment of the function"),),
            payload={"select": item.selector},
            project_id=item.project_id,
        )
        if isinstance(item, Selection)
        else item
        for item in items
    ]


def _publish(runtime: Runtime, outcomes: Sequence[Outcome]) -> list[Outcome]:
    for outcome in outcomes:
        logger.info("request finished", extra=_summary(outcome))
    for kind, count in Counter(outcome.kind for outcome in outcomes).items():
        metrics.add_metric(name=OUTCOME_METRICS[kind], unit=MetricUnit.Count, value=count)
    unpublished = runtime.publisher.publish(outcomes) if outcomes else []
    if unpublished:
        metrics.add_metric(name="PublishFailed", unit=MetricUnit.Count, value=len(unpublished))
    return unpublished


def _follow(runtime: Runtime, outcomes: Sequence[Outcome], deadline: float) -> list[Outcome]:
    """Schedule the first completion check of each created checkpoint; those that could not be scheduled."""
    if runtime.completion is None or not outcomes:
        return []
    unfollowed = runtime.completion.follow(outcomes, deadline=deadline)
    if unfollowed:
        metrics.add_metric(name="WatchScheduleFailed", unit=MetricUnit.Count, value=len(unfollowed))
    return unfollowed


def _count_requeued(count: int) -> None:
    if count:
        metrics.add_metric(name="RequestsRequeued", unit=MetricUnit.Count, value=count)


def _summary(outcome: Outcome) -> dict[str, Any]:
    summary: dict[str, Any] = {"idempotency_key": outcome.item.idempotency_key, "outcome": outcome.kind}
    if outcome.checkpoint is not None:
        summary["checkpoint_id"] = outcome.checkpoint.get("id")
    if outcome.error is not None:
        summary["error"] = {
            "kind": outcome.error.kind,
            "code": outcome.error.code,
            "message": outcome.error.message,
        }
    if outcome.duplicate:
        summary["duplicate"] = True
    return summary
