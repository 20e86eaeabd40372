"""Request checks the real CBR API makes, each naming the offending field.

Stricter than the documentation in two respects: unknown keys anywhere in a request body are refused,
so a client that leaks its own fields (an idempotency key, an envelope field) into the wire body is
caught here instead of being silently ignored; and the tag query's `limit` and `offset` must be
strings, as the official SDK types them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cbr_emulator.state import OBJECT_TYPES, Backup, OperationLog, Vault

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
BACKUP_NAME = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fff]{1,64}")
RESOURCE_TYPES = frozenset(
    {
        "OS::Nova::Server",
        "OS::Cinder::Volume",
        "OS::Ironic::BareMetalServer",
        "OS::Native::Server",
        "OS::Sfs::Turbo",
        "OS::Workspace::DesktopV2",
    }
)
MAX_RESOURCES = 256
MAX_DESCRIPTION = 255
MAX_RESOURCE_NAME = 255
MAX_RETENTION_DAYS = 36500
KEEP_FOREVER = -1
MAX_PAGE = 1000
# ListOpLogs enums: the values CBR's API reference gives for operation_type and status.
OPERATION_TYPES = frozenset(
    {"backup", "copy", "replication", "restore", "delete", "sync", "vault_delete", "remove_resource"}
)
OPERATION_STATUSES = frozenset({"success", "skipped", "failed", "running", "timeout", "waiting"})
QUERY_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The tag query (SDK `VaultResourceInstancesReq` and `TagsReq`).
RESOURCE_INSTANCE_KEYS = frozenset(
    {
        "without_any_tag",
        "tags",
        "tags_any",
        "not_tags",
        "not_tags_any",
        "sys_tags",
        "limit",
        "offset",
        "action",
        "matches",
        "cloud_type",
        "object_type",
    }
)
TAG_CONDITION_LISTS = ("tags", "tags_any", "not_tags", "not_tags_any")
MAX_TAG_KEYS = 10
MAX_TAG_VALUES = 10
MAX_TAG_QUERY_KEY = 127
MAX_TAG_QUERY_VALUE = 255
# What a vault's own tags may hold (SDK `Tag`).
TAG_KEY = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fa5]{1,36}")
TAG_VALUE = re.compile(r"[A-Za-z0-9_\-.\u4e00-\u9fa5]{0,43}")

PARAMETER_KEYS = frozenset(
    {
        "auto_trigger",
        "incremental",
        "name",
        "description",
        "resources",
        "resource_details",
        "policy_id",
        "retention_duration_days",
    }
)


class InvalidParameter(ValueError):
    """A request field the API refuses; the message is CBR's `error_msg` and starts with the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"Invalid parameter: {field} {problem}")


@dataclass(frozen=True)
class CreateCheckpoint:
    vault_id: str
    name: str | None
    description: str
    incremental: bool
    auto_trigger: bool
    retention_duration_days: int | None
    resource_ids: tuple[str, ...]


@dataclass(frozen=True)
class BackupQuery:
    vault_id: str | None
    checkpoint_id: str | None
    name: str | None
    resource_id: str | None
    statuses: frozenset[str]
    start_time: datetime | None
    end_time: datetime | None
    limit: int
    offset: int

    def matches(self, backup: Backup) -> bool:
        return (
            self.vault_id in (None, backup.vault_id)
            and self.checkpoint_id in (None, backup.checkpoint_id)
            and self.name in (None, backup.name)
            and self.resource_id in (None, backup.resource.id)
            and (not self.statuses or backup.status in self.statuses)
            and (self.start_time is None or backup.created_at >= self.start_time)
            and (self.end_time is None or backup.created_at <= self.end_time)
        )


