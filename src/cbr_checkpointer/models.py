"""Pydantic models of the CBR CreateCheckpoint / ShowCheckpoint wire format.

Requests are strict: JSON types only, unknown fields are errors, every documented limit enforced.
Responses are lenient: unknown fields and enum values are kept, optional parts may be null.
Schemas are built on first use, not at import, to keep the cold start short.
"""

from __future__ import annotations

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

NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fa5]{1,64}")
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

# Older regions also report `creating` and `restoring`; anything else is still accepted.
CHECKPOINT_STATUSES = frozenset(
    {"available", "protecting", "deleting", "deleted", "error-deleting", "error", "creating", "restoring"}
)


def _check_uuid(value: str) -> str:
    if not UUID_PATTERN.fullmatch(value):
        raise PydanticCustomError("uuid_format", "must be a UUID (8-4-4-4-12 hex digits)")
    return value


def _check_name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
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
    id: str
    name: str
    type: str
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
    id: str
    name: str
    resources: Annotated[list[CheckpointResourceResp], BeforeValidator(_null_as_empty)] = []
    skipped_resources: Annotated[list[CheckpointCreateSkippedResource], BeforeValidator(_null_as_empty)] = []


class CheckpointExtraInfoResp(_Response):
    name: str | None = None
    description: str | None = None
    retention_duration: int | None = None


class CheckpointCreate(_Response):
    id: str
    project_id: str
    status: str
    created_at: str
    vault: CheckpointPlanCreate | None = None
    extra_info: CheckpointExtraInfoResp | None = None


class CreateCheckpointResponse(_Response):
    """The body of a CreateCheckpoint or ShowCheckpoint 200 response."""

    checkpoint: CheckpointCreate
