"""Trigger envelopes → work items.

Knows the shapes Lambda hands over (Scheduler input or direct invoke, scheduled rule, EventBridge
event, SQS record whose body is a request, an SNS notification or an EventBridge event) and the
three request forms (native, shorthand, many). Bad input never raises: it becomes a Rejected that
names the field at fault, with paths relative to the document the sender wrote.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from cbr_checkpointer.domain import (
    BackupRequest,
    FieldError,
    Rejected,
    Trigger,
    TriggerKind,
    WatchCheck,
    WorkItem,
)
from cbr_checkpointer.models import (
    NAME_PATTERN,
    NAME_RULE,
    PROJECT_ID_PATTERN,
    UUID_PATTERN,
    CheckpointParam,
    Resource,
    ResourceExtraInfo,
    ResourceExtraInfoIncludeVolumes,
    VaultBackup,
    VaultBackupReq,
)

ENVELOPE_FIELDS = frozenset({"project_id", "idempotency_key", "scheduled_time", "schedule_arn", "dry_run"})
PARAMETER_FIELDS = (
    "name",
    "description",
    "incremental",
    "auto_trigger",
    "resources",
    "resource_details",
    "policy_id",
    "retention_duration_days",
)
SHORTHAND_FIELDS = frozenset({"vault_id", *PARAMETER_FIELDS})
MAX_REQUESTS = 100
MAX_IDEMPOTENCY_KEY_LENGTH = 256
MAX_SCHEDULE_ARN_LENGTH = 1024
MAX_NAME_TEMPLATE_LENGTH = 256
MAX_ERRORS = 20

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_TIME_PLACEHOLDER = re.compile(r"time:([^{}]+)", re.DOTALL)
_EPOCH_MILLIS = re.compile(r"[0-9]{1,13}")
_MAX_TIME_LENGTH = 64
_MAX_SHOWN_LENGTH = 64
_MAX_IDENTIFIER_LENGTH = 256
WATCH_VERSION = 1
_TRIGGER_KINDS: frozenset[str] = frozenset({"schedule", "rule", "eventbridge", "sqs", "direct"})
# Keys of many-request items and schedule keys can be longer than a user's idempotency_key.
_MAX_WATCH_KEY_LENGTH = 2048
_MAX_WATCH_ATTEMPT = 100_000


@dataclass(frozen=True)
class RequestDefaults:
    """What a request falls back to when it does not say: the function's configuration."""

    project_id: str | None
    default_vault_id: str | None
    dry_run: bool = False


def is_sqs_batch(event: Mapping[str, Any]) -> bool:
    # A direct invoke may carry any JSON value, not only an object.
    records = event.get("Records") if isinstance(event, Mapping) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(record, Mapping) and record.get("eventSource") == "aws:sqs" for record in records)
    )


def parse_invocation(
    event: Mapping[str, Any], *, request_id: str, now: datetime, defaults: RequestDefaults
) -> list[WorkItem]:
    """Work items of a Scheduler, direct, scheduled-rule or EventBridge invocation."""
    if isinstance(event, Mapping) and _is_eventbridge(event):
        origin = _Origin(
            kind="rule" if _is_scheduled_rule(event) else "eventbridge",
            id=_identifier(event.get("id")) or request_id,
            time=_parse_time(event.get("time")) or now,
            payload=event,
        )
        return _from_event(event, origin, defaults, prefix="")
    origin = _Origin(kind="direct", id=request_id, time=now, payload=event, identified_by_request=True)
    return _from_request(event, origin, defaults, prefix="", root_label="payload")


