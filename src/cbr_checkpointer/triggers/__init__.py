"""Trigger envelopes → work items: what the function makes of whatever it is handed.

- `envelopes`: which trigger shape (Scheduler input, direct invoke, scheduled rule, EventBridge
  event, SQS record) and where its request is;
- `requests`: the request forms (native, shorthand, many, selection) → BackupRequest, Selection
  or Rejected, within what the function's configuration allows (`RequestDefaults`);
- `selection`: a selection's criteria, and its expansion into one request per vault;
- `keys`: idempotency keys, in namespaces no request can cross, and the names derived from them;
- `watch`: the completion check the function sends itself on its watch queue;
- `limits`: sizes, depths, Unicode and numbers, checked before any field is read.

Bad input never raises: it becomes a Rejected that names the field at fault.
"""

from cbr_checkpointer.triggers.envelopes import is_sqs_batch, parse_invocation, parse_sqs_record
from cbr_checkpointer.triggers.keys import derived_name
from cbr_checkpointer.triggers.requests import MAX_ERRORS, RequestDefaults, RequestItem
from cbr_checkpointer.triggers.selection import expand_selection
from cbr_checkpointer.triggers.watch import parse_watch_record, watch_message, watch_queue_arn

__all__ = [
    "MAX_ERRORS",
    "RequestDefaults",
    "RequestItem",
    "derived_name",
    "expand_selection",
    "is_sqs_batch",
    "parse_invocation",
    "parse_sqs_record",
    "parse_watch_record",
    "watch_message",
    "watch_queue_arn",
]