@dataclass(frozen=True)
class OperationLogQuery:
    """The filters of ListOpLogs. There is no `checkpoint_id` filter in the API: a client must match it."""

    vault_id: str | None
    resource_id: str | None
    operation_type: str | None
    status: str | None
    limit: int
    offset: int
    start_time: datetime | None = None
    end_time: datetime | None = None

    def matches(self, log: OperationLog) -> bool:
        return (
            self.vault_id in (None, log.vault_id)
            and self.resource_id in (None, log.resource.id)
            and self.operation_type in (None, "backup")
            and self.status in (None, log.status)
            and (self.start_time is None or log.started_at >= self.start_time)
            and (self.end_time is None or log.started_at <= self.end_time)
        )


@dataclass(frozen=True)
class VaultQuery:
    """The filters of ListVault. `ids` and `resource_ids` match any of theirs."""

    project_id: str
    ids: frozenset[str]
    name: str | None
    object_type: str | None
    policy_id: str | None
    status: str | None
    resource_ids: frozenset[str]
    limit: int
    offset: int

    def matches(self, vault: Vault) -> bool:
        return (
            vault.project_id == self.project_id
            and (not self.ids or vault.id in self.ids)
            and self.name in (None, vault.name)
            and self.object_type in (None, vault.object_type)
            and (self.policy_id is None or self.policy_id in vault.policy_ids)
            and self.status in (None, vault.status)
            and (not self.resource_ids or not self.resource_ids.isdisjoint(vault.resources))
        )


@dataclass(frozen=True)
class TagCondition:
    """One `{"key", "values"}` of a tag query: the key is there and, unless `values` is empty (any value),
    its value is one of them. A value `*text` matches every value containing `text`."""

    key: str
    values: tuple[str, ...]

    def holds(self, tags: Mapping[str, str]) -> bool:
        value = tags.get(self.key)
        if value is None:
            return False
        return not self.values or any(
            pattern[1:] in value if pattern.startswith("*") else pattern == value for pattern in self.values
        )


@dataclass(frozen=True)
class ResourceInstanceQuery:
    """`POST /vault/resource_instances/action`: keys are AND-ed in `tags` and `not_tags`, OR-ed in
    `tags_any` and `not_tags_any`; `without_any_tag` overrides all four; every given list must hold."""

    project_id: str
    action: str
    without_any_tag: bool
    tags: tuple[TagCondition, ...] | None
    tags_any: tuple[TagCondition, ...] | None
    not_tags: tuple[TagCondition, ...] | None
    not_tags_any: tuple[TagCondition, ...] | None
    resource_name: str | None
    object_type: str | None
    cloud_type: str | None
    limit: int
    offset: int

    def matches(self, vault: Vault) -> bool:
        # Every vault here is a public-cloud one.
        if (
            vault.project_id != self.project_id
            or self.object_type not in (None, vault.object_type)
            or self.cloud_type not in (None, "public")
        ):
            return False
        if self.resource_name is not None and not (
            self.resource_name.lower() in vault.name.lower() if self.resource_name else vault.name == ""
        ):
            return False
        if self.without_any_tag:
            return not vault.tags
        tags = vault.tags
        return (
            (self.tags is None or all(condition.holds(tags) for condition in self.tags))
            and (self.tags_any is None or any(condition.holds(tags) for condition in self.tags_any))
            and (self.not_tags is None or not all(condition.holds(tags) for condition in self.not_tags))
            and (
                self.not_tags_any is None or not any(condition.holds(tags) for condition in self.not_tags_any)
            )
        )


def parse_vault_query(project_id: str, query: Mapping[str, list[str]]) -> VaultQuery:
    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    object_type = first("object_type")
    if object_type is not None and object_type not in OBJECT_TYPES:
        raise InvalidParameter("object_type", f"must be one of {', '.join(OBJECT_TYPES)}")
    return VaultQuery(
        project_id=project_id,
        # The SDK sends a list of ids comma-separated.
        ids=frozenset(_comma_separated(query.get("id", []))),
        name=first("name"),
        object_type=object_type,
        policy_id=first("policy_id"),
        status=first("status"),
        resource_ids=frozenset(_comma_separated(query.get("resource_ids", []))),
        limit=_query_int(first("limit"), "limit", default=MAX_PAGE, low=1, high=MAX_PAGE),
        offset=_query_int(first("offset"), "offset", default=0, low=0, high=None),
    )


