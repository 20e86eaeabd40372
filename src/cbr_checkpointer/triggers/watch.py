"""The watch message: a completion check of a created checkpoint, sent by the function to itself.

The body is `{"watch": {...}}` (`WatchMessage`). It is honoured only on records of the watch queue,
recognised by the record's `eventSourceARN`: a queue that takes requests from others must not let
them schedule checks (a check publishes final events and claims ledger records). The same body on
any other queue is Rejected; a record of the watch queue that is not a watch message is too.
"""

# Annotations stay objects, not strings (no __future__ import): pydantic models evaluate strings at import.
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from cbr_checkpointer.domain import FieldError, Rejected, Trigger, WatchCheck
from cbr_checkpointer.field_paths import join
from cbr_checkpointer.idempotency_keys import KEY_PATTERN, derived_key
from cbr_checkpointer.models import PROJECT_ID_PATTERN, UUID_PATTERN
from cbr_checkpointer.triggers.envelopes import message_id, sent_time
from cbr_checkpointer.triggers.limits import load_json, quotable
from cbr_checkpointer.triggers.requests import MAX_ERRORS, REGION_PATTERN, RequestDefaults

WATCH_VERSION = 1
MAX_WATCH_ATTEMPT = 100_000
_MAX_TRIGGER_ID_LENGTH = 1024
# https://sqs.<region>.amazonaws.com[.cn]/<account>/<name>, or the legacy <region>.queue.amazonaws.com
_AWS_QUEUE_HOST = re.compile(
    r"(?:sqs\.(?P<region>[a-z0-9-]+)|(?P<legacy>[a-z0-9-]+)\.queue)\.amazonaws\.com(?P<china>\.cn)?"
)
_QUEUE_PATH = re.compile(r"/(?P<account>[0-9]{12})/(?P<name>[A-Za-z0-9_-]{1,80}(?:\.fifo)?)")


def _matching(pattern: re.Pattern[str], rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise PydanticCustomError("format", rule)
        return value

    return AfterValidator(check)


def _is_watch_version(version: int) -> int:
    if version != WATCH_VERSION:
        raise PydanticCustomError("version", f"must be {WATCH_VERSION}")
    return version


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class WatchTrigger(_Model):
    """The trigger of the request whose checkpoint is followed, as `Trigger.to_detail` writes it."""

    kind: Literal["schedule", "rule", "eventbridge", "sqs", "direct"]
    id: Annotated[StrictStr, Field(min_length=1, max_length=_MAX_TRIGGER_ID_LENGTH)]
    time: AwareDatetime | None = None


class WatchBody(_Model):
    version: Annotated[StrictInt, AfterValidator(_is_watch_version)]
    project_id: Annotated[StrictStr, _matching(PROJECT_ID_PATTERN, "must be a project id")]
    checkpoint_id: Annotated[StrictStr, _matching(UUID_PATTERN, "must be a UUID")]
    vault_id: Annotated[StrictStr, _matching(UUID_PATTERN, "must be a UUID")]
    idempotency_key: Annotated[StrictStr, _matching(KEY_PATTERN, "must be a key of a request (u:… or d:…)")]
    request: dict[str, Any]
    trigger: WatchTrigger
    first_seen: AwareDatetime
    attempt: Annotated[int, Field(strict=True, ge=1, le=MAX_WATCH_ATTEMPT)]
    # Absent from messages scheduled before checks named their region: the configured one.
    region: (
        Annotated[StrictStr, _matching(REGION_PATTERN, "must be a region id such as cn-north-4")] | None
    ) = None


class WatchMessage(_Model):
    watch: WatchBody


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
        | ({} if check.region is None else {"region": check.region})
    }


