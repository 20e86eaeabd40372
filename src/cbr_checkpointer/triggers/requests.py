"""A request document → BackupRequest, Selection or Rejected.

Four forms (the envelope fields are allowed in each, `ENVELOPE_FIELDS`):

- native: `{"checkpoint": {"vault_id", "parameters"?}}`, the API's own body;
- shorthand: `{"vault_id", "name"?, "description"?, ...}`, the parameters beside the vault id;
- many: `{"requests": [<request>, ...]}`, 1-100 requests, each keyed from the payload's key and its
  index, each inheriting the payload's envelope fields it does not set itself;
- selection: `{"select": {...}, "name"?, "description"?, "incremental"?, "auto_trigger"?}`.

Every rule is checked before anything is called, and all broken rules are reported at once, each
naming its field by its path in the document the sender wrote. The function's configuration bounds
what a request may ask for (`RequestDefaults`): projects and regions outside the allowed ones are
refused, and a configured dry run cannot be switched off by a request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from cbr_checkpointer.domain import (
    BackupRequest,
    FieldError,
    Rejected,
    RequestItem,
    Selection,
    Trigger,
    TriggerKind,
)
from cbr_checkpointer.field_paths import join, show
from cbr_checkpointer.idempotency_keys import (
    USER_KEY_PATTERN,
    USER_KEY_RULE,
    derived_key,
    derived_name,
    user_key,
)
from cbr_checkpointer.models import (
    NAME_RULE,
    PROJECT_ID_PATTERN,
    UUID_PATTERN,
    CheckpointParam,
    Resource,
    ResourceExtraInfo,
    ResourceExtraInfoIncludeVolumes,
    VaultBackup,
    VaultBackupReq,
    is_valid_name,
)
from cbr_checkpointer.triggers.selection import CRITERIA, read_selector
from cbr_checkpointer.values import replace, value

ENVELOPE_FIELDS = frozenset(
    {"project_id", "region", "idempotency_key", "scheduled_time", "schedule_arn", "dry_run"}
)
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
SELECTION_PARAMETER_FIELDS = ("name", "description", "incremental", "auto_trigger")
# Beside `select`, what a selection cannot take, and why.
NOT_WITH_SELECT = {
    "vault_id": "a selection backs up whole vaults: leave out vault_id",
    "checkpoint": "a selection backs up whole vaults: leave out checkpoint",
    "resources": "a selection backs up whole vaults: leave out resources",
    "resource_details": "a selection backs up whole vaults: leave out resource_details",
    "policy_id": "to select the vaults of a policy, use select.policy_id",
    "retention_duration_days": "a selection takes only name, description, incremental and auto_trigger",
}
MAX_REQUESTS = 100
MAX_SCHEDULE_ARN_LENGTH = 1024
MAX_NAME_TEMPLATE_LENGTH = 256
MAX_ERRORS = 20
# A "did you mean" costs a fuzzy match against every known field: only so many are offered, and only
# for names no longer than the longest known field by much.
MAX_SUGGESTED_LENGTH = 32
# A Huawei Cloud region id such as cn-north-4, ap-southeast-1, eu-west-101 or my-kualalumpur-1.
REGION_PATTERN = re.compile(r"[a-z]{2}(?:-[a-z]{2,20}){1,2}-[0-9]{1,3}")

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_TIME_PLACEHOLDER = re.compile(r"time:([^{}]+)", re.DOTALL)
_MAX_TIME_LENGTH = 64


# What a request document becomes.


@value
class RequestDefaults:
    """The function's configuration, as far as a request is concerned: what it falls back to when it
    does not say, and what it may not ask for.

    `allowed_project_ids`: the projects a request may act on; empty means `project_id` alone, None
    means any (only for checking a request away from its deployment, as the command line does).
    `regions`: the region ids a request may name in `region`; None means any well-formed one (again
    only for checking away from a deployment); `region` is where a request that names none goes (None:
    the configured endpoint, whose region is not known). `dry_run` is a floor: a request can ask for a
    dry run, never for less.
    """

    project_id: str | None
    default_vault_id: str | None
    dry_run: bool = False
    allowed_project_ids: frozenset[str] | None = frozenset()
    regions: frozenset[str] | None = frozenset()
    region: str | None = None

    def allows_project(self, project_id: str) -> bool:
        if self.allowed_project_ids is None:
            return True
        return project_id in (self.allowed_project_ids or {self.project_id})

    def allows_region(self, region: str) -> bool:
        return region in self.regions if self.regions is not None else True


@value
class Origin:
    """What the trigger itself says: kind, id and time, and the payload to quote when rejecting."""

    kind: TriggerKind
    id: str
    time: datetime
    payload: Any
    # A Scheduler input or direct invoke has no id of its own: the request's key makes it one.
    identified_by_request: bool = False

    def fallback_key(self) -> str:
        """The key of a payload too broken to be keyed by its content."""
        return derived_key(self.kind, self.id)


@value
class _Envelope:
    """The envelope fields of one request, each None when absent or invalid."""

    project_id: str | None = None
    region: str | None = None
    idempotency_key: str | None = None
    scheduled_time: str | None = None
    schedule_arn: str | None = None
    dry_run: bool | None = None

    def under(self, outer: _Envelope) -> _Envelope:
        """These fields, falling back to those of the payload that encloses this request."""
        return _Envelope(
            project_id=self.project_id or outer.project_id,
            region=self.region or outer.region,
            idempotency_key=self.idempotency_key,
            scheduled_time=self.scheduled_time or outer.scheduled_time,
            schedule_arn=self.schedule_arn or outer.schedule_arn,
            dry_run=outer.dry_run if self.dry_run is None else self.dry_run,
        )


class _NameTemplateError(Exception):
    pass


# Counts an error that a Rejected does not show (it shows the first MAX_ERRORS and how many more).
_NOT_SHOWN = FieldError("…", "not shown")


class _UnknownFields:
    """The messages for unknown fields; only the first `MAX_ERRORS` get a "did you mean"."""

    def __init__(self) -> None:
        self._suggestions_left = MAX_ERRORS

    def message(self, field: str, *, beside_checkpoint: bool = False) -> str:
        if field == "requests":
            return "is only allowed at the top level of a payload"
        if beside_checkpoint and field in SHORTHAND_FIELDS:
            return "is not allowed beside 'checkpoint': put it inside 'checkpoint'"
        close: list[str] = []
        if self._suggestions_left > 0 and len(field) <= MAX_SUGGESTED_LENGTH:
            import difflib  # noqa: PLC0415 - only a rejected payload needs it; kept out of the cold start

            self._suggestions_left -= 1
            close = difflib.get_close_matches(field, _known_field_names(), n=1)
        return f"is not a known field (did you mean '{close[0]}'?)" if close else "is not a known field"

    def error(
        self, errors: list[FieldError], path: str, field: str, *, beside_checkpoint: bool = False
    ) -> FieldError:
        """The error of an unknown field; past the errors a Rejected shows, a stand-in that only counts."""
        if len(errors) >= MAX_ERRORS:
            return _NOT_SHOWN
        return FieldError(join(path, field), self.message(field, beside_checkpoint=beside_checkpoint))


def from_request(
    request: Any, origin: Origin, defaults: RequestDefaults, *, prefix: str, root_label: str
) -> list[RequestItem]:
    """The work items of one request document, whose limits have been checked already."""
    if not isinstance(request, Mapping):
        return [
            reject(origin, origin.fallback_key(), [FieldError(prefix or root_label, "must be a JSON object")])
        ]
    envelope, errors = _read_envelope(request, prefix)
    kind = origin.kind
    if origin.identified_by_request:
        kind = "schedule" if envelope.schedule_arn else "direct"
    key, named_by_request = _key(envelope, request, kind, origin.id)
    if origin.identified_by_request:
        # Identified by the key the request names (its own, or its schedule firing's), else by the
        # Lambda request id, which asynchronous retries keep.
        origin = replace(origin, kind=kind, id=key if named_by_request else origin.id)
    if "requests" not in request:
        return [_one(request, envelope, errors, key=key, path=prefix, origin=origin, defaults=defaults)]

    for field in request:
        if field not in ENVELOPE_FIELDS and field != "requests":
            errors.append(
                FieldError(join(prefix, field), "is not allowed beside 'requests': put it in each request")
            )
    errors.extend(_beyond_allowed(envelope, defaults, prefix))
    items = request["requests"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_REQUESTS:
        errors.append(FieldError(join(prefix, "requests"), f"must be a list of 1-{MAX_REQUESTS} requests"))
    if errors:
        time = parse_time(envelope.scheduled_time) or origin.time
        return [reject(origin, key, errors, time=time, project_id=envelope.project_id or defaults.project_id)]

    work_items: list[RequestItem] = []
    for index, item in enumerate(items):
        path = join(prefix, "requests", index)
        item_key = derived_key("item", key, index)
        if not isinstance(item, Mapping):
            error = FieldError(path, "must be a JSON object")
            work_items.append(
                reject(origin, item_key, [error], project_id=envelope.project_id or defaults.project_id)
            )
            continue
        item_envelope, item_errors = _read_envelope(item, path)
        if item_envelope.idempotency_key is not None:
            item_key = user_key(item_envelope.idempotency_key)
        work_items.append(
            _one(
                item,
                item_envelope.under(envelope),
                item_errors,
                key=item_key,
                path=path,
                origin=origin,
                defaults=defaults,
            )
        )
    return work_items


def _key(
    envelope: _Envelope, request: Mapping[str, Any], kind: TriggerKind, trigger_id: str
) -> tuple[str, bool]:
    """The request's key, and whether the request names it itself (its own key, or its schedule firing)."""
    if envelope.idempotency_key is not None:
        return user_key(envelope.idempotency_key), True
    if envelope.schedule_arn is not None and envelope.scheduled_time is not None:
        return derived_key("schedule", envelope.schedule_arn, envelope.scheduled_time, content=request), True
    return derived_key(kind, trigger_id, content=request), False