def parse_sqs_record(record: Mapping[str, Any], *, defaults: RequestDefaults) -> list[WorkItem]:
    """Work items of one SQS record (the raw dict from `event["Records"]`)."""
    body_text = record.get("body")
    origin = _Origin(
        kind="sqs",
        id=_identifier(record.get("messageId")) or f"sqs-{_digest(repr(body_text))[:32]}",
        time=_sent_time(record) or datetime.now(UTC),
        payload=body_text,
    )
    if not isinstance(body_text, str):
        return [_reject(origin, origin.id, [FieldError("body", "must be a string holding a JSON object")])]
    body, problem = _load_json(body_text)
    if problem is not None:
        return [_reject(origin, origin.id, [FieldError("body", problem)])]
    origin = replace(origin, payload=body)
    prefix = ""
    if isinstance(body, Mapping) and body.get("Type") == "Notification" and "Message" in body:
        message = body["Message"]
        if not isinstance(message, str):
            return [
                _reject(origin, origin.id, [FieldError("Message", "must be a string holding a JSON object")])
            ]
        body, problem = _load_json(message)
        if problem is not None:
            return [_reject(origin, origin.id, [FieldError("Message", problem)])]
        prefix = "Message"
    if isinstance(body, Mapping) and _is_eventbridge(body):
        return _from_event(body, origin, defaults, prefix=prefix)
    return _from_request(body, origin, defaults, prefix=prefix, root_label="body")


def watch_message(check: WatchCheck) -> dict[str, Any]:
    """The SQS message body that schedules `check`; `parse_watch_record` reads it back."""
    return {
        "watch": {
            "version": WATCH_VERSION,
            "project_id": check.project_id,
            "checkpoint_id": check.checkpoint_id,
            "vault_id": check.vault_id,
            "idempotency_key": check.idempotency_key,
            "request": check.request,
            "trigger": check.trigger.to_detail(),
            "first_seen": check.first_seen.isoformat(),
            "attempt": check.attempt,
        }
    }