def parse_resource_instance_query(project_id: str, body: bytes) -> ResourceInstanceQuery:
    document = _object(parse_json(body), "body", RESOURCE_INSTANCE_KEYS)
    action = document.get("action")
    if action not in ("filter", "count"):
        raise InvalidParameter("action", "must be 'filter' or 'count'")
    if "sys_tags" in document:
        raise InvalidParameter("sys_tags", "is only for the op_service role")
    without_any_tag = _optional_bool(document, "without_any_tag", "", default=False)
    conditions = {name: _tag_conditions(document.get(name), name) for name in TAG_CONDITION_LISTS}
    object_type = document.get("object_type")
    if object_type is not None and object_type not in OBJECT_TYPES:
        raise InvalidParameter("object_type", f"must be one of {', '.join(OBJECT_TYPES)}")
    cloud_type = document.get("cloud_type")
    if cloud_type is not None and cloud_type not in ("public", "hybrid"):
        raise InvalidParameter("cloud_type", "must be 'public' or 'hybrid'")
    return ResourceInstanceQuery(
        project_id=project_id,
        action=action,
        without_any_tag=without_any_tag,
        tags=conditions["tags"],
        tags_any=conditions["tags_any"],
        not_tags=conditions["not_tags"],
        not_tags_any=conditions["not_tags_any"],
        resource_name=_resource_name_match(document.get("matches")),
        object_type=object_type,
        cloud_type=cloud_type,
        limit=_body_int(document.get("limit"), "limit", default=MAX_PAGE, low=1, high=MAX_PAGE),
        offset=_body_int(document.get("offset"), "offset", default=0, low=0, high=None),
    )


def parse_operation_log_query(query: Mapping[str, list[str]]) -> OperationLogQuery:
    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    operation_type = first("operation_type")
    if operation_type is not None and operation_type not in OPERATION_TYPES:
        raise InvalidParameter("operation_type", f"must be one of {', '.join(sorted(OPERATION_TYPES))}")
    status = first("status")
    if status is not None and status not in OPERATION_STATUSES:
        raise InvalidParameter("status", f"must be one of {', '.join(sorted(OPERATION_STATUSES))}")
    vault_id = first("vault_id")
    if vault_id is not None:
        _uuid(vault_id, "vault_id")
    return OperationLogQuery(
        vault_id=vault_id,
        resource_id=first("resource_id"),
        operation_type=operation_type,
        status=status,
        limit=_query_int(first("limit"), "limit", default=MAX_PAGE, low=1, high=MAX_PAGE),
        offset=_query_int(first("offset"), "offset", default=0, low=0, high=None),
        start_time=_query_time(first("start_time"), "start_time"),
        end_time=_query_time(first("end_time"), "end_time"),
    )


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise InvalidParameter("body", "is not valid JSON") from None


def parse_create_checkpoint(body: bytes) -> CreateCheckpoint:
    document = _object(parse_json(body), "body", frozenset({"checkpoint"}))
    checkpoint = _object(
        _required(document, "checkpoint", "checkpoint"), "checkpoint", {"vault_id", "parameters"}
    )
    vault_id = _uuid(_required(checkpoint, "vault_id", "checkpoint.vault_id"), "checkpoint.vault_id")
    raw_parameters = checkpoint.get("parameters")
    parameters = (
        {} if raw_parameters is None else _object(raw_parameters, "checkpoint.parameters", PARAMETER_KEYS)
    )
    prefix = "checkpoint.parameters."

    auto_trigger = _optional_bool(parameters, "auto_trigger", prefix, default=False)
    retention = parameters.get("retention_duration_days")
    if retention is not None:
        field = prefix + "retention_duration_days"
        if isinstance(retention, bool) or not isinstance(retention, int):
            raise InvalidParameter(field, "must be an integer")
        if retention != KEEP_FOREVER and not 1 <= retention <= MAX_RETENTION_DAYS:
            raise InvalidParameter(field, f"must be between 1 and {MAX_RETENTION_DAYS}, or {KEEP_FOREVER}")
        if auto_trigger:
            raise InvalidParameter(field, "is not allowed when auto_trigger is true")

    return CreateCheckpoint(
        vault_id=vault_id,
        name=_optional_name(parameters.get("name"), prefix + "name"),
        description=_description(parameters.get("description"), prefix + "description"),
        incremental=_optional_bool(parameters, "incremental", prefix, default=True),
        auto_trigger=auto_trigger,
        retention_duration_days=retention,
        resource_ids=_resource_ids(parameters, prefix),
    )