def _one(
    request: Mapping[str, Any],
    envelope: _Envelope,
    errors: list[FieldError],
    *,
    key: str,
    path: str,
    origin: Origin,
    defaults: RequestDefaults,
) -> RequestItem:
    """One request (native, shorthand or selection) whose envelope has been read."""
    time = parse_time(envelope.scheduled_time) or origin.time
    project_id = envelope.project_id or defaults.project_id
    if project_id is None:
        errors.append(
            FieldError(
                join(path, "project_id"), "is required: give project_id or set HUAWEICLOUD_SDK_PROJECT_ID"
            )
        )
    errors.extend(_beyond_allowed(replace(envelope, project_id=project_id), defaults, path))
    dry_run = defaults.dry_run or envelope.dry_run is True
    unknown = _UnknownFields()
    if "select" in request:
        return _selection(
            request,
            errors,
            key=key,
            path=path,
            origin=origin,
            time=time,
            project_id=project_id,
            region=envelope.region or defaults.region,
            dry_run=dry_run,
            unknown=unknown,
        )

    locate: Callable[[tuple[int | str, ...]], str]
    if "checkpoint" in request:
        written = request["checkpoint"]
        checkpoint: Any = dict(written) if isinstance(written, Mapping) else written
        form_fields: frozenset[str] = frozenset({"checkpoint"})

        def locate(loc: tuple[int | str, ...]) -> str:
            return join(path, *loc)

    else:
        checkpoint = {"parameters": {field: request[field] for field in PARAMETER_FIELDS if field in request}}
        if "vault_id" in request:
            checkpoint["vault_id"] = request["vault_id"]
        form_fields = SHORTHAND_FIELDS

        def locate(loc: tuple[int | str, ...]) -> str:
            return join(path, *_shorthand_loc(loc))

    for field in request:
        if field not in ENVELOPE_FIELDS and field not in form_fields:
            errors.append(unknown.error(errors, path, field, beside_checkpoint="checkpoint" in request))

    written_name = None
    if isinstance(checkpoint, dict):
        parameters = checkpoint.get("parameters")
        if isinstance(parameters, Mapping):
            written_name = parameters.get("name")
        if parameters is None or isinstance(parameters, Mapping):
            name_path = locate(("checkpoint", "parameters", "name"))
            checkpoint["parameters"] = _with_defaults(dict(parameters or {}), key, time, name_path, errors)

    validated: VaultBackupReq | None = None
    try:
        validated = VaultBackupReq.model_validate({"checkpoint": checkpoint})
    except ValidationError as invalid:
        errors.extend(
            FieldError(locate(error["loc"]), _message(error, unknown)) for error in _errors(invalid)
        )
    if errors or validated is None or project_id is None:
        vault_id = checkpoint.get("vault_id") if isinstance(checkpoint, Mapping) else None
        known_vault = vault_id if isinstance(vault_id, str) and UUID_PATTERN.fullmatch(vault_id) else None
        return reject(origin, key, errors, time=time, project_id=project_id, vault_id=known_vault)
    body = validated.model_dump(mode="json", exclude_none=True)
    rendered = body["checkpoint"]["parameters"]["name"]
    return BackupRequest(
        idempotency_key=key,
        project_id=project_id,
        body=body,
        trigger=Trigger(origin.kind, origin.id, time),
        dry_run=dry_run,
        region=envelope.region or defaults.region,
        name_template=written_name if isinstance(written_name, str) and written_name != rendered else None,
    )


