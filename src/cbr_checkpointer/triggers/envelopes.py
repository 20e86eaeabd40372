"""Which trigger handed the function a request, and where in its event the request is.

- Scheduler input or direct invoke: the request is the event itself; the trigger is identified by
  the key the request names (its `idempotency_key`, or its schedule firing), else by the Lambda
  request id;
- scheduled rule (`aws.events`, `Scheduled Event`): `detail`, or when it is empty a request for
  `DEFAULT_VAULT_ID`; identified by the event's `id`;
- EventBridge event: `detail`; identified by the event's `id`;
- SQS record: its `body`, also when that is an EventBridge event or an SNS notification;
  identified by its `messageId`; or a fan-out message (`fanout`), one vault of a selection, keyed
  and identified as the selection's own trigger made it.

Every document is checked against the limits (`limits`) before any field of it is read. Bad input
never raises: it becomes a Rejected that names the field at fault, with paths relative to the
document the sender wrote.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cbr_checkpointer.domain import FieldError, RequestItem
from cbr_checkpointer.field_paths import join
from cbr_checkpointer.triggers.fanout import is_fanout_message, parse_fanout_message
from cbr_checkpointer.triggers.limits import check_document, load_json, quotable, string_problem
from cbr_checkpointer.triggers.requests import (
    Origin,
    RequestDefaults,
    from_request,
    parse_time,
    reject,
)
from cbr_checkpointer.values import replace

_EPOCH_MILLIS = re.compile(r"[0-9]{1,13}")
_MAX_IDENTIFIER_LENGTH = 256
# How much of a body that is not a usable document a Rejected quotes (the event cuts it further).
_MAX_QUOTED_CHARACTERS = 32 * 1024


def is_sqs_batch(event: Mapping[str, Any]) -> bool:
    # A direct invoke may carry any JSON value, not only an object.
    records = event.get("Records") if isinstance(event, Mapping) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(record, Mapping) and record.get("eventSource") == "aws:sqs" for record in records)
    )


def parse_invocation(
    event: Any, *, request_id: str, now: datetime, defaults: RequestDefaults
) -> list[RequestItem]:
    """Work items of a Scheduler, direct, scheduled-rule or EventBridge invocation."""
    problem = check_document(event)
    if isinstance(event, Mapping) and _is_eventbridge(event):
        origin = Origin(
            kind="rule" if _is_scheduled_rule(event) else "eventbridge",
            id=identifier(event.get("id")) or request_id,
            time=parse_time(event.get("time")) or now,
            payload=event if problem is None else quotable(event),
        )
        if problem is not None:
            return [reject(origin, origin.fallback_key(), [problem])]
        return _from_event(event, origin, defaults, prefix="")
    origin = Origin(kind="direct", id=request_id, time=now, payload=event, identified_by_request=True)
    if problem is not None:
        return [reject(replace(origin, payload=quotable(event)), origin.fallback_key(), [problem])]
    return from_request(event, origin, defaults, prefix="", root_label="payload")


def parse_sqs_record(record: Mapping[str, Any], *, defaults: RequestDefaults) -> list[RequestItem]:
    """Work items of one SQS record (the raw dict from `event["Records"]`)."""
    body_text = record.get("body")
    origin = Origin(
        kind="sqs", id=message_id(record), time=sent_time(record) or datetime.now(UTC), payload=None
    )
    if not isinstance(body_text, str):
        return [
            reject(
                origin, origin.fallback_key(), [FieldError("body", "must be a string holding a JSON object")]
            )
        ]
    body, problem = load_json(body_text, "", label="body")
    if problem is not None:
        quoted = body_text[:_MAX_QUOTED_CHARACTERS] if body is None else body
        origin = replace(origin, payload=quotable(quoted))
        return [reject(origin, origin.fallback_key(), [problem])]
    origin = replace(origin, payload=body)
    prefix = ""
    if isinstance(body, Mapping) and body.get("Type") == "Notification" and "Message" in body:
        message = body["Message"]
        if not isinstance(message, str):
            error = FieldError("Message", "must be a string holding a JSON object")
            return [reject(origin, origin.fallback_key(), [error])]
        body, problem = load_json(message, "Message", label="Message")
        if problem is not None:
            # The notification itself passed the limits: it is quoted as it came.
            return [reject(origin, origin.fallback_key(), [problem])]
        prefix = "Message"
    if isinstance(body, Mapping) and _is_eventbridge(body):
        return _from_event(body, origin, defaults, prefix=prefix)
    if not prefix and is_fanout_message(body):
        return [parse_fanout_message(body, origin, defaults)]
    return from_request(body, origin, defaults, prefix=prefix, root_label="body")


def _is_scheduled_rule(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def _is_eventbridge(event: Mapping[str, Any]) -> bool:
    return _is_scheduled_rule(event) or ("detail-type" in event and "detail" in event)


def _from_event(
    event: Mapping[str, Any], origin: Origin, defaults: RequestDefaults, *, prefix: str
) -> list[RequestItem]:
    detail_path = join(prefix, "detail")
    detail = event.get("detail")
    if _is_scheduled_rule(event) and (detail is None or detail == {}):
        if defaults.default_vault_id is None:
            error = FieldError(
                join(detail_path, "vault_id"),
                "is required: the scheduled rule's event has an empty detail and DEFAULT_VAULT_ID is not set",
            )
            return [reject(origin, origin.fallback_key(), [error], project_id=defaults.project_id)]
        detail = {"vault_id": defaults.default_vault_id}
    return from_request(detail, origin, defaults, prefix=detail_path, root_label=detail_path)


def identifier(value: object) -> str | None:
    """A trigger's own id, when it is a usable one."""
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_IDENTIFIER_LENGTH:
        return None
    return value if string_problem(value) is None else None


def message_id(record: Mapping[str, Any]) -> str:
    """The record's messageId, or when it has none, a stand-in derived from its body."""
    found = identifier(record.get("messageId"))
    if found is not None:
        return found
    return f"sqs-{hashlib.sha256(ascii(record.get('body')).encode('ascii')).hexdigest()[:32]}"


def sent_time(record: Mapping[str, Any]) -> datetime | None:
    attributes = record.get("attributes")
    sent = attributes.get("SentTimestamp") if isinstance(attributes, Mapping) else None
    if not isinstance(sent, str) or not _EPOCH_MILLIS.fullmatch(sent):
        return None
    return datetime.fromtimestamp(int(sent) / 1000, UTC)
