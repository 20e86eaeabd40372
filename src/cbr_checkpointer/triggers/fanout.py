"""The fan-out message: one vault of an expanded selection, sent on the request queue to run there.

A selection too large to run in the invocation that listed it is sent on as one message per vault,
`{"fanout": {...}}` (`FanoutMessage`). The message carries what keys the vault's request: the
selection's key, the vault, its project and region, and the parameters every vault gets. The
request is keyed as `expand_selection` keys it in the invocation itself, so a vault keeps its key
whether it ran there or went through the queue, and a retried trigger that sends it again makes no
second checkpoint.

The queue may take requests from others, and a message can name any selection key: the key of a
vault's request is derived from the selection's key, the vault, and the request's project, region
and parameters, so a message can only claim the key of the very request it asks for.
"""

# Annotations stay objects, not strings (no __future__ import): pydantic models evaluate strings at import.
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, ValidationError
from pydantic_core import PydanticCustomError

from cbr_checkpointer.domain import FieldError, Selection, Trigger, WorkItem
from cbr_checkpointer.expansion import expand_selection
from cbr_checkpointer.field_paths import join
from cbr_checkpointer.idempotency_keys import KEY_PATTERN
from cbr_checkpointer.models import PROJECT_ID_PATTERN, UUID_PATTERN, CheckpointParam
from cbr_checkpointer.triggers.requests import (
    MAX_ERRORS,
    REGION_PATTERN,
    SELECTION_PARAMETER_FIELDS,
    Origin,
    RequestDefaults,
    reject,
)
from cbr_checkpointer.triggers.selection import read_selector

FANOUT_VERSION = 1
_MAX_TRIGGER_ID_LENGTH = 1024


def _matching(pattern: Any, rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise PydanticCustomError("format", rule)
        return value

    return AfterValidator(check)


def _is_fanout_version(version: int) -> int:
    if version != FANOUT_VERSION:
        raise PydanticCustomError("version", f"must be {FANOUT_VERSION}")
    return version


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FanoutTrigger(_Model):
    """The trigger of the selection, as `Trigger.to_detail` writes it."""

    kind: Literal["schedule", "rule", "eventbridge", "sqs", "direct"]
    id: Annotated[StrictStr, Field(min_length=1, max_length=_MAX_TRIGGER_ID_LENGTH)]
    time: AwareDatetime | None = None


class FanoutBody(_Model):
    version: Annotated[int, Field(strict=True), AfterValidator(_is_fanout_version)]
    selection_key: Annotated[StrictStr, _matching(KEY_PATTERN, "must be a key of a request (u:… or d:…)")]
    project_id: Annotated[StrictStr, _matching(PROJECT_ID_PATTERN, "must be a project id")]
    region: Annotated[StrictStr, _matching(REGION_PATTERN, "must be a region id")] | None = None
    vault_id: Annotated[StrictStr, _matching(UUID_PATTERN, "must be a UUID")]
    select: dict[str, Any]
    parameters: dict[str, Any]
    trigger: FanoutTrigger
    dry_run: bool = False


class FanoutMessage(_Model):
    fanout: FanoutBody


def fanout_message(selection: Selection, vault_id: str) -> dict[str, Any]:
    """The request-queue message body that backs up `vault_id` for `selection`."""
    body: dict[str, Any] = {
        "version": FANOUT_VERSION,
        "selection_key": selection.idempotency_key,
        "project_id": selection.project_id,
        "vault_id": vault_id,
        "select": selection.selector,
        "parameters": selection.parameters,
        "trigger": selection.trigger.to_detail(),
        "dry_run": selection.dry_run,
    }
    if selection.region is not None:
        body["region"] = selection.region
    return {"fanout": body}


def is_fanout_message(body: Any) -> bool:
    return isinstance(body, Mapping) and "fanout" in body


def parse_fanout_message(body: Mapping[str, Any], origin: Origin, defaults: RequestDefaults) -> WorkItem:
    """The one vault's request of a fan-out message, within what the function's configuration allows
    (project, region, dry run as a floor); or Rejected, naming the field at fault."""
    try:
        message = FanoutMessage.model_validate(body).fanout
    except ValidationError as invalid:
        shape_errors = [
            FieldError(join("", *error["loc"]), "is required" if error["type"] == "missing" else error["msg"])
            for error in invalid.errors(include_url=False, include_input=False, include_context=False)
        ]
        return reject(origin, origin.fallback_key(), shape_errors[:MAX_ERRORS])
    errors: list[FieldError] = []
    selector, selector_errors = read_selector(message.select, "fanout.select")
    errors.extend(selector_errors)
    unknown = sorted(set(message.parameters) - set(SELECTION_PARAMETER_FIELDS))
    errors.extend(
        FieldError(join("fanout.parameters", field), "is not a parameter of a selection") for field in unknown
    )
    try:
        if not unknown:
            CheckpointParam.model_validate(message.parameters)
    except ValidationError as invalid:
        errors.extend(
            FieldError(join("fanout.parameters", *error["loc"]), error["msg"])
            for error in invalid.errors(include_url=False, include_input=False, include_context=False)
        )
    if not defaults.allows_project(message.project_id):
        errors.append(FieldError("fanout.project_id", "is a project this function may not act on"))
    if message.region is not None and not defaults.allows_region(message.region):
        errors.append(FieldError("fanout.region", "is not a region this function can reach"))
    trigger = Trigger(message.trigger.kind, message.trigger.id, message.trigger.time)
    if errors or selector is None:
        return reject(
            origin, origin.fallback_key(), errors, project_id=message.project_id, vault_id=message.vault_id
        )
    selection = Selection(
        idempotency_key=message.selection_key,
        project_id=message.project_id,
        selector=selector,
        parameters=message.parameters,
        trigger=trigger,
        region=message.region,
        dry_run=defaults.dry_run or message.dry_run,
    )
    (item,) = expand_selection(selection, [message.vault_id])
    return item
