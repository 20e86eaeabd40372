"""Lambda entry point: adapts the Lambda event to the application, and reports logs and metrics."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from cbr_checkpointer.application import summary
from cbr_checkpointer.domain import FieldError, Outcome, Rejected, Selection, WorkItem
from cbr_checkpointer.observability import logger, metrics
from cbr_checkpointer.runtime import Runtime, build_runtime_if_configured, get_runtime, process_observer
from cbr_checkpointer.triggers import (
    RequestItem,
    is_sqs_batch,
    parse_invocation,
    parse_sqs_record,
    parse_watch_record,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

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


build_runtime_if_configured()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        runtime = get_runtime()
        deadline = runtime.clock.now() + context.get_remaining_time_in_millis() / 1000
        runtime.deadline.set(deadline)
        if is_sqs_batch(event):
            return _handle_sqs_batch(event, runtime, deadline)
        return _handle_invocation(event, context, runtime, deadline)
    except Exception as error:
        process_observer.invocation_failed(error)  # also when the runtime could not be built
        raise


def _handle_invocation(
    event: dict[str, Any], context: LambdaContext, runtime: Runtime, deadline: float
) -> dict[str, Any]:
    items = _runnable(
        parse_invocation(
            event, request_id=context.aws_request_id, now=datetime.now(UTC), defaults=runtime.defaults
        )
    )
    result = runtime.application.run_invocation(items, deadline=deadline)
    _report(result.outcomes, result.unpublished, result.unfollowed, requeued=len(result.transient))
    if result.must_retry:
        raise InvocationFailed(result.failure_message())
    return {"outcomes": result.summaries()}


def _handle_sqs_batch(event: dict[str, Any], runtime: Runtime, deadline: float) -> dict[str, Any]:
    batch = runtime.application.sqs_batch(deadline=deadline)

    def handle_record(record: SQSRecord) -> None:
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(message_id=record.message_id)
        watch = parse_watch_record(record.raw_event, runtime.watch_queue_arn)
        if watch is not None:
            batch.run_watch(record.message_id, watch)
        else:
            batch.run_requests(
                record.message_id, _runnable(parse_sqs_record(record.raw_event, defaults=runtime.defaults))
            )

    # Lazy: Powertools' batch utility costs ~25 ms at import, and only SQS batches need it.
    from cbr_checkpointer.batch import ConcurrentSqsProcessor  # noqa: PLC0415

    processor = ConcurrentSqsProcessor(max_workers=runtime.settings.max_concurrency)
    with processor(records=event["Records"], handler=handle_record):
        processor.process()
    failed = [str(failure["itemIdentifier"]) for failure in processor.response()["batchItemFailures"]]
    result = batch.finish(failed)
    if result.checks:
        metrics.add_metric(name="CompletionChecks", unit=MetricUnit.Count, value=result.checks)
    _report(result.outcomes, result.unpublished, result.unfollowed, requeued=result.requeued)
    return result.response()


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


def _report(
    outcomes: Sequence[Outcome],
    unpublished: Sequence[Outcome],
    unfollowed: Sequence[Outcome],
    *,
    requeued: int,
) -> None:
    for outcome in outcomes:
        logger.info("request finished", extra=summary(outcome))
    for kind, count in Counter(outcome.kind for outcome in outcomes).items():
        metrics.add_metric(name=OUTCOME_METRICS[kind], unit=MetricUnit.Count, value=count)
    for name, count in (
        ("PublishFailed", len(unpublished)),
        ("WatchScheduleFailed", len(unfollowed)),
        ("RequestsRequeued", requeued),
    ):
        if count:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
