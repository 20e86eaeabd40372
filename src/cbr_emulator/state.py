"""What the emulator remembers: plain objects that the server mutates under one lock and tests read."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

BusyMode = Literal["skip", "reject"]
DropMode = Literal["none", "before", "after"]
# A field of a JSON answer: keys joined by '.', `[]` after a list's key for each of its items.
FIELD_PATH = re.compile(r"[a-z_]+(?:\[\])?(?:\.[a-z_]+(?:\[\])?)*")

REGION = "cn-north-4"
# The create answer of the real API carries the sizes as strings (as the SDK's models type them).
RESOURCE_SIZE_GB = 40
# ListBackups' provider_id per resource kind, as CBR's API reference lists them; other kinds reuse the
# server one.
PROVIDER_IDS = {
    "OS::Cinder::Volume": "d1603440-187d-4516-af25-121250c7cc97",
    "OS::Sfs::Turbo": "3f3c3220-245c-4805-b811-758870015881",
}
SERVER_PROVIDER_ID = "0daac4c5-6707-4851-97ba-169e36266b66"
# A vault's `billing.object_type` (SDK `Billing`), and what each protects: add_vault's default resource type.
OBJECT_TYPES = ("server", "disk", "turbo", "workspace", "vmware", "rds", "file")
OBJECT_RESOURCE_TYPES = {
    "server": "OS::Nova::Server",
    "disk": "OS::Cinder::Volume",
    "turbo": "OS::Sfs::Turbo",
    "workspace": "OS::Workspace::DesktopV2",
}
# `billing.spec_code` for the object types the SDK documents one for.
SPEC_CODES = {
    "server": "vault.backup.server.normal",
    "disk": "vault.backup.volume.normal",
    "turbo": "vault.backup.turbo.normal",
    "rds": "vault.backup.database.normal",
}
VAULT_SIZE_GB = 100


def api_timestamp(moment: datetime) -> str:
    """CBR writes its timestamps in UTC without a zone suffix: `2019-05-10T07:59:12.733403`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def task_timestamp(moment: datetime) -> str:
    """Operation logs (tasks) give their times in UTC with a `Z` suffix: `2019-05-10T07:59:12.733403Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Fault:
    """A scripted misbehaviour for the next `times` requests with `method` and a path ending in `path_suffix`.

    `status` answers that status, `body` and `headers` instead of the normal handling (nothing takes
    effect). `delay` sleeps before answering. `drop="before"` closes the connection without doing
    anything; `drop="after"` handles the request normally (a checkpoint is created) and then closes
    the connection without answering. `nulls` and `omit` handle the request normally and answer with
    these fields of the JSON answer null, or left out: what the API may do with any field it does not
    guarantee. A field is named by its path, keys joined by '.', `[]` for every item of a list:
    `checkpoint.vault.resources[].name`. Faults are consumed first-in first-out; `times` counts down
    as matching requests use it up.
    """

    method: str = "POST"
    path_suffix: str = "/checkpoints"
    status: int | None = None
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: DropMode = "none"
    times: int = 1
    nulls: tuple[str, ...] = ()
    omit: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.drop not in ("none", "before", "after"):
            raise ValueError(f"drop must be 'none', 'before' or 'after', not {self.drop!r}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if (self.nulls or self.omit) and (self.status is not None or self.drop != "none"):
            raise ValueError("nulls and omit reshape the normal answer: not with status or drop")
        for path in (*self.nulls, *self.omit):
            if not FIELD_PATH.fullmatch(path):
                raise ValueError(f"{path!r} is not a field path such as 'checkpoint.vault.resources[].name'")

    def reshape(self, document: Any) -> Any:
        """The JSON answer with the `nulls` fields set to null and the `omit` fields left out."""
        for path in self.nulls:
            _blank(document, path.split("."), remove=False)
        for path in self.omit:
            _blank(document, path.split("."), remove=True)
        return document

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method.upper() and path.endswith(self.path_suffix)


def _blank(document: Any, keys: list[str], *, remove: bool) -> None:
    """Null (or remove) the field at `keys` wherever it exists; a path through a missing part is a no-op."""
    key, rest = keys[0], keys[1:]
    each = key.endswith("[]")
    key = key.removesuffix("[]")
    if not isinstance(document, dict) or key not in document:
        return
    if not rest:
        if remove:
            del document[key]
        else:
            document[key] = None
        return
    children = document[key] if each and isinstance(document[key], list) else [document[key]]
    for child in children:
        _blank(child, rest, remove=remove)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received. `status` is what was answered, 0 when the connection was dropped."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any | None
    authenticated: bool
    status: int
    # Seconds the answer was held back on purpose (latency plus a fault's delay): what a test of the
    # emulator's pacing asserts instead of timing the call on a machine that may be loaded.
    held_seconds: float = 0.0


@dataclass(frozen=True)
class BoundResource:
    id: str
    type: str
    name: str


@dataclass
class Vault:
    """A vault as ListVault shows it. `policy_ids` are the policies applied to it (ListVault `policy_id`)."""

    id: str
    name: str
    project_id: str
    created_at: datetime
    resources: dict[str, BoundResource] = field(default_factory=dict)
    object_type: str = "server"
    policy_ids: frozenset[str] = frozenset()
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "available"

    def to_json(self) -> dict[str, Any]:
        """The SDK's `Vault`: what ListVault lists and a tag query's `resource_detail.vault` holds."""
        return {
            "id": self.id,
            "name": self.name,
            "description": "",
            "project_id": self.project_id,
            "provider_id": PROVIDER_IDS.get(
                OBJECT_RESOURCE_TYPES.get(self.object_type, ""), SERVER_PROVIDER_ID
            ),
            "billing": {
                "allocated": 0,
                "charging_mode": "post_paid",
                "cloud_type": "public",
                "consistent_level": "crash_consistent",
                "object_type": self.object_type,
                # A pay-per-use vault has no order.
                "order_id": None,
                "product_id": None,
                "protect_type": "backup",
                "size": VAULT_SIZE_GB,
                "spec_code": SPEC_CODES.get(self.object_type),
                "status": self.status,
                "storage_unit": "",
                "used": 0,
                "frozen_scene": None,
                "is_multi_az": False,
            },
            "resources": [
                {
                    "id": resource.id,
                    "name": resource.name,
                    "type": resource.type,
                    "protect_status": "available",
                    "size": RESOURCE_SIZE_GB,
                    "backup_size": 0,
                    "backup_count": 0,
                    "auto_protect": False,
                    "extra_info": {"exclude_volumes": []},
                }
                for resource in self.resources.values()
            ],
            "tags": [{"key": key, "value": value} for key, value in self.tags.items()],
            "enterprise_project_id": "0",
            "auto_bind": False,
            "bind_rules": {},
            "user_id": "0ae13f012b80d2d81f11c0129285d34b",
            "created_at": api_timestamp(self.created_at),
            "auto_expand": False,
            "smn_notify": True,
            "threshold": 80,
            "sys_lock_source_service": None,
            "locked": False,
            "availability_zone": None,
        }

    def to_tag_resource(self) -> dict[str, Any]:
        """The SDK's `TagResource`: one answer of `POST /vault/resource_instances/action`."""
        return {
            "resource_id": self.id,
            "resource_name": self.name,
            "resource_detail": {"vault": self.to_json()},
            "tags": [{"key": key, "value": value} for key, value in self.tags.items()],
        }


