"""The request queue on SQS: the vaults of a large selection, one message each, by SendMessageBatch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cbr_checkpointer.aws import AwsJsonApi
from cbr_checkpointer.aws.partial_batch import PartialBatchSender, send_message_batch
from cbr_checkpointer.domain import QueueUnavailable, Selection
from cbr_checkpointer.retry import Retrier
from cbr_checkpointer.triggers import fanout_message

SEND_BATCH_SIZE = 10  # SendMessageBatch takes at most 10 entries


class SqsRequestQueue:
    """Sends fan-out messages 10 a call; the entries SQS failed retryably are sent again as `retry` allows."""

    def __init__(self, sqs: AwsJsonApi, queue_url: str, *, retry: Retrier | None = None) -> None:
        self._sender = PartialBatchSender[dict[str, Any]](
            lambda entries: send_message_batch(sqs, queue_url, entries),
            retry=retry or Retrier(),
            max_entries=SEND_BATCH_SIZE,
        )

    def send_vaults(self, selection: Selection, vault_ids: Sequence[str]) -> list[QueueUnavailable | None]:
        entries = [
            {"MessageBody": json.dumps(fanout_message(selection, vault_id), separators=(",", ":"))}
            for vault_id in vault_ids
        ]
        return [
            None
            if failure is None
            else QueueUnavailable(
                failure.code, failure.message, http_status=failure.http_status, retryable=failure.retryable
            )
            for failure in self._sender.send(entries)
        ]
