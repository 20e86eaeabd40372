"""The ports: everything the rules call, as Protocols the adapters implement structurally.

The services and the application depend on these and on the domain only; runtime.py plugs the
adapters in (RegionalCbr, DynamoDBLedger or MemoryLedger, EventPublisher, SqsWatchQueue,
SqsRequestQueue). Each port
raises the domain's errors, never an adapter's own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cbr_checkpointer.domain import (
    BackupRequest,
    ClaimResult,
    ErrorInfo,
    Expansion,
    Outcome,
    QueueUnavailable,
    Selection,
    StoredResult,
    WatchCheck,
    WorkItem,
)
from cbr_checkpointer.models import CheckpointCreate


class Cbr(Protocol):
    """The CBR calls the rules make; each raises CbrCallFailed when CBR did not do what was asked.

    Every call goes to the CBR of `region` (None: the function's configured one).
    """

    def create_checkpoint(
        self, project_id: str, body: Mapping[str, Any], *, region: str | None, time_left: float | None = None
    ) -> CheckpointCreate:
        """Create a checkpoint from `body` as is, waiting at most `time_left` seconds for the answer."""
        ...

    def show_checkpoint(
        self, project_id: str, checkpoint_id: str, *, region: str | None
    ) -> CheckpointCreate: ...

    def list_backups(self, project_id: str, *, region: str | None, **filters: str) -> list[dict[str, Any]]:
        """Backups matching `filters` (vault_id, name, checkpoint_id, start_time, ...), newest first."""
        ...

    def list_operation_logs(
        self, project_id: str, *, region: str | None, max_pages: int = 5, **filters: str
    ) -> list[dict[str, Any]]:
        """Operation logs (tasks) matching `filters` (vault_id, operation_type, ...), newest first."""
        ...


class ListedVault(Protocol):
    @property
    def id(self) -> str: ...


class Vaults(Protocol):
    """The vault listings a selection is expanded from; each raises CbrCallFailed when CBR did not answer
    with the whole list (a partial list is never returned: a vault left out would get no backup)."""

    def list_vaults(
        self,
        project_id: str,
        *,
        region: str | None,
        policy_id: str | None = None,
        object_type: str | None = None,
    ) -> Sequence[ListedVault]:
        """Every vault of the project (in `region`, None: the configured one) matching all the filters."""
        ...

    def vault_ids_with_tags(
        self, project_id: str, tags: Mapping[str, Sequence[str]], *, region: str | None
    ) -> list[str]:
        """The ids of the vaults carrying every key of `tags` with one of its values (any, for [])."""
        ...


class Ledger(Protocol):
    """The idempotency ledger; every call raises LedgerUnavailable when the store cannot be reached."""

    def claim(
        self, key: str, *, now: float, lease_until: float, request: dict[str, Any] | None = None
    ) -> ClaimResult:
        """Take the key until `lease_until`; `request` is the body this claimer means to send."""
        ...

    def complete(self, key: str, result: StoredResult, *, now: float) -> None: ...

    def own(self, checkpoint_id: str, key: str, *, now: float) -> bool:
        """Record that the checkpoint belongs to request `key`; False when another key already owns it.

        One conditional write: two keys that gave one name to one vault cannot both adopt a checkpoint.
        """
        ...

    def release(self, key: str, *, now: float, reconcile_since: float | None) -> None:
        """Give the key back after a transient failure.

        `reconcile_since` is set when CBR may already have acted on the key: the next claimer then
        looks for a checkpoint created since that time before creating one.
        """
        ...


class EventSink(Protocol):
    def publish(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """One event per outcome; returns the outcomes that could not be published, in the order given."""
        ...

    def publish_expansions(self, expansions: Sequence[Expansion]) -> list[Expansion]:
        """One event per expansion; returns the expansions that could not be published."""
        ...


# The longest a watch message can be held back (SQS DelaySeconds allows at most 900).
MAX_DELAY_SECONDS = 900


class WatchQueue(Protocol):
    def send(self, check: WatchCheck, delay_seconds: int) -> None:
        """Schedule one check `delay_seconds` from now; raises QueueUnavailable when it was not taken."""
        ...

    def send_all(self, checks: Sequence[tuple[WatchCheck, int]]) -> list[QueueUnavailable | None]:
        """Schedule many checks; per check, None when it was taken or the error that kept it back."""
        ...


class RequestQueue(Protocol):
    def send_vaults(self, selection: Selection, vault_ids: Sequence[str]) -> list[QueueUnavailable | None]:
        """One request message per vault of `selection`; per vault, None when it was taken or the error
        that kept it back."""
        ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class Observer(Protocol):
    """Hooks into the life of an invocation, for whoever watches it (the command line, tests)."""

    def request_started(self, item: WorkItem) -> None: ...

    def request_retried(
        self, item: BackupRequest, attempt: int, delay_seconds: float, error: ErrorInfo
    ) -> None: ...

    def request_finished(self, item: WorkItem, result: Outcome | BaseException) -> None:
        """`result` is the outcome, or what was raised instead (TransientFailure, or a fault)."""
        ...

    def events_published(self, published: Sequence[Outcome], unpublished: Sequence[Outcome]) -> None: ...

    def invocation_failed(self, error: BaseException) -> None:
        """What the handler raised to Lambda."""
        ...


class SystemClock:
    """The clock of the machine."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class NoObserver:
    """Watches nothing: the observer when nobody asked for one."""

    def request_started(self, item: WorkItem) -> None:
        pass

    def request_retried(
        self, item: BackupRequest, attempt: int, delay_seconds: float, error: ErrorInfo
    ) -> None:
        pass

    def request_finished(self, item: WorkItem, result: Outcome | BaseException) -> None:
        pass

    def events_published(self, published: Sequence[Outcome], unpublished: Sequence[Outcome]) -> None:
        pass

    def invocation_failed(self, error: BaseException) -> None:
        pass