def parse_watch_record(
    record: Mapping[str, Any], watch_queue_arn: str | None, *, defaults: RequestDefaults
) -> WatchCheck | Rejected | None:
    """The completion check an SQS record carries; None when the record is for the request parser.

    A record of the watch queue (`eventSourceARN` equal to `watch_queue_arn`) is a check or Rejected;
    a record of another queue is None unless its body is a watch message, which is Rejected there. A
    check of a project the function may not act on (`defaults.allows_project`) is Rejected too, as its
    request would have been: nothing is read from CBR with the function's credentials for it.
    """
    body_text = record.get("body")
    from_watch_queue = watch_queue_arn is not None and record.get("eventSourceARN") == watch_queue_arn
    # json.dumps never escapes ASCII letters: a body without this text is no watch message. One that
    # escapes them to hide is a request with an unknown field, which the request parser refuses.
    if not from_watch_queue and (not isinstance(body_text, str) or '"watch"' not in body_text):
        return None
    identity = message_id(record)
    trigger = Trigger("sqs", identity, sent_time(record) or datetime.now(UTC))
    if not isinstance(body_text, str):
        return _rejected(trigger, None, [FieldError("body", "must be a string holding a watch message")])
    body, problem = load_json(body_text, "", label="body")
    if problem is not None:
        quoted = quotable(body_text[:1024] if body is None else body)
        return _rejected(trigger, quoted, [problem]) if from_watch_queue else None
    if not from_watch_queue:
        if not isinstance(body, Mapping) or "watch" not in body:
            return None
        error = FieldError(
            "watch", "is a completion check, honoured only on records of the function's watch queue"
        )
        return _rejected(trigger, body, [error])
    try:
        message = WatchMessage.model_validate(body)
    except ValidationError as invalid:
        errors = [
            FieldError(join("", *error["loc"]), "is required" if error["type"] == "missing" else error["msg"])
            for error in invalid.errors(include_url=False, include_input=False, include_context=False)
        ]
        watch = body.get("watch") if isinstance(body, Mapping) else None
        return _rejected(trigger, body, errors, watch if isinstance(watch, Mapping) else {})
    watch = message.watch
    if not defaults.allows_project(watch.project_id):
        error = FieldError(
            "watch.project_id",
            f"is {watch.project_id}, a project this function may not act on (see ALLOWED_PROJECT_IDS)",
        )
        return _rejected(trigger, body, [error], body["watch"])
    return WatchCheck(
        idempotency_key=watch.idempotency_key,
        project_id=watch.project_id,
        vault_id=watch.vault_id,
        checkpoint_id=watch.checkpoint_id,
        request=watch.request,
        trigger=Trigger(watch.trigger.kind, watch.trigger.id, watch.trigger.time),
        first_seen=watch.first_seen,
        attempt=watch.attempt,
        region=watch.region,
    )


def _rejected(
    trigger: Trigger, payload: Any, errors: list[FieldError], watch: Mapping[str, Any] | None = None
) -> Rejected:
    """A Rejected watch record, keyed by its check's request key (and naming its project and vault)
    as far as those are sound."""
    fields = watch or {}
    key, project_id, vault_id = (fields.get(name) for name in ("idempotency_key", "project_id", "vault_id"))
    return Rejected(
        idempotency_key=str(key) if _matches(KEY_PATTERN, key) else derived_key("sqs", trigger.id),
        trigger=trigger,
        errors=tuple(errors[:MAX_ERRORS]),
        payload=payload,
        project_id=project_id if _matches(PROJECT_ID_PATTERN, project_id) else None,
        vault_id=vault_id if _matches(UUID_PATTERN, vault_id) else None,
    )


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def watch_queue_arn(queue_url: str, default_region: str) -> str | None:
    """The ARN of the queue at `queue_url`, as Lambda writes it into each record's `eventSourceARN`.

    `https://sqs.<region>.amazonaws.com/<account>/<name>` (also `.amazonaws.com.cn` and the legacy
    `<region>.queue.amazonaws.com`) → `arn:aws:sqs:<region>:<account>:<name>`. Any other host (a
    local stand-in such as moto on loopback) is taken to serve `default_region`, the function's own.
    None when the URL names no queue.
    """
    parts = urlsplit(queue_url)
    path = _QUEUE_PATH.fullmatch(parts.path.rstrip("/"))
    if path is None or not parts.hostname:
        return None
    host = _AWS_QUEUE_HOST.fullmatch(parts.hostname)
    if host is None:
        partition, region = "aws", default_region
    else:
        partition = "aws-cn" if host["china"] else "aws"
        region = host["region"] or host["legacy"]
    return f"arn:{partition}:sqs:{region}:{path['account']}:{path['name']}"
