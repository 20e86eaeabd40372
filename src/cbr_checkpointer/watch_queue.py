"""The watch queue on SQS: SendMessage / SendMessageBatch with DelaySeconds over the AWS JSON API."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cbr_checkpointer.aws import AwsError, AwsJsonApi
from cbr_checkpointer.aws.partial_batch import PartialBatchSender, send_message_batch
from cbr_checkpointer.domain import QueueUnavailable, WatchCheck
from cbr_checkpointer.ports import MAX_DELAY_SECONDS
from cbr_checkpointer.retry import Retrier
from cbr_checkpointer.triggers import watch_message

SEND_BATCH_SIZE = 10  # SendMessageBatch takes at most 10 entries


class SqsWatchQueue:
    """Schedules watch checks as SQS messages held back by `DelaySeconds`."""

    def __init__(self, sqs: AwsJsonApi, queue_url: str, *, retry: Retrier | None = None) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._sender = PartialBatchSender[dict[str, Any]](
            lambda entries: send_message_batch(sqs, queue_url, entries),
            retry=retry or Retrier(),
            max_entries=SEND_BATCH_SIZE,
        )

    def send(self, check: WatchCheck, delay_seconds: int) -> None:
        """Schedule one check; raises QueueUnavailable when SQS would not take it (the AWS client has
        already retried what was worth retrying)."""
        try:
            self._sqs.call("SendMessage", {"QueueUrl": self._queue_url, **_message(check, delay_seconds)})
        except AwsError as error:
            raise QueueUnavailable(
                error.code, error.message, http_status=error.http_status, retryable=error.retryable
            ) from error

    def send_all(self, checks: Sequence[tuple[WatchCheck, int]]) -> list[QueueUnavailable | None]:
        """Schedule checks 10 a call; per check, None when it was sent or the error that kept it back."""
        results = self._sender.send([_message(check, delay) for check, delay in checks])
        return [
            None
            if failure is None
            else QueueUnavailable(
                failure.code, failure.message, http_status=failure.http_status, retryable=failure.retryable
            )
            for failure in results
        ]


def _message(check: WatchCheck, delay_seconds: int) -> dict[str, Any]:
    return {
        "MessageBody": json.dumps(watch_message(check), separators=(",", ":"), ensure_ascii=False),
        "DelaySeconds": max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
    }
