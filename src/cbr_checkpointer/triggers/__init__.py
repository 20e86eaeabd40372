"""Trigger envelopes → work items: what the function makes of whatever it is handed.

- `envelopes`: which trigger shape (Scheduler input, direct invoke, scheduled rule, EventBridge
  event, SQS record) and where its request is;
- `requests`: the request forms (native, shorthand, many, selection) → BackupRequest, Selection
  or Rejected, within what the function's configuration allows (`RequestDefaults`);
- `selection`: a selection's criteria;
- `fanout`: the request-queue message that carries one vault of a large selection;
- `watch`: the completion check the function sends itself on its watch queue;
- `limits`: sizes, depths, Unicode and numbers, checked before any field is read.

Bad input never raises: it becomes a Rejected that names the field at fault.
"""

from cbr_checkpointer.domain import RequestItem
from cbr_checkpointer.triggers.envelopes import is_sqs_batch, parse_invocation, parse_sqs_record
from cbr_checkpointer.triggers.fanout import fanout_message
from cbr_checkpointer.triggers.requests import MAX_ERRORS, RequestDefaults
from cbr_checkpointer.triggers.watch import parse_watch_record, watch_message, watch_queue_arn

__all__ = [
    "MAX_ERRORS",
    "RequestDefaults",
    "RequestItem",
    "fanout_message",
    "is_sqs_batch",
    "parse_invocation",
    "parse_sqs_record",
    "parse_watch_record",
    "watch_message",
    "watch_queue_arn",
]