def _selection(
    request: Mapping[str, Any],
    errors: list[FieldError],
    *,
    key: str,
    path: str,
    origin: Origin,
    time: datetime,
    project_id: str | None,
    region: str | None,
    dry_run: bool,
    unknown: _UnknownFields,
) -> Selection | Rejected:
    selector, selector_errors = read_selector(request["select"], join(path, "select"))
    errors.extend(selector_errors)
    for field in request:
        if field in NOT_WITH_SELECT:
            errors.append(
                FieldError(join(path, field), f"is not allowed with 'select': {NOT_WITH_SELECT[field]}")
            )
        elif field not in ENVELOPE_FIELDS and field != "select" and field not in SELECTION_PARAMETER_FIELDS:
            errors.append(unknown.error(errors, path, field))
    template = {
        field: request[field] for field in SELECTION_PARAMETER_FIELDS if request.get(field) is not None
    }
    if isinstance(template.get("name"), str):
        try:
            template["name"] = _render_name(template["name"], time)
        except _NameTemplateError as error:
            errors.append(FieldError(join(path, "name"), str(error)))
            del template["name"]
    parameters: dict[str, Any] = {}
    try:
        parameters = CheckpointParam.model_validate(template).model_dump(mode="json", exclude_none=True)
    except ValidationError as invalid:
        errors.extend(
            FieldError(join(path, *error["loc"]), _message(error, unknown)) for error in _errors(invalid)
        )
    if errors or selector is None or project_id is None:
        return reject(origin, key, errors, time=time, project_id=project_id)
    return Selection(
        idempotency_key=key,
        project_id=project_id,
        selector=selector,
        parameters={"incremental": True, "auto_trigger": False} | parameters,
        trigger=Trigger(origin.kind, origin.id, time),
        region=region,
        dry_run=dry_run,
    )