@dataclass(frozen=True)
class RateLimit:
    """At most `rate` requests a second on average, `burst` (default: rate rounded up) back to back.

    A request over the limit is answered 429 APIGW.0308 as the API gateway does, with a `Retry-After`
    header (whole seconds until a request would pass) only when `retry_after` is set: whether the real
    gateway sends one is not documented.
    """

    rate: float
    burst: int | None = None
    retry_after: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number of requests a second, not {self.rate!r}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst!r}")

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate))


@dataclass
class TokenBucket:
    """A full bucket of `limit.capacity` tokens, refilled at `limit.rate` a second as `clock` tells."""

    limit: RateLimit
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    refilled_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.limit.capacity)
        self.refilled_at = self.clock()

    def take(self) -> float:
        """Take a token: 0.0 if there was one, else (nothing taken) the seconds until there is one."""
        now = self.clock()
        elapsed = max(0.0, now - self.refilled_at)
        self.tokens = min(float(self.limit.capacity), self.tokens + elapsed * self.limit.rate)
        self.refilled_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.rate


@dataclass(frozen=True)
class SkippedResource:
    resource: BoundResource
    code: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.resource.id,
            "type": self.resource.type,
            "name": self.resource.name,
            "code": self.code,
            "reason": self.reason,
        }


@dataclass
class Backup:
    id: str
    project_id: str
    checkpoint_id: str
    vault_id: str
    name: str
    description: str
    resource: BoundResource
    incremental: bool
    auto_trigger: bool
    created_at: datetime
    status: str = "protecting"

    def to_json(self) -> dict[str, Any]:
        created = api_timestamp(self.created_at)
        return {
            "id": self.id,
            "project_id": self.project_id,
            "checkpoint_id": self.checkpoint_id,
            "vault_id": self.vault_id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "resource_id": self.resource.id,
            "resource_type": self.resource.type,
            "resource_name": self.resource.name,
            "resource_size": RESOURCE_SIZE_GB,
            "resource_az": f"{REGION}a",
            "image_type": "backup",
            "incremental": self.incremental,
            "provider_id": PROVIDER_IDS.get(self.resource.type, SERVER_PROVIDER_ID),
            "created_at": created,
            "updated_at": created,
            "protected_at": created,
            "expired_at": None,
            "children": [],
            "extend_info": {"auto_trigger": self.auto_trigger, "bootable": False, "encrypted": False},
        }


