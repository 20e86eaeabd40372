"""Batch calls that can half succeed (PutEvents, SQS SendMessageBatch): send, then retry only what failed.

Such a call answers 200 and says per entry whether it was taken. `PartialBatchSender` sends entries up to
a call's limits, sends again only the entries that failed retryably (as the retry policy allows), and
answers one result per entry. A failure of the whole call was already retried by the AWS client, so it
ends the entries of that call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from cbr_checkpointer.aws.api import AwsJsonApi
from cbr_checkpointer.aws.client import AwsError
from cbr_checkpointer.retry import Retrier
from cbr_checkpointer.values import value

Entry = TypeVar("Entry")

# PutEvents' per-entry error codes worth another attempt; every other one (AccessDeniedException,
# MalformedDetail, ...) fails the same way again.
PUT_EVENTS_RETRYABLE_CODES = frozenset({"InternalFailure", "ThrottlingException"})


@value
class EntryFailure:
    """Why one entry was not taken, and whether sending it again may succeed."""

    code: str
    message: str
    retryable: bool
    # 200 for an entry the call answered for; else the status of the failed call (None: no answer).
    http_status: int | None = 200


# Per entry: None when it was taken.
EntryResult = EntryFailure | None


class PartialBatchSender(Generic[Entry]):
    """Sends entries in calls of at most `max_entries` (and `max_bytes`, entries measured by `size`).

    `send_call` makes one call and answers one result per entry it was given, in order; it may raise
    `AwsError` when the whole call failed.
    """

    def __init__(
        self,
        send_call: Callable[[Sequence[Entry]], Sequence[EntryResult]],
        *,
        retry: Retrier,
        max_entries: int,
        max_bytes: int | None = None,
        size: Callable[[Entry], int] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        if (max_bytes is None) != (size is None):
            raise ValueError("max_bytes and size go together")
        self._send_call = send_call
        self._retry = retry
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size = size

    def send(self, entries: Sequence[Entry]) -> list[EntryResult]:
        """Send every entry; one result per entry, in the order given."""
        results: list[EntryResult] = []
        for batch in self._batches(entries):
            results.extend(self._send_batch(batch))
        return results

    def _batches(self, entries: Sequence[Entry]) -> list[list[Entry]]:
        batches: list[list[Entry]] = []
        batch: list[Entry] = []
        batch_bytes = 0
        for entry in entries:
            entry_bytes = self._size(entry) if self._size is not None else 0
            over_size = self._max_bytes is not None and batch_bytes + entry_bytes > self._max_bytes
            if batch and (len(batch) == self._max_entries or over_size):
                batches.append(batch)
                batch, batch_bytes = [], 0
            batch.append(entry)
            batch_bytes += entry_bytes
        if batch:
            batches.append(batch)
        return batches

    def _send_batch(self, batch: list[Entry]) -> list[EntryResult]:
        results: list[EntryResult] = [None] * len(batch)
        pending = list(range(len(batch)))
        attempt = 1
        while True:
            try:
                answers = self._send_call([batch[index] for index in pending])
            except AwsError as error:
                failure = EntryFailure(error.code, error.message, error.retryable, error.http_status)
                for index in pending:
                    results[index] = failure
                return results
            if len(answers) != len(pending):
                raise ValueError(f"{len(answers)} results for {len(pending)} entries")
            retry: list[int] = []
            for index, answer in zip(pending, answers, strict=True):
                results[index] = answer
                if answer is not None and answer.retryable:
                    retry.append(index)
            if not retry or not self._retry.pause(attempt):
                return results
            pending = retry
            attempt += 1


def put_events(events: AwsJsonApi, entries: Sequence[Mapping[str, Any]]) -> list[EntryResult]:
    """One PutEvents call; per entry, None when EventBridge took it, else its `ErrorCode`."""
    answer = events.call("PutEvents", {"Entries": list(entries)})
    if not answer.get("FailedEntryCount"):
        return [None] * len(entries)
    answered = answer.get("Entries")
    if not isinstance(answered, list) or len(answered) != len(entries):
        # Which entries failed is unknown: each may have, and sending one twice is the lesser harm.
        unknown = EntryFailure(
            "InvalidResponse", "PutEvents reported failures without one result per entry", True
        )
        return [unknown] * len(entries)
    results: list[EntryResult] = []
    for result in answered:
        code = result.get("ErrorCode") if isinstance(result, dict) else "InvalidResponse"
        if code is None:
            results.append(None)
            continue
        message = str(result.get("ErrorMessage") or "") if isinstance(result, dict) else ""
        results.append(EntryFailure(str(code), message, str(code) in PUT_EVENTS_RETRYABLE_CODES))
    return results


def send_message_batch(
    sqs: AwsJsonApi, queue_url: str, entries: Sequence[Mapping[str, Any]]
) -> list[EntryResult]:
    """One SendMessageBatch call (entries without `Id`: they are numbered here); per entry, None when SQS
    took it. A failure that is the sender's fault (`SenderFault`) is not retryable."""
    numbered = [{"Id": str(index), **entry} for index, entry in enumerate(entries)]
    answer = sqs.call("SendMessageBatch", {"QueueUrl": queue_url, "Entries": numbered})
    unanswered = EntryFailure("InvalidResponse", "SendMessageBatch did not answer for this entry", True)
    results: list[EntryResult] = [unanswered] * len(entries)
    for sent in answer.get("Successful") or []:
        results[int(sent["Id"])] = None
    for failed in answer.get("Failed") or []:
        results[int(failed["Id"])] = EntryFailure(
            str(failed.get("Code") or "SendMessageBatchEntryFailed"),
            str(failed.get("Message") or "SQS did not take the message"),
            retryable=not failed.get("SenderFault"),
        )
    return results
