"""The watch queue on SQS: SendMessage / SendMessageBatch with DelaySeconds over the AWS JSON API."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from cbr_checkpointer.aws import AwsError, AwsJsonApi
from cbr_checkpointer.domain import QueueUnavailable, WatchCheck
from cbr_checkpointer.ports import MAX_DELAY_SECONDS
from cbr_checkpointer.triggers import watch_message

SEND_BATCH_SIZE = 10  # SendMessageBatch takes at most 10 entries


class SqsWatchQueue:
    """Schedules watch checks as SQS messages held back by `DelaySeconds`."""

    def __init__(
        self,
        sqs: AwsJsonApi,
        queue_url: str,
        *,
        max_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def send(self, check: WatchCheck, delay_seconds: int) -> None:
        """Schedule one check; raises QueueUnavailable when SQS would not take it."""
        entry = self._entry(check, delay_seconds)
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(self._backoff(attempt))
            try:
                self._sqs.call("SendMessage", entry)
                return
            except AwsError as error:
                if not error.retryable or attempt + 1 == self._max_attempts:
                    raise _unavailable(error) from error

    def send_all(self, checks: Sequence[tuple[WatchCheck, int]]) -> list[QueueUnavailable | None]:
        """Schedule checks 10 a call; per check, None when it was sent or the error that kept it back."""
        results: list[QueueUnavailable | None] = []
        for start in range(0, len(checks), SEND_BATCH_SIZE):
            results.extend(self._send_batch(checks[start : start + SEND_BATCH_SIZE]))
        return results

    def _send_batch(self, checks: Sequence[tuple[WatchCheck, int]]) -> list[QueueUnavailable | None]:
        pending = dict(enumerate(checks))
        errors: dict[int, QueueUnavailable | None] = {}
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(self._backoff(attempt))
            entries = []
            for index, (check, delay) in pending.items():
                entry = self._entry(check, delay)
                del entry["QueueUrl"]
                entries.append({"Id": str(index), **entry})
            try:
                answer = self._sqs.call("SendMessageBatch", {"QueueUrl": self._queue_url, "Entries": entries})
            except AwsError as error:
                errors |= dict.fromkeys(pending, _unavailable(error))
                if not error.retryable:
                    break
                continue
            for sent in answer.get("Successful") or []:
                index = int(sent["Id"])
                errors[index] = None
                pending.pop(index, None)
            retry: dict[int, tuple[WatchCheck, int]] = {}
            for failed in answer.get("Failed") or []:
                index = int(failed["Id"])
                sender_fault = bool(failed.get("SenderFault"))
                errors[index] = QueueUnavailable(
                    str(failed.get("Code") or "SendMessageBatchEntryFailed"),
                    str(failed.get("Message") or "SQS did not take the message"),
                    http_status=200,
                    retryable=not sender_fault,
                )
                if not sender_fault and index in pending:
                    retry[index] = pending[index]
            pending = retry
            if not pending:
                break
        return [errors.get(index) for index in range(len(checks))]

    def _entry(self, check: WatchCheck, delay_seconds: int) -> dict[str, Any]:
        return {
            "QueueUrl": self._queue_url,
            "MessageBody": json.dumps(watch_message(check), separators=(",", ":"), ensure_ascii=False),
            "DelaySeconds": max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
        }

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(1.0, 0.1 * 2 ** (attempt - 1)))


def _unavailable(error: AwsError) -> QueueUnavailable:
    return QueueUnavailable(
        error.code, error.message, http_status=error.http_status, retryable=error.retryable
    )