def _beyond_allowed(envelope: _Envelope, defaults: RequestDefaults, path: str) -> list[FieldError]:
    """The envelope's project and region, where the function's configuration does not allow them."""
    errors = []
    if envelope.project_id is not None and not defaults.allows_project(envelope.project_id):
        errors.append(
            FieldError(
                join(path, "project_id"),
                f"is {show(envelope.project_id)}, a project this function may not act on "
                "(see ALLOWED_PROJECT_IDS)",
            )
        )
    if envelope.region is not None and not defaults.allows_region(envelope.region):
        known = ", ".join(sorted(defaults.regions or ())) or "none: requests may not name a region"
        errors.append(
            FieldError(join(path, "region"), f"is not a region this function can reach (known: {known})")
        )
    return errors


def _with_defaults(
    parameters: dict[str, Any], key: str, time: datetime, name_path: str, errors: list[FieldError]
) -> dict[str, Any]:
    """The parameters with an explicit incremental, auto_trigger and a (rendered) name."""
    name = parameters.get("name")
    if name is None:
        name = derived_name(key)
    elif isinstance(name, str):
        try:
            name = _render_name(name, time)
        except _NameTemplateError as error:
            errors.append(FieldError(name_path, str(error)))
            # A stand-in that passes validation, so the name is reported once, as above.
            name = derived_name(key)
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
                f"has the placeholder {show(placeholder[0])}; only {{time:FORMAT}} is supported, "
                "e.g. {time:%Y%m%d-%H%M}"
            )
        try:
            return time.strftime(time_format[1])
        except ValueError as error:
            raise _NameTemplateError(
                f"has a time format that strftime cannot render: {show(placeholder[0])}"
            ) from error

    if "{" not in template:
        return template
    if len(template) > MAX_NAME_TEMPLATE_LENGTH:
        raise _NameTemplateError(f"is a template longer than {MAX_NAME_TEMPLATE_LENGTH} characters")
    rendered, placeholders = _PLACEHOLDER.subn(render, template)
    if placeholders and not is_valid_name(rendered):
        raise _NameTemplateError(f"renders to {show(rendered)}, which breaks the name rule: it {NAME_RULE}")
    return rendered


