"""Lambda entry point: adapts the Lambda event to the application, and reports logs and metrics."""

from __future__ import annotations

import gc

# Init makes ~70,000 objects that live as long as the execution environment. Letting the cyclic garbage
# collector scan them again and again while they are made cost ~10% of init's instructions; it is paused
# until init ends, and what init made is then frozen out of every later collection.
_collecting = gc.isenabled()
gc.disable()

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from cbr_checkpointer.application import MessageBody, SqsMessage, expansion_summary, summary
from cbr_checkpointer.domain import Expansion, Outcome
from cbr_checkpointer.observability import logger, metrics
from cbr_checkpointer.runtime import Runtime, build_runtime_if_configured, get_runtime, process_observer
from cbr_checkpointer.triggers import (
    is_sqs_batch,
    parse_invocation,
    parse_sqs_record,
    parse_watch_record,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

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


try:
    build_runtime_if_configured()
finally:
    gc.freeze()
    if _collecting:
        gc.enable()


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
    items = parse_invocation(
        event, request_id=context.aws_request_id, now=datetime.now(UTC), defaults=runtime.defaults
    )
    result = runtime.application.run_invocation(items, deadline=deadline)
    _report(result.outcomes, result.unpublished, result.unfollowed, requeued=len(result.transient))
    _report_expansions(result.expansions)
    if result.must_retry:
        raise InvocationFailed(result.failure_message())
    response: dict[str, Any] = {"outcomes": result.summaries()}
    if result.expansions:
        response["selections"] = [expansion_summary(expansion) for expansion in result.expansions]
    return response


def _handle_sqs_batch(event: dict[str, Any], runtime: Runtime, deadline: float) -> dict[str, Any]:
    messages: list[SqsMessage] = [
        (record["messageId"], partial(_read_record, record, runtime)) for record in event["Records"]
    ]
    result = runtime.application.run_sqs_batch(messages, deadline=deadline)
    if result.checks:
        metrics.add_metric(name="CompletionChecks", unit=MetricUnit.Count, value=result.checks)
    _report(result.outcomes, result.unpublished, result.unfollowed, requeued=result.requeued)
    _report_expansions(result.expansions)
    return result.response()


def _read_record(record: dict[str, Any], runtime: Runtime) -> MessageBody:
    """A completion check when the record comes from the watch queue, else the requests of its body."""
    watch = parse_watch_record(record, runtime.watch_queue_arn, defaults=runtime.defaults)
    if watch is not None:
        return watch
    return parse_sqs_record(record, defaults=runtime.defaults)


def _report_expansions(expansions: Sequence[Expansion]) -> None:
    """Per selection: a log line; metrics for those expanded, those that matched no vault (a mistyped tag
    looks like this; alarm on it), the vaults sent to the request queue, and listings that failed."""
    for expansion in expansions:
        logger.info("selection finished", extra=expansion_summary(expansion))
    counts = {
        "SelectionsExpanded": sum(expansion.error is None for expansion in expansions),
        "SelectionEmpty": sum(
            expansion.error is None and not expansion.vault_ids for expansion in expansions
        ),
        "SelectionsFailed": sum(expansion.error is not None for expansion in expansions),
        "VaultsQueued": sum(expansion.queued for expansion in expansions),
    }
    for name, count in counts.items():
        if count:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)


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
