"""Value objects that flow from triggers through the service to the publisher.

Everything here is plain data: no I/O, no settings, no knowledge of envelopes or wire formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

TriggerKind = Literal["schedule", "rule", "eventbridge", "sqs", "direct"]
ErrorKind = Literal["validation", "api", "auth", "throttled", "timeout", "network"]
# created|failed|rejected|validated end a request; completed|failed|timed_out end the following of its
# checkpoint (a WatchCheck item).
OutcomeKind = Literal["created", "failed", "rejected", "validated", "completed", "timed_out"]


@dataclass(frozen=True, slots=True)
class Trigger:
    """Where a request came from: the kind of trigger, its id and its time (if it carries one)."""

    kind: TriggerKind
    id: str
    time: datetime | None = None

    def to_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"kind": self.kind, "id": self.id}
        if self.time is not None:
            detail["time"] = self.time.isoformat()
        return detail


@dataclass(frozen=True, slots=True)
class BackupRequest:
    """A validated request: the exact JSON body for `POST /v3/{project_id}/checkpoints`."""

    idempotency_key: str
    project_id: str
    body: dict[str, Any]
    trigger: Trigger
    dry_run: bool = False
    # The Huawei region whose CBR endpoint takes the request; None: the configured one.
    region: str | None = None

    @property
    def vault_id(self) -> str:
        return str(self.body["checkpoint"]["vault_id"])

    @property
    def name(self) -> str:
        return str(self.body["checkpoint"]["parameters"]["name"])


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule, with the dotted path of the field that broke it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload that broke the contract; nothing is sent to CBR for it."""

    idempotency_key: str
    trigger: Trigger
    errors: tuple[FieldError, ...]
    payload: Any
    project_id: str | None = None
    vault_id: str | None = None

    @property
    def message(self) -> str:
        return "; ".join(str(error) for error in self.errors)

    def error_info(self) -> ErrorInfo:
        return ErrorInfo(kind="validation", message=self.message, code="InvalidRequest")


WorkItem = BackupRequest | Rejected


@dataclass(frozen=True, slots=True)
class WatchCheck:
    """One scheduled look at a created checkpoint, on its way to `available` or `error`.

    It carries everything the final event needs (the request's key, body and trigger) so that no
    state has to be looked up; `attempt` counts the looks (1 for the first), `first_seen` is when the
    checkpoint was first reported created.
    """

    idempotency_key: str
    project_id: str
    vault_id: str
    checkpoint_id: str
    request: dict[str, Any]
    trigger: Trigger
    first_seen: datetime
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a request failed, in the shape of the event's `error` object."""

    kind: ErrorKind
    message: str
    code: str | None = None
    http_status: int | None = None
    retryable: bool = False
    request_id: str | None = None

    def to_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"kind": self.kind, "message": self.message, "retryable": self.retryable}
        if self.code is not None:
            detail["code"] = self.code
        if self.http_status is not None:
            detail["http_status"] = self.http_status
        if self.request_id is not None:
            detail["request_id"] = self.request_id
        return detail


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one work item: what the publisher turns into one event."""

    kind: OutcomeKind
    item: WorkItem | WatchCheck
    checkpoint: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    duplicate: bool = False
    # Completion only: one `{"resource_id", "backup_id", "status", "error"?, ...}` per resource.
    resources: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """Every vault of a project that matches `selector`, each to get one whole-vault checkpoint.

    `selector` holds the criteria, all of which a vault must match: `tags` (`{key: [values]}`, an
    empty list meaning any value), `policy_id`, `object_type`, `all` (true). `parameters` is what each
    vault's request gets: `incremental`, `auto_trigger` and, when given, `name` (rendered already)
    and `description`.
    """

    idempotency_key: str
    project_id: str
    selector: dict[str, Any]
    parameters: dict[str, Any]
    trigger: Trigger
    region: str | None = None
    dry_run: bool = False