def _read_envelope(request: Mapping[str, Any], path: str) -> tuple[_Envelope, list[FieldError]]:
    errors: list[FieldError] = []

    def text(field: str, is_valid: Callable[[str], object], rule: str) -> str | None:
        value = request.get(field)
        if value is None:
            return None
        if isinstance(value, str) and is_valid(value):
            return value
        errors.append(FieldError(join(path, field), rule))
        return None

    project_id = text(
        "project_id", PROJECT_ID_PATTERN.fullmatch, "must be a project id: 1-64 letters, digits, '_' or '-'"
    )
    region = text("region", REGION_PATTERN.fullmatch, "must be a Huawei Cloud region id such as cn-north-4")
    idempotency_key = text("idempotency_key", USER_KEY_PATTERN.fullmatch, USER_KEY_RULE)
    scheduled_time = text(
        "scheduled_time", parse_time, "must be an ISO 8601 date and time such as 2024-05-01T02:00:00Z"
    )
    schedule_arn = text(
        "schedule_arn",
        lambda value: 1 <= len(value) <= MAX_SCHEDULE_ARN_LENGTH,
        f"must be a string of 1-{MAX_SCHEDULE_ARN_LENGTH} characters",
    )
    dry_run = request.get("dry_run")
    if dry_run is not None and not isinstance(dry_run, bool):
        errors.append(FieldError(join(path, "dry_run"), "must be true or false"))
        dry_run = None
    envelope = _Envelope(
        project_id=project_id,
        region=region,
        idempotency_key=idempotency_key,
        scheduled_time=scheduled_time,
        schedule_arn=schedule_arn,
        dry_run=dry_run,
    )
    return envelope, errors


def reject(
    origin: Origin,
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


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time ("Z" allowed) as an aware datetime; a time without an offset is taken as UTC."""
    if not isinstance(value, str) or len(value) > _MAX_TIME_LENGTH:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _errors(invalid: ValidationError) -> list[ErrorDetails]:
    return invalid.errors(include_url=False, include_input=False, include_context=False)


def _message(error: ErrorDetails, unknown: _UnknownFields) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return unknown.message(str(error["loc"][-1]))
    return error["msg"]


@cache
def _known_field_names() -> tuple[str, ...]:
    names = set(ENVELOPE_FIELDS) | {"requests", "select", *CRITERIA}
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
