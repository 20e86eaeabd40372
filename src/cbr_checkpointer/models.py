"""Pydantic models of the CBR wire format: CreateCheckpoint / ShowCheckpoint, ListVault, vaults by tag.

Requests are strict: JSON types only, unknown fields are errors, every documented limit enforced.
Responses are lenient: the API guarantees only a checkpoint's `id`, `project_id`, `status` and
`created_at`; every other field may be null or missing, and unknown fields and statuses are kept.
Schemas are built on first use, not at import, to keep the cold start short. For the same reason the
annotations here are real objects, not strings (no `from __future__ import annotations`): pydantic would
otherwise evaluate each string again when the class is made, ~0.4M instructions a model at import.
"""

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

# A checkpoint's name: what the regex [A-Za-z0-9_\-\u4e00-\u9fa5]{1,64} accepts. Checked without `re`:
# compiling that CJK range costs ~1.4 ms at every cold start.
_NAME_ASCII = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_NAME_LENGTH = 64
NAME_RULE = "must be 1-64 characters of letters, digits, '_', '-' or Chinese characters"
# The project id goes into every CBR URL path.
PROJECT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
UUID_PATTERN = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 36500
KEEP_FOREVER = -1

ResourceType = Literal[
    "OS::Nova::Server",
    "OS::Cinder::Volume",
    "OS::Ironic::BareMetalServer",
    "OS::Native::Server",
    "OS::Sfs::Turbo",
    "OS::Workspace::DesktopV2",
]


def is_valid_name(value: str) -> bool:
    """Whether CBR takes `value` as a checkpoint name: 1-64 letters, digits, '_', '-' or CJK ideographs."""
    return 1 <= len(value) <= MAX_NAME_LENGTH and all(
        char in _NAME_ASCII or "\u4e00" <= char <= "\u9fa5" for char in value
    )


def _check_uuid(value: str) -> str:
    if not UUID_PATTERN.fullmatch(value):
        raise PydanticCustomError("uuid_format", "must be a UUID (8-4-4-4-12 hex digits)")
    return value


def _check_name(value: str) -> str:
    if not is_valid_name(value):
        raise PydanticCustomError("name_format", NAME_RULE)
    return value


def _check_description(value: str) -> str:
    if "<" in value or ">" in value:
        raise PydanticCustomError("description_format", "must not contain '<' or '>'")
    return value


def _check_retention_days(value: int) -> int:
    if value != KEEP_FOREVER and not MIN_RETENTION_DAYS <= value <= MAX_RETENTION_DAYS:
        raise PydanticCustomError(
            "retention_range",
            f"must be {MIN_RETENTION_DAYS}-{MAX_RETENTION_DAYS} days, or {KEEP_FOREVER} to keep forever",
        )
    return value


def _null_as_empty(value: Any) -> Any:
    return [] if value is None else value