def parse_backup_query(query: Mapping[str, list[str]]) -> BackupQuery:
    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    return BackupQuery(
        vault_id=first("vault_id"),
        checkpoint_id=first("checkpoint_id"),
        name=first("name"),
        resource_id=first("resource_id"),
        statuses=frozenset(query.get("status", [])),
        start_time=_query_time(first("start_time"), "start_time"),
        end_time=_query_time(first("end_time"), "end_time"),
        limit=_query_int(first("limit"), "limit", default=MAX_PAGE, low=1, high=MAX_PAGE),
        offset=_query_int(first("offset"), "offset", default=0, low=0, high=None),
    )


def _required(container: Mapping[str, Any], key: str, field: str) -> Any:
    value = container.get(key)
    if value is None:
        raise InvalidParameter(field, "is required")
    return value


def _object(value: Any, field: str, allowed: frozenset[str] | set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameter(field, "must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        prefix = "" if field == "body" else f"{field}."
        raise InvalidParameter(prefix + unknown[0], "is not a known field")
    return value


def _uuid(value: Any, field: str) -> str:
    if not isinstance(value, str) or not UUID.fullmatch(value):
        raise InvalidParameter(field, "must be a UUID")
    return value


def _optional_bool(parameters: Mapping[str, Any], key: str, prefix: str, *, default: bool) -> bool:
    value = parameters.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidParameter(prefix + key, "must be a boolean")
    return value


def _optional_name(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not BACKUP_NAME.fullmatch(value):
        raise InvalidParameter(field, "must be 1-64 letters, digits, '_', '-' or Chinese characters")
    return value


def _description(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(field, "must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise InvalidParameter(field, f"must be at most {MAX_DESCRIPTION} characters")
    if "<" in value or ">" in value:
        raise InvalidParameter(field, "must not contain '<' or '>'")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidParameter(field, "must be an array")
    if len(value) > MAX_RESOURCES:
        raise InvalidParameter(field, f"must have at most {MAX_RESOURCES} items")
    return value


def _resource_ids(parameters: Mapping[str, Any], prefix: str) -> tuple[str, ...]:
    """The ids named by `resources` and `resource_details`, in order, each once."""
    ids: list[str] = []
    resources = parameters.get("resources")
    if resources is not None:
        field = prefix + "resources"
        ids.extend(_uuid(item, f"{field}[{index}]") for index, item in enumerate(_list(resources, field)))
    details = parameters.get("resource_details")
    if details is not None:
        field = prefix + "resource_details"
        ids.extend(
            _resource_detail(item, f"{field}[{index}]") for index, item in enumerate(_list(details, field))
        )
    return tuple(dict.fromkeys(ids))


def _resource_detail(value: Any, field: str) -> str:
    detail = _object(value, field, {"id", "type", "name", "extra_info"})
    resource_id = _uuid(_required(detail, "id", f"{field}.id"), f"{field}.id")
    resource_type = _required(detail, "type", f"{field}.type")
    if resource_type not in RESOURCE_TYPES:
        raise InvalidParameter(f"{field}.type", f"must be one of {', '.join(sorted(RESOURCE_TYPES))}")
    name = detail.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_RESOURCE_NAME):
        raise InvalidParameter(f"{field}.name", f"must be a string of at most {MAX_RESOURCE_NAME} characters")
    extra_info = detail.get("extra_info")
    if extra_info is not None:
        _extra_info(extra_info, f"{field}.extra_info")
    return resource_id


def _extra_info(value: Any, field: str) -> None:
    extra_info = _object(value, field, {"exclude_volumes", "include_volumes"})
    excluded = extra_info.get("exclude_volumes")
    if excluded is not None:
        for index, volume_id in enumerate(_list(excluded, f"{field}.exclude_volumes")):
            _uuid(volume_id, f"{field}.exclude_volumes[{index}]")
    included = extra_info.get("include_volumes")
    if included is not None:
        for index, item in enumerate(_list(included, f"{field}.include_volumes")):
            volume_field = f"{field}.include_volumes[{index}]"
            volume = _object(item, volume_field, {"id", "os_version"})
            _uuid(_required(volume, "id", f"{volume_field}.id"), f"{volume_field}.id")


def _comma_separated(values: list[str]) -> list[str]:
    return [item for value in values for item in value.split(",") if item]


def _tag_conditions(value: Any, field: str) -> tuple[TagCondition, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise InvalidParameter(field, "must be a non-empty array")
    if len(value) > MAX_TAG_KEYS:
        raise InvalidParameter(field, f"must have at most {MAX_TAG_KEYS} keys")
    conditions: list[TagCondition] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        condition = _object(item, where, {"key", "values"})
        key = _required(condition, "key", f"{where}.key")
        if not isinstance(key, str) or not key.strip() or len(key.strip()) > MAX_TAG_QUERY_KEY:
            raise InvalidParameter(f"{where}.key", f"must be a string of 1-{MAX_TAG_QUERY_KEY} characters")
        values = _required(condition, "values", f"{where}.values")
        if not isinstance(values, list) or len(values) > MAX_TAG_VALUES:
            raise InvalidParameter(f"{where}.values", f"must be an array of at most {MAX_TAG_VALUES} values")
        stripped: list[str] = []
        for position, entry in enumerate(values):
            if not isinstance(entry, str) or len(entry.strip()) > MAX_TAG_QUERY_VALUE:
                raise InvalidParameter(
                    f"{where}.values[{position}]",
                    f"must be a string of at most {MAX_TAG_QUERY_VALUE} characters",
                )
            if entry.strip() == "*":
                raise InvalidParameter(f"{where}.values[{position}]", "must not be '*' alone")
            stripped.append(entry.strip())
        if len(set(stripped)) != len(stripped):
            raise InvalidParameter(f"{where}.values", "must not repeat a value")
        conditions.append(TagCondition(key.strip(), tuple(stripped)))
    if len({condition.key for condition in conditions}) != len(conditions):
        raise InvalidParameter(field, "must not repeat a key")
    return tuple(conditions)


def _resource_name_match(value: Any) -> str | None:
    """The `matches` list: at most one `{"key": "resource_name", "value"}`."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 1:
        raise InvalidParameter("matches", "must be an array of at most 1 item")
    if not value:
        return None
    match = _object(value[0], "matches[0]", {"key", "value"})
    if match.get("key") != "resource_name":
        raise InvalidParameter("matches[0].key", "must be 'resource_name'")
    name = match.get("value")
    if not isinstance(name, str) or len(name) > MAX_TAG_QUERY_VALUE:
        raise InvalidParameter(
            "matches[0].value", f"must be a string of at most {MAX_TAG_QUERY_VALUE} characters"
        )
    return name


def _body_int(value: Any, field: str, *, default: int, low: int, high: int | None) -> int:
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(field, "must be a string of digits")
    return _query_int(value, field, default=default, low=low, high=high)


def _query_time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, QUERY_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidParameter(field, "must look like 2006-01-02T15:04:05Z") from None


def _query_int(value: str | None, field: str, *, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidParameter(field, f"must be an integer {bounds}")
    return int(value)