@dataclass
class Checkpoint:
    id: str
    project_id: str
    vault: Vault
    resources: list[BoundResource]
    skipped: list[SkippedResource]
    name: str
    description: str
    retention_duration: int
    created_at: datetime
    status: str = "protecting"
    protect_status: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "status": self.status,
            "created_at": api_timestamp(self.created_at),
            "vault": {
                "id": self.vault.id,
                "name": self.vault.name,
                "resources": [
                    {
                        "id": resource.id,
                        "name": resource.name,
                        "type": resource.type,
                        "protect_status": self.protect_status.get(resource.id, "available"),
                        "resource_size": str(RESOURCE_SIZE_GB),
                        "backup_size": "0",
                        "backup_count": "0",
                        "extra_info": "{}",
                    }
                    for resource in self.resources
                ],
                "skipped_resources": [skipped.to_json() for skipped in self.skipped],
            },
            "extra_info": {
                "name": self.name,
                "description": self.description,
                "retention_duration": self.retention_duration,
            },
        }


@dataclass
class OperationLog:
    """One backup task (`GET /v3/{project_id}/operation-logs`): one per resource of a checkpoint.

    `running` while the checkpoint is protecting, then `success` or `failed` with `error_code` and
    `error_message` (the SDK's `OperationLog` model).
    """

    id: str
    project_id: str
    checkpoint_id: str
    vault_id: str
    vault_name: str
    backup_id: str
    backup_name: str
    incremental: bool
    resource: BoundResource
    started_at: datetime
    status: str = "running"
    ended_at: datetime | None = None
    error_code: str = ""
    error_message: str = ""

    def to_json(self) -> dict[str, Any]:
        ended = None if self.ended_at is None else task_timestamp(self.ended_at)
        return {
            "id": self.id,
            "project_id": self.project_id,
            "checkpoint_id": self.checkpoint_id,
            "operation_type": "backup",
            "status": self.status,
            "error_info": {"code": self.error_code, "message": self.error_message},
            "extra_info": {
                "backup": {
                    "backup_id": self.backup_id,
                    "backup_name": self.backup_name,
                    "incremental": str(self.incremental).lower(),
                },
                "common": {
                    "progress": 0 if self.status == "running" else 100,
                    "request_id": f"req-{self.id[:8]}",
                    "task_id": self.id,
                },
                "resource": {
                    "id": self.resource.id,
                    "type": self.resource.type,
                    "name": self.resource.name,
                    "extra_info": None,
                },
            },
            "provider_id": PROVIDER_IDS.get(self.resource.type, SERVER_PROVIDER_ID),
            "policy_id": "",
            "vault_id": self.vault_id,
            "vault_name": self.vault_name,
            "started_at": task_timestamp(self.started_at),
            "ended_at": ended,
            "created_at": task_timestamp(self.started_at),
            "updated_at": ended or task_timestamp(self.started_at),
        }


@dataclass
class EmulatorState:
    """Everything the server knows. Vaults survive `clear_activity`; the rest is what happened since."""

    vaults: dict[str, Vault] = field(default_factory=dict)
    tokens: dict[str, datetime] = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    backups: list[Backup] = field(default_factory=list)
    operation_logs: list[OperationLog] = field(default_factory=list)
    # resource id -> (error code, message): its backups end in `error` when their checkpoint finishes.
    failing_resources: dict[str, tuple[str, str]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    busy: dict[str, BusyMode] = field(default_factory=dict)
    # The limit on creates (`POST /checkpoints`), if any, and how many creates it answered 429.
    create_bucket: TokenBucket | None = None
    throttled_creates: int = 0
    token_requests: int = 0
    connections_opened: int = 0
    # Connections that carried at least one CBR (not IAM) request.
    cbr_connections: int = 0
    # Requests being answered right now, and the most there ever were at once.
    in_flight: int = 0
    peak_in_flight: int = 0

    def clear_activity(self) -> None:
        self.tokens.clear()
        self.checkpoints.clear()
        self.backups.clear()
        self.operation_logs.clear()
        self.failing_resources.clear()
        self.created.clear()
        self.requests.clear()
        self.busy.clear()
        self.throttled_creates = 0
        self.token_requests = 0
        self.connections_opened = 0
        self.cbr_connections = 0
        self.peak_in_flight = self.in_flight
