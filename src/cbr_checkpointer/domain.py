"""The domain: value objects that flow from triggers through the services to the publisher, the
records of the idempotency ledger, and the errors the ports raise.

Everything here is plain data: no I/O, no settings, no knowledge of envelopes or wire formats. The
adapters translate their own failures into the errors below; nothing here knows an adapter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from cbr_checkpointer.values import value

TriggerKind = Literal["schedule", "rule", "eventbridge", "sqs", "direct"]
ErrorKind = Literal["validation", "api", "auth", "throttled", "timeout", "network"]
# created|failed|rejected|validated end a request; completed|failed|timed_out end the following of its
# checkpoint (a WatchCheck item).
OutcomeKind = Literal["created", "failed", "rejected", "validated", "completed", "timed_out"]


@value
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


@value
class BackupRequest:
    """A validated request: the exact JSON body for `POST /v3/{project_id}/checkpoints`."""

    idempotency_key: str
    project_id: str
    body: dict[str, Any]
    trigger: Trigger
    dry_run: bool = False
    # The Huawei region whose CBR endpoint takes the request; None: the configured one.
    region: str | None = None
    # The name as the request wrote it, when it held `{time:...}` placeholders: each delivery renders
    # it from its own time, so two deliveries of one request may carry two names.
    name_template: str | None = None

    @property
    def vault_id(self) -> str:
        return str(self.body["checkpoint"]["vault_id"])

    @property
    def name(self) -> str:
        return str(self.body["checkpoint"]["parameters"]["name"])


@value
class FieldError:
    """One broken rule, with the dotted path of the field that broke it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@value
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


@value
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
    # The region of the request's CBR, where the checkpoint is looked at; None: the configured one.
    region: str | None = None


@value
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


@value
class ResourceError:
    """Why one resource's backup did not complete (`code` None when CBR gave none)."""

    code: str | None
    message: str

    def to_detail(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


# A resource's entry in an event shows these even when CBR left them null.
_ALWAYS_SHOWN = frozenset({"resource_id", "backup_id", "status"})


@value
class ResourceResult:
    """How one resource's backup in a followed checkpoint ended, or stands."""

    resource_id: str | None
    status: str | None
    backup_id: str | None = None
    resource_name: str | None = None
    resource_type: str | None = None
    error: ResourceError | None = None
    # Why a finished backup is reported in a status that is not `available` (e.g. deleted since).
    note: str | None = None

    def to_detail(self) -> dict[str, Any]:
        """The event's `resources` entry: `resource_id`, `backup_id` and `status` always (null when CBR
        did not say), other fields when known."""
        detail: dict[str, Any] = {
            "resource_id": self.resource_id,
            "resource_name": self.resource_name,
            "resource_type": self.resource_type,
            "backup_id": self.backup_id,
            "status": self.status,
            "error": None if self.error is None else self.error.to_detail(),
            "note": self.note,
        }
        return {key: value for key, value in detail.items() if value is not None or key in _ALWAYS_SHOWN}

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> ResourceResult:
        error = detail.get("error")
        return cls(
            resource_id=detail.get("resource_id"),
            status=detail.get("status"),
            backup_id=detail.get("backup_id"),
            resource_name=detail.get("resource_name"),
            resource_type=detail.get("resource_type"),
            error=None if error is None else ResourceError(error.get("code"), str(error.get("message"))),
            note=detail.get("note"),
        )


@value
class Outcome:
    """The end of one work item: what the publisher turns into one event."""

    kind: OutcomeKind
    item: WorkItem | WatchCheck
    checkpoint: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    duplicate: bool = False
    # Completion only: one per resource of the checkpoint.
    resources: tuple[ResourceResult, ...] | None = None


# -- the idempotency ledger's records ------------------------------------------------------------------


@value
class StoredOutcome:
    """The end of a request (or of following its checkpoint), kept so that a redelivery serves it again."""

    kind: OutcomeKind
    checkpoint: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    # Completion only: one per resource of the checkpoint.
    resources: tuple[ResourceResult, ...] | None = None

    @classmethod
    def of(cls, outcome: Outcome) -> StoredOutcome:
        return cls(outcome.kind, outcome.checkpoint, outcome.error, outcome.resources)

    def replayed(self, item: WorkItem | WatchCheck) -> Outcome:
        """The stored end as the outcome of `item` delivered again."""
        return Outcome(
            self.kind,
            item,
            checkpoint=self.checkpoint,
            error=self.error,
            duplicate=True,
            resources=self.resources,
        )


@value
class StepDone:
    """A step of following a checkpoint that was done: the first check `scheduled`, the `next_attempt`
    check scheduled, or the check that ended it (`final`, by the SQS message `message_id`)."""

    scheduled: bool = False
    next_attempt: int | None = None
    final: bool = False
    message_id: str | None = None


StoredResult = StoredOutcome | StepDone


@value
class Claimed:
    """The caller holds the key. `reconcile_since` is set when an earlier holder may have created it.

    With `reconcile_since`, `request` is the request pinned by the first claim of the key (None when the
    ledger has none): the one to reconcile against and to send.
    """

    reconcile_since: float | None = None
    request: dict[str, Any] | None = None


@value
class Completed:
    """The key already has a result; serve it again instead of calling CBR. `request` is the request
    pinned by the key's first claim (None when the ledger has none)."""

    result: StoredResult
    request: dict[str, Any] | None = None


@value
class Busy:
    """Another live invocation holds the key until `lease_until`."""

    lease_until: float


ClaimResult = Claimed | Completed | Busy


# -- errors ---------------------------------------------------------------------------------------------


class TransientFailure(Exception):
    """The request (or completion check) could not be finished now but may succeed later; its trigger
    must deliver it again."""

    def __init__(self, item: WorkItem | WatchCheck | Selection, info: ErrorInfo) -> None:
        super().__init__(f"{info.kind} {info.code or ''}: {info.message}".strip())
        self.item = item
        self.info = info


class CbrCallFailed(Exception):
    """A CBR call that did not succeed, classified: `info` is the event's `error` object, `ambiguous`
    says the call may have taken effect anyway, `retry_after` is the wait the server asked for."""

    def __init__(self, info: ErrorInfo, *, retry_after: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(info.message)
        self.info = info
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class DependencyUnavailable(Exception):
    """The ledger or a queue did not take or answer a call (`http_status` None: no answer at all)."""

    def __init__(
        self, code: str, message: str, *, http_status: int | None = None, retryable: bool = True
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable

    def info(self) -> ErrorInfo:
        """The failure as an event's `error`: worth delivering again."""
        return ErrorInfo(
            "api",
            f"{self.code}: {self.message}",
            code=self.code,
            http_status=self.http_status,
            retryable=True,
        )


class LedgerUnavailable(DependencyUnavailable):
    """The idempotency ledger could not be read or written."""


class QueueUnavailable(DependencyUnavailable):
    """The watch queue or the request queue did not take a message."""


@value
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


@value
class Expansion:
    """What came of listing a selection's vaults: the ids listed (`vault_ids`, sorted), and how many of
    their requests went to the request queue rather than running here (`queued`). With `error` the
    listing failed for good and no vault was backed up."""

    selection: Selection
    vault_ids: tuple[str, ...] = ()
    queued: int = 0
    error: ErrorInfo | None = None


# What the trigger parsers hand the application: a request, a selection of vaults, or a refusal.
RequestItem = BackupRequest | Selection | Rejected