def parse_watch_record(record: Mapping[str, Any]) -> WatchCheck | Rejected | None:
    """The completion check an SQS record carries, or None when its body is not a watch message.

    A watch message is a JSON object whose only key is `watch` (see `watch_message`); one that breaks
    the shape is Rejected by field, like a bad request, so that it is never dropped silently.
    """
    body_text = record.get("body")
    # json.dumps never escapes ASCII letters: a body without this text is no watch message.
    if not isinstance(body_text, str) or '"watch"' not in body_text:
        return None
    body, problem = _load_json(body_text)
    if problem is not None or not isinstance(body, Mapping) or list(body) != ["watch"]:
        return None
    message_id = _identifier(record.get("messageId")) or f"sqs-{_digest(body_text)[:32]}"
    errors: list[FieldError] = []
    watch = body["watch"]
    is_object = isinstance(watch, Mapping)
    if not is_object:
        watch = {}
        errors.append(FieldError("watch", "must be a JSON object"))

    def field(name: str, is_valid: Callable[[Any], bool], rule: str) -> Any:
        value = watch.get(name)
        if value is None and is_object:
            errors.append(FieldError(f"watch.{name}", "is required"))
        elif value is not None and not is_valid(value):
            errors.append(FieldError(f"watch.{name}", rule))
        return value if value is not None and is_valid(value) else None

    def text(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
        return lambda value: isinstance(value, str) and pattern.fullmatch(value) is not None

    def whole(low: int, high: int) -> Callable[[Any], bool]:
        return lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    version = field("version", lambda value: value == WATCH_VERSION, f"must be {WATCH_VERSION}")
    project_id = field("project_id", text(PROJECT_ID_PATTERN), "must be a project id")
    checkpoint_id = field("checkpoint_id", text(UUID_PATTERN), "must be a UUID")
    vault_id = field("vault_id", text(UUID_PATTERN), "must be a UUID")
    key = field(
        "idempotency_key",
        lambda value: isinstance(value, str) and 1 <= len(value) <= _MAX_WATCH_KEY_LENGTH,
        f"must be a string of 1-{_MAX_WATCH_KEY_LENGTH} characters",
    )
    request = field("request", lambda value: isinstance(value, Mapping), "must be a JSON object")
    trigger = field("trigger", lambda value: _watch_trigger(value) is not None, "must be a trigger object")
    first_seen = field("first_seen", lambda value: _parse_time(value) is not None, "must be an ISO 8601 time")
    attempt = field("attempt", whole(1, _MAX_WATCH_ATTEMPT), f"must be an integer of 1-{_MAX_WATCH_ATTEMPT}")
    origin_time = _sent_time(record) or datetime.now(UTC)
    if errors or None in (version, project_id, checkpoint_id, vault_id, key, request, trigger, first_seen):
        return Rejected(
            idempotency_key=key or message_id,
            trigger=Trigger("sqs", message_id, origin_time),
            errors=tuple(errors[:MAX_ERRORS]),
            payload=body,
            project_id=project_id,
            vault_id=vault_id,
        )
    return WatchCheck(
        idempotency_key=key,
        project_id=project_id,
        vault_id=vault_id,
        checkpoint_id=checkpoint_id,
        request=dict(request),
        trigger=_watch_trigger(trigger) or Trigger("sqs", message_id, origin_time),
        first_seen=_parse_time(first_seen) or origin_time,
        attempt=attempt,
    )


def _watch_trigger(value: Any) -> Trigger | None:
    """The original trigger, as `Trigger.to_detail` wrote it into a watch message."""
    if not isinstance(value, Mapping) or value.get("kind") not in _TRIGGER_KINDS:
        return None
    trigger_id = value.get("id")
    time = value.get("time")
    parsed_time = None if time is None else _parse_time(time)
    if not isinstance(trigger_id, str) or not trigger_id or (time is not None and parsed_time is None):
        return None
    return Trigger(value["kind"], trigger_id, parsed_time)


@dataclass(frozen=True)
class _Origin:
    """What the trigger itself says: kind, id and time, and the payload to quote when rejecting."""

    kind: TriggerKind
    id: str
    time: datetime
    payload: Any
    # A Scheduler input or direct invoke has no id of its own: the request's fields make it one.
    identified_by_request: bool = False


@dataclass(frozen=True)
class _Envelope:
    """The envelope fields of one request, each None when absent or invalid."""

    project_id: str | None = None
    idempotency_key: str | None = None
    scheduled_time: str | None = None
    schedule_arn: str | None = None
    dry_run: bool | None = None

    def under(self, outer: _Envelope) -> _Envelope:
        """These fields, falling back to those of the payload that encloses this request."""
        return _Envelope(
            project_id=self.project_id or outer.project_id,
            idempotency_key=self.idempotency_key,
            scheduled_time=self.scheduled_time or outer.scheduled_time,
            schedule_arn=self.schedule_arn or outer.schedule_arn,
            dry_run=outer.dry_run if self.dry_run is None else self.dry_run,
        )


class _NameTemplateError(Exception):
    pass


def _is_scheduled_rule(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def _is_eventbridge(event: Mapping[str, Any]) -> bool:
    return _is_scheduled_rule(event) or ("detail-type" in event and "detail" in event)


def _from_event(
    event: Mapping[str, Any], origin: _Origin, defaults: RequestDefaults, *, prefix: str
) -> list[WorkItem]:
    detail_path = _join(prefix, "detail")
    detail = event.get("detail")
    if _is_scheduled_rule(event) and (detail is None or detail == {}):
        if defaults.default_vault_id is None:
            error = FieldError(
                _join(detail_path, "vault_id"),
                "is required: the scheduled rule's event has an empty detail and DEFAULT_VAULT_ID is not set",
            )
            return [_reject(origin, origin.id, [error], project_id=defaults.project_id)]
        detail = {"vault_id": defaults.default_vault_id}
    return _from_request(detail, origin, defaults, prefix=detail_path, root_label=detail_path)


def _from_request(
    request: Any, origin: _Origin, defaults: RequestDefaults, *, prefix: str, root_label: str
) -> list[WorkItem]:
    if not isinstance(request, Mapping):
        return [_reject(origin, origin.id, [FieldError(prefix or root_label, "must be a JSON object")])]
    envelope, errors = _read_envelope(request, prefix)
    key = envelope.idempotency_key or _schedule_key(envelope, request) or origin.id
    if origin.identified_by_request:
        origin = replace(origin, kind="schedule" if envelope.schedule_arn else "direct", id=key)
    if "requests" not in request:
        return [_one(request, envelope, errors, key=key, path=prefix, origin=origin, defaults=defaults)]

    for field in request:
        if field not in ENVELOPE_FIELDS and field != "requests":
            errors.append(
                FieldError(_join(prefix, field), "is not allowed beside 'requests': put it in each request")
            )
    items = request["requests"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_REQUESTS:
        errors.append(FieldError(_join(prefix, "requests"), f"must be a list of 1-{MAX_REQUESTS} requests"))
    if errors:
        time = _parse_time(envelope.scheduled_time) or origin.time
        return [
            _reject(origin, key, errors, time=time, project_id=envelope.project_id or defaults.project_id)
        ]

    work_items: list[WorkItem] = []
    for index, item in enumerate(items):
        path = _join(prefix, "requests", index)
        if not isinstance(item, Mapping):
            error = FieldError(path, "must be a JSON object")
            project_id = envelope.project_id or defaults.project_id
            work_items.append(_reject(origin, f"{key}#{index}", [error], project_id=project_id))
            continue
        item_envelope, item_errors = _read_envelope(item, path)
        work_items.append(
            _one(
                item,
                item_envelope.under(envelope),
                item_errors,
                key=item_envelope.idempotency_key or f"{key}#{index}",
                path=path,
                origin=origin,
                defaults=defaults,
            )
        )
    return work_items


def _one(
    request: Mapping[str, Any],
    envelope: _Envelope,
    errors: list[FieldError],
    *,
    key: str,
    path: str,
    origin: _Origin,
    defaults: RequestDefaults,
) -> WorkItem:
    """One request (native or shorthand) whose envelope has been read: a BackupRequest or a Rejected."""
    time = _parse_time(envelope.scheduled_time) or origin.time
    project_id = envelope.project_id or defaults.project_id
    if project_id is None:
        errors.append(
            FieldError(
                _join(path, "project_id"), "is required: give project_id or set HUAWEICLOUD_SDK_PROJECT_ID"
            )
        )

    locate: Callable[[tuple[int | str, ...]], str]
    if "checkpoint" in request:
        written = request["checkpoint"]
        checkpoint: Any = dict(written) if isinstance(written, Mapping) else written
        form_fields: frozenset[str] = frozenset({"checkpoint"})

        def locate(loc: tuple[int | str, ...]) -> str:
            return _join(path, *loc)

    else:
        checkpoint = {"parameters": {field: request[field] for field in PARAMETER_FIELDS if field in request}}
        if "vault_id" in request:
            checkpoint["vault_id"] = request["vault_id"]
        form_fields = SHORTHAND_FIELDS

        def locate(loc: tuple[int | str, ...]) -> str:
            return _join(path, *_shorthand_loc(loc))

    for field in request:
        if field not in ENVELOPE_FIELDS and field not in form_fields:
            errors.append(
                FieldError(
                    _join(path, field),
                    _unknown_field_message(field, beside_checkpoint="checkpoint" in request),
                )
            )

    if isinstance(checkpoint, dict):
        parameters = checkpoint.get("parameters")
        if parameters is None or isinstance(parameters, Mapping):
            name_path = locate(("checkpoint", "parameters", "name"))
            checkpoint["parameters"] = _with_defaults(dict(parameters or {}), key, time, name_path, errors)

    validated: VaultBackupReq | None = None
    try:
        validated = VaultBackupReq.model_validate({"checkpoint": checkpoint})
    except ValidationError as invalid:
        errors.extend(
            FieldError(locate(error["loc"]), _message(error))
            for error in invalid.errors(include_url=False, include_input=False, include_context=False)
        )
    if errors or validated is None or project_id is None:
        vault_id = checkpoint.get("vault_id") if isinstance(checkpoint, Mapping) else None
        known_vault = vault_id if isinstance(vault_id, str) and UUID_PATTERN.fullmatch(vault_id) else None
        return _reject(origin, key, errors, time=time, project_id=project_id, vault_id=known_vault)
    return BackupRequest(
        idempotency_key=key,
        project_id=project_id,
        body=validated.model_dump(mode="json", exclude_none=True),
        trigger=Trigger(origin.kind, origin.id, time),
        dry_run=defaults.dry_run if envelope.dry_run is None else envelope.dry_run,
    )


def _with_defaults(
    parameters: dict[str, Any], key: str, time: datetime, name_path: str, errors: list[FieldError]
) -> dict[str, Any]:
    """The parameters with an explicit incremental, auto_trigger and a (rendered) name."""
    name = parameters.get("name")
    if name is None:
        name = _derived_name(key)
    elif isinstance(name, str):
        try:
            name = _render_name(name, time)
        except _NameTemplateError as error:
            errors.append(FieldError(name_path, str(error)))
            # A stand-in that passes validation, so the name is reported once, as above.
            name = _derived_name(key)
    parameters["name"] = name
    if parameters.get("incremental") is None:
        parameters["incremental"] = True
    if parameters.get("auto_trigger") is None:
        parameters["auto_trigger"] = False
    return parameters


def _render_name(template: str, time: datetime) -> str:
    """The name with each `{time:FORMAT}` rendered by strftime; any other placeholder is an error."""

    def render(placeholder: re.Match[str]) -> str:
        time_format = _TIME_PLACEHOLDER.fullmatch(placeholder[1])
        if time_format is None:
            raise _NameTemplateError(
                f"has the placeholder {_show(placeholder[0])}; only {{time:FORMAT}} is supported, "
                "e.g. {time:%Y%m%d-%H%M}"
            )
        try:
            return time.strftime(time_format[1])
        except ValueError as error:
            raise _NameTemplateError(
                f"has a time format that strftime cannot render: {_show(placeholder[0])}"
            ) from error

    if "{" not in template:
        return template
    if len(template) > MAX_NAME_TEMPLATE_LENGTH:
        raise _NameTemplateError(f"is a template longer than {MAX_NAME_TEMPLATE_LENGTH} characters")
    rendered, placeholders = _PLACEHOLDER.subn(render, template)
    if placeholders and not NAME_PATTERN.fullmatch(rendered):
        raise _NameTemplateError(f"renders to {_show(rendered)}, which breaks the name rule: it {NAME_RULE}")
    return rendered


def _derived_name(key: str) -> str:
    """A valid, deterministic name for a request that gives none: how a reconciler finds its backup."""
    return f"cbr-{_digest(key)[:20]}"


def _read_envelope(request: Mapping[str, Any], path: str) -> tuple[_Envelope, list[FieldError]]:
    errors: list[FieldError] = []

    def text(field: str, is_valid: Callable[[str], object], rule: str) -> str | None:
        value = request.get(field)
        if value is None:
            return None
        if isinstance(value, str) and is_valid(value):
            return value
        errors.append(FieldError(_join(path, field), rule))
        return None

    project_id = text(
        "project_id", PROJECT_ID_PATTERN.fullmatch, "must be a project id: 1-64 letters, digits, '_' or '-'"
    )
    idempotency_key = text(
        "idempotency_key",
        lambda value: 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH and value.isprintable(),
        f"must be a string of 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable characters",
    )
    scheduled_time = text(
        "scheduled_time", _parse_time, "must be an ISO 8601 date and time such as 2024-05-01T02:00:00Z"
    )
    schedule_arn = text(
        "schedule_arn",
        lambda value: 1 <= len(value) <= MAX_SCHEDULE_ARN_LENGTH,
        f"must be a string of 1-{MAX_SCHEDULE_ARN_LENGTH} characters",
    )
    dry_run = request.get("dry_run")
    if dry_run is not None and not isinstance(dry_run, bool):
        errors.append(FieldError(_join(path, "dry_run"), "must be true or false"))
        dry_run = None
    envelope = _Envelope(
        project_id=project_id,
        idempotency_key=idempotency_key,
        scheduled_time=scheduled_time,
        schedule_arn=schedule_arn,
        dry_run=dry_run,
    )
    return envelope, errors


def _schedule_key(envelope: _Envelope, request: Mapping[str, Any]) -> str | None:
    """The key of one firing of one schedule: the same for every delivery of it."""
    if envelope.schedule_arn is None or envelope.scheduled_time is None:
        return None
    try:
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    except RecursionError:
        # Nesting this deep is never a valid request: it is rejected under the trigger's own key.
        return None
    return f"{envelope.schedule_arn}@{envelope.scheduled_time}#{_digest(canonical)[:16]}"


def _reject(
    origin: _Origin,
    key: str,
    errors: list[FieldError],
    *,
    time: datetime | None = None,
    project_id: str | None = None,
    vault_id: str | None = None,
) -> Rejected:
    shown = errors[:MAX_ERRORS]
    if len(errors) > MAX_ERRORS:
        shown.append(FieldError("…", f"and {len(errors) - MAX_ERRORS} more errors"))
    return Rejected(
        idempotency_key=key,
        trigger=Trigger(origin.kind, origin.id, time or origin.time),
        errors=tuple(shown),
        payload=origin.payload,
        project_id=project_id,
        vault_id=vault_id,
    )


def _message(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return _unknown_field_message(str(error["loc"][-1]), beside_checkpoint=False)
    return error["msg"]


def _unknown_field_message(field: str, *, beside_checkpoint: bool) -> str:
    if field == "requests":
        return "is only allowed at the top level of a payload"
    if beside_checkpoint and field in SHORTHAND_FIELDS:
        return "is not allowed beside 'checkpoint': put it inside 'checkpoint'"
    import difflib  # noqa: PLC0415 - only a rejected payload needs it; kept out of the cold start

    close = (
        difflib.get_close_matches(field, _known_field_names(), n=1) if len(field) <= _MAX_SHOWN_LENGTH else []
    )
    return f"is not a known field (did you mean '{close[0]}'?)" if close else "is not a known field"


@cache
def _known_field_names() -> tuple[str, ...]:
    names = set(ENVELOPE_FIELDS) | {"requests"}
    for model in (
        VaultBackupReq,
        VaultBackup,
        CheckpointParam,
        Resource,
        ResourceExtraInfo,
        ResourceExtraInfoIncludeVolumes,
    ):
        names.update(model.model_fields)
    return tuple(sorted(names))


def _shorthand_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Where a field of the native body built from a shorthand request sits in that request."""
    if loc[:2] == ("checkpoint", "parameters"):
        return loc[2:]
    if loc[:1] == ("checkpoint",):
        return loc[1:]
    return loc


def _join(prefix: str, *parts: int | str) -> str:
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path = f"{path}[{part}]"
        else:
            name = _clip(part) if part.isprintable() else _show(part)
            path = f"{path}.{name}" if path else name
    return path


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN_LENGTH else f"{text[:_MAX_SHOWN_LENGTH]}…"


def _show(text: str) -> str:
    return repr(_clip(text))


def _identifier(value: object) -> str | None:
    return value if isinstance(value, str) and 1 <= len(value) <= _MAX_IDENTIFIER_LENGTH else None


def _parse_time(value: object) -> datetime | None:
    """An ISO 8601 time ("Z" allowed) as an aware datetime; a time without an offset is taken as UTC."""
    if not isinstance(value, str) or len(value) > _MAX_TIME_LENGTH:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _sent_time(record: Mapping[str, Any]) -> datetime | None:
    attributes = record.get("attributes")
    sent = attributes.get("SentTimestamp") if isinstance(attributes, Mapping) else None
    if not isinstance(sent, str) or not _EPOCH_MILLIS.fullmatch(sent):
        return None
    return datetime.fromtimestamp(int(sent) / 1000, UTC)


def _load_json(text: str) -> tuple[Any, str | None]:
    """The parsed document, or why it cannot be parsed."""
    try:
        return json.loads(text), None
    except RecursionError:
        return None, "is nested too deeply"
    except ValueError:
        return None, "is not valid JSON"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