Uuid = Annotated[str, AfterValidator(_check_uuid)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


# --- request: POST /v3/{project_id}/checkpoints ---------------------------------------------------


class ResourceExtraInfoIncludeVolumes(_Request):
    id: Uuid
    os_version: str | None = None


class ResourceExtraInfo(_Request):
    exclude_volumes: list[str] | None = None
    include_volumes: list[ResourceExtraInfoIncludeVolumes] | None = None


class Resource(_Request):
    id: Uuid
    type: ResourceType
    name: Annotated[str, Field(max_length=255)] | None = None
    extra_info: ResourceExtraInfo | None = None


class CheckpointParam(_Request):
    auto_trigger: bool | None = None
    description: Annotated[str, Field(max_length=255), AfterValidator(_check_description)] | None = None
    incremental: bool | None = None
    name: Annotated[str, AfterValidator(_check_name)] | None = None
    # A vault binds at most 256 resources.
    resources: Annotated[list[Uuid], Field(max_length=256)] | None = None
    resource_details: Annotated[list[Resource], Field(max_length=256)] | None = None
    policy_id: str | None = None
    retention_duration_days: Annotated[int, AfterValidator(_check_retention_days)] | None = None

    @field_validator("retention_duration_days")
    @classmethod
    def _not_with_auto_trigger(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("auto_trigger") is True:
            raise PydanticCustomError(
                "retention_with_auto_trigger", "is only allowed for manual backups (auto_trigger false)"
            )
        return value


class VaultBackup(_Request):
    vault_id: Uuid
    parameters: CheckpointParam | None = None


class VaultBackupReq(_Request):
    checkpoint: VaultBackup


# --- response: CreateCheckpoint and ShowCheckpoint -------------------------------------------------


class CheckpointResourceResp(_Response):
    id: str | None = None
    name: str | None = None
    type: str | None = None
    protect_status: str | None = None
    # Strings in the API's responses, numbers in its documentation example.
    resource_size: str | int | None = None
    backup_size: str | int | None = None
    backup_count: str | int | None = None
    extra_info: str | dict[str, Any] | None = None


class CheckpointCreateSkippedResource(_Response):
    id: str | None = None
    type: str | None = None
    name: str | None = None
    code: str | None = None
    reason: str | None = None


class CheckpointPlanCreate(_Response):
    id: str | None = None
    name: str | None = None
    resources: Annotated[list[CheckpointResourceResp], BeforeValidator(_null_as_empty)] = []
    skipped_resources: Annotated[list[CheckpointCreateSkippedResource], BeforeValidator(_null_as_empty)] = []


class CheckpointExtraInfoResp(_Response):
    name: str | None = None
    description: str | None = None
    retention_duration: int | None = None


class CheckpointCreate(_Response):
    # The only fields the API guarantees.
    id: str
    project_id: str
    status: str
    created_at: str
    vault: CheckpointPlanCreate | None = None
    extra_info: CheckpointExtraInfoResp | None = None


class CreateCheckpointResponse(_Response):
    """The body of a CreateCheckpoint or ShowCheckpoint 200 response."""

    checkpoint: CheckpointCreate


# --- request: POST /v3/{project_id}/vault/resource_instances/action (vaults by tag) ------------------

MAX_TAG_KEYS = 10
MAX_TAG_VALUES = 10


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("distinct_values", "must not repeat a value")
    return values


class TagsReq(_Request):
    """One tag condition: the key is there and its value is one of `values` (any value if empty)."""

    key: Annotated[str, Field(min_length=1, max_length=127)]
    values: Annotated[
        list[Annotated[str, Field(max_length=255)]],
        Field(max_length=MAX_TAG_VALUES),
        AfterValidator(_distinct),
    ]


class VaultResourceInstancesReq(_Request):
    """A page of the vaults carrying every tag condition in `tags` (`limit`/`offset` are strings)."""

    action: Literal["filter", "count"]
    tags: Annotated[list[TagsReq], Field(min_length=1, max_length=MAX_TAG_KEYS)] | None = None
    limit: str | None = None
    offset: str | None = None


# --- response: ListVault and the tag query ---------------------------------------------------------
# Read to pick vaults: only a vault's id is required, every other field may be null or missing. The list
# itself is required (null reads as empty), so an answer without it is never taken for the last page.


class Tag(_Response):
    key: str | None = None
    value: str | None = None


class Billing(_Response):
    object_type: str | None = None
    status: str | None = None


class ResourceResp(_Response):
    id: str | None = None
    name: str | None = None
    type: str | None = None


class Vault(_Response):
    id: str
    name: str | None = None
    project_id: str | None = None
    billing: Billing | None = None
    resources: Annotated[list[ResourceResp], BeforeValidator(_null_as_empty)] = []
    tags: Annotated[list[Tag], BeforeValidator(_null_as_empty)] = []


class ListVaultResponse(_Response):
    vaults: Annotated[list[Vault], BeforeValidator(_null_as_empty)]


class TagResource(_Response):
    resource_id: str
    resource_name: str | None = None
    tags: Annotated[list[Tag], BeforeValidator(_null_as_empty)] = []


class ShowVaultResourceInstancesResponse(_Response):
    resources: Annotated[list[TagResource], BeforeValidator(_null_as_empty)]
