"""Following a created checkpoint to its end, by messages instead of by waiting.

A 200 from the create only means the backup started (`protecting`); backups can take hours and a
Lambda lives 15 minutes at most. So each Created schedules a check on the watch queue, an SQS
message with `DelaySeconds`; each check looks once (ShowCheckpoint, then ListBackups and, for the
reasons of a failure, the operation logs) and either schedules the next check, later, or ends in one
final outcome: `completed`, `failed` (`"stage": "completion"`) or `timed_out`.

The ledger keeps the chain single and the end unique, although SQS delivers at least once:

- `<key>#watch`: the first check of `<key>` was scheduled. A redelivered Created (served from the
  ledger as a duplicate) schedules it only when this is missing, i.e. when the first delivery could
  not (the record went back to its queue for that reason).
- `<key>#watch#<n>`: check number n was done. A second message for the same check (a duplicate
  delivery, or a first check scheduled twice) finds it claimed or completed and is dropped, so only
  one message goes on scheduling follow-ups.
- `<key>#completion`: the final result, claimed and stored before it is published. Whoever comes
  later republishes the stored one; two different final results for one checkpoint cannot happen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from cbr_checkpointer.domain import (
    BackupRequest,
    Busy,
    CbrCallFailed,
    Completed,
    DependencyUnavailable,
    ErrorInfo,
    LedgerUnavailable,
    Outcome,
    QueueUnavailable,
    ResourceError,
    ResourceResult,
    StepDone,
    StoredOutcome,
    StoredResult,
    TransientFailure,
    WatchCheck,
)
from cbr_checkpointer.observability import logger
from cbr_checkpointer.ports import MAX_DELAY_SECONDS, Cbr, Clock, Ledger, SystemClock, WatchQueue
from cbr_checkpointer.statuses import Phase, backup_phase, checkpoint_phase

T = TypeVar("T")

FIRST_CHECK_SECONDS = 30
# ShowCheckpoint may not know a checkpoint for a little while after the create answered.
NOT_FOUND_GRACE_SECONDS = 120
NOT_FOUND_CODES = frozenset({"BackupService.6217"})
_NOT_ENDED = (Phase.RUNNING, Phase.UNKNOWN)
MAX_ERROR_MESSAGE = 1024
# A checkpoint's backup tasks are read from this long before it was first seen created (clock skew).
TASKS_SKEW_SECONDS = 300


def check_delay(attempt: int) -> int:
    """Seconds before check number `attempt` (1 is the first): 30, 60, 120, ... then 900 each."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    return min(MAX_DELAY_SECONDS, FIRST_CHECK_SECONDS * int(2 ** min(attempt - 1, 16)))


def scheduled_key(idempotency_key: str) -> str:
    return f"{idempotency_key}#watch"


def check_key(idempotency_key: str, attempt: int) -> str:
    return f"{idempotency_key}#watch#{attempt}"


def completion_key(idempotency_key: str) -> str:
    return f"{idempotency_key}#completion"


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What one look at a checkpoint found: still running, or a final result."""

    kind: Literal["pending", "completed", "failed", "timed_out"]
    reason: str = ""
    checkpoint: dict[str, Any] | None = None
    resources: tuple[ResourceResult, ...] = ()
    error: ErrorInfo | None = None


class _LookFailed(Exception):
    """CBR could not answer now (throttled, busy, 5xx, network): look again later."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


class CompletionService:
    """Schedules the first check of each created checkpoint and runs each check it is handed."""

    def __init__(
        self,
        cbr: Cbr,
        ledger: Ledger,
        queue: WatchQueue,
        *,
        max_age_seconds: float,
        clock: Clock | None = None,
    ) -> None:
        self._cbr = cbr
        self._ledger = ledger
        self._queue = queue
        self._max_age = max_age_seconds
        self._clock = clock or SystemClock()

    # -- after a Created ------------------------------------------------------------------------------

    def follow(self, outcomes: Iterable[Outcome], *, deadline: float) -> list[Outcome]:
        """Schedule the first check of every checkpoint created among `outcomes` (fresh, or a duplicate
        whose first check was never scheduled); return the outcomes whose check could not be scheduled:
        their trigger must deliver them again."""
        now = self._clock.now()
        wanted: list[tuple[Outcome, WatchCheck]] = []
        failed: list[Outcome] = []
        for outcome in outcomes:
            check = _first_check(outcome, now)
            if check is None:
                continue
            if outcome.duplicate:
                try:
                    claim = self._ledger.claim(
                        scheduled_key(check.idempotency_key), now=now, lease_until=deadline
                    )
                except LedgerUnavailable as error:
                    logger.warning("could not read the watch marker", extra=_unavailable_extra(error, check))
                    failed.append(outcome)
                    continue
                if isinstance(claim, Completed | Busy):
                    continue  # scheduled already, or being scheduled by another delivery right now
            wanted.append((outcome, check))
        if not wanted:
            return failed
        results = self._queue.send_all([(check, check_delay(check.attempt)) for _, check in wanted])
        for (outcome, check), problem in zip(wanted, results, strict=True):
            marker = scheduled_key(check.idempotency_key)
            if problem is not None:
                logger.warning(
                    "could not schedule the first completion check", extra=_unavailable_extra(problem, check)
                )
                if outcome.duplicate:
                    self._release(marker, now)
                failed.append(outcome)
                continue
            logger.info(
                "completion check scheduled",
                extra={"checkpoint_id": check.checkpoint_id, "attempt": 1, "delay_seconds": check_delay(1)},
            )
            # Best effort: without the marker a redelivery schedules a second first check, which the
            # per-check claim then drops.
            self._mark(marker, StepDone(scheduled=True))
        return failed

    # -- one check ------------------------------------------------------------------------------------

    def check(self, check: WatchCheck, *, deadline: float, message_id: str | None = None) -> Outcome | None:
        """Look at the checkpoint once. Returns its final outcome (to publish), or None when the next
        check was scheduled or this message was a duplicate. Raises TransientFailure when the message
        must be delivered again.

        `message_id` (the SQS message's, stable across its redeliveries) tells a redelivery of the
        message that ended the checkpoint, which publishes the end again (its publish may have failed),
        from another message for the same check, which is dropped."""
        now = self._clock.now()
        this_check = check_key(check.idempotency_key, check.attempt)
        claim = self._ledger_call(
            check, lambda: self._ledger.claim(this_check, now=now, lease_until=deadline)
        )
        if isinstance(claim, Busy):
            logger.info("dropping a duplicate completion check", extra=_check_extra(check, "in progress"))
            return None
        if isinstance(claim, Completed):
            done = claim.result
            if isinstance(done, StepDone) and done.final and done.message_id in (None, message_id):
                return self._republish(check, deadline)
            logger.info("dropping a duplicate completion check", extra=_check_extra(check, "done"))
            return None

        age = now - check.first_seen.timestamp()
        try:
            verdict = self._look(check, age)
        except _LookFailed as failure:
            if age < self._max_age:
                self._release(this_check, now)
                raise TransientFailure(check, failure.info) from None
            verdict = _Verdict("pending", reason=f"CBR did not answer: {failure.info.message}")
        if verdict.kind == "pending":
            remaining = self._max_age - age
            if remaining > 0:
                self._schedule_next(check, remaining, verdict.reason, this_check, now)
                return None
            verdict = self._timed_out(check, age, verdict)
        try:
            outcome = self._finish(check, verdict, deadline)
        except TransientFailure:
            self._release(this_check, now)
            raise
        self._mark(this_check, StepDone(final=True, message_id=message_id))
        return outcome

    def _schedule_next(
        self, check: WatchCheck, remaining: float, reason: str, this_check: str, now: float
    ) -> None:
        following = replace(check, attempt=check.attempt + 1)
        delay = max(1, min(check_delay(following.attempt), math.ceil(remaining)))
        try:
            self._queue.send(following, delay)
        except QueueUnavailable as error:
            self._release(this_check, now)
            raise TransientFailure(check, error.info()) from None
        logger.info(
            "checkpoint not finished yet; next check scheduled",
            extra=_check_extra(check, reason) | {"next_attempt": following.attempt, "delay_seconds": delay},
        )
        self._mark(this_check, StepDone(next_attempt=following.attempt))

    # -- looking at CBR -------------------------------------------------------------------------------

    def _look(self, check: WatchCheck, age: float) -> _Verdict:
        try:
            checkpoint = self._cbr.show_checkpoint(
                check.project_id, check.checkpoint_id, region=check.region
            ).model_dump(mode="json")
        except CbrCallFailed as error:
            if error.info.retryable:
                raise _LookFailed(error.info) from None
            if _is_not_found(error):
                if age < NOT_FOUND_GRACE_SECONDS:
                    return _Verdict(
                        "pending", reason="not found yet (CBR may not list it right after the create)"
                    )
                message = f"the checkpoint no longer exists: {error.info.message}"
                return _Verdict("failed", error=replace(error.info, message=message, retryable=False))
            # Refused for good (no permission to read it, ...): say so rather than follow forever.
            message = f"cannot follow the checkpoint: {error.info.message}"
            return _Verdict("failed", error=replace(error.info, message=message))
        status = str(checkpoint.get("status") or "")
        phase = checkpoint_phase(status)
        if phase is Phase.RUNNING:
            return _Verdict("pending", reason=status, checkpoint=checkpoint)
        if phase is not Phase.UNKNOWN:
            return self._backups_verdict(check, checkpoint, status)
        logger.warning("unknown checkpoint status; looking again later", extra=_check_extra(check, status))
        return _Verdict("pending", reason=f"unknown status {status!r}", checkpoint=checkpoint)

    def _backups_verdict(self, check: WatchCheck, checkpoint: dict[str, Any], status: str) -> _Verdict:
        try:
            backups = self._cbr.list_backups(
                check.project_id, region=check.region, checkpoint_id=check.checkpoint_id
            )
        except CbrCallFailed as error:
            if error.info.retryable:
                raise _LookFailed(error.info) from None
            message = f"cannot list the checkpoint's backups: {error.info.message}"
            return _Verdict("failed", checkpoint=checkpoint, error=replace(error.info, message=message))
        resources = [_resource(backup) for backup in backups if _of_checkpoint(backup, check)]
        phase = checkpoint_phase(status)
        if phase is Phase.DELETED and not _all_ended_well(resources):
            info = ErrorInfo("api", f"the checkpoint is {status}: it was deleted", code="CheckpointDeleted")
            return _Verdict("failed", checkpoint=checkpoint, resources=tuple(resources), error=info)
        listed = {entry.resource_id for entry in resources}
        # A backup in a status the table does not know is followed like a running one.
        running = [entry for entry in resources if backup_phase(entry.status) in _NOT_ENDED]
        if running and phase is not Phase.FAILED:
            return _Verdict(
                "pending", reason=f"{len(running)} backup(s) still running", checkpoint=checkpoint
            )
        resources.extend(_skipped(check.request, checkpoint, listed))
        failed = [entry for entry in resources if _did_not_complete(entry)]
        if phase is not Phase.FAILED and not failed:
            return _Verdict("completed", checkpoint=checkpoint, resources=tuple(resources))
        resources = self._with_reasons(check, resources)
        return _Verdict(
            "failed",
            checkpoint=checkpoint,
            resources=tuple(resources),
            error=_failure_summary(resources, status),
        )

    def _with_reasons(self, check: WatchCheck, resources: list[ResourceResult]) -> list[ResourceResult]:
        """The resources, failed ones with `error` from this checkpoint's backup tasks (operation logs)."""
        try:
            # From a little before the checkpoint was seen created, so that a busy vault's newer tasks
            # cannot push this checkpoint's out of the pages read.
            since = check.first_seen - timedelta(seconds=TASKS_SKEW_SECONDS)
            logs = self._cbr.list_operation_logs(
                check.project_id,
                region=check.region,
                vault_id=check.vault_id,
                operation_type="backup",
                start_time=since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        except CbrCallFailed as error:
            if error.info.retryable:
                raise _LookFailed(error.info) from None
            logger.warning(
                "operation logs unavailable; failures published without their reasons",
                extra=_check_extra(check, error.info.code or error.info.message),
            )
            logs = []
        ours = [log for log in logs if log.get("checkpoint_id") == check.checkpoint_id]
        by_resource: dict[str, dict[str, Any]] = {}
        for log in ours:
            resource = _mapping(_mapping(log.get("extra_info")).get("resource"))
            resource_id = resource.get("id")
            if isinstance(resource_id, str) and (
                log.get("status") != "success" or resource_id not in by_resource
            ):
                by_resource[resource_id] = log
        known = {entry.resource_id for entry in resources}
        for resource_id, log in by_resource.items():
            # The checkpoint failed before ListBackups showed a backup of this resource.
            if resource_id not in known and log.get("status") in ("failed", "timeout"):
                resources.append(_resource_from_log(log))
        return [
            replace(entry, error=_log_error(by_resource.get(entry.resource_id or "")))
            if _did_not_complete(entry) and entry.error is None
            else entry
            for entry in resources
        ]

    def _timed_out(self, check: WatchCheck, age: float, last: _Verdict) -> _Verdict:
        """Followed past WATCH_MAX_AGE_SECONDS: the end, with each resource's backup as it stands."""
        try:
            backups = self._cbr.list_backups(
                check.project_id, region=check.region, checkpoint_id=check.checkpoint_id
            )
        except CbrCallFailed:
            backups = []
        status = (last.checkpoint or {}).get("status") or "unknown"
        info = ErrorInfo(
            "timeout",
            f"the checkpoint was still {status} after {age:.0f} s ({last.reason}); followed for at most "
            f"{self._max_age:.0f} s (WATCH_MAX_AGE_SECONDS)",
            code="CompletionTimedOut",
        )
        resources = tuple(_resource(backup) for backup in backups if _of_checkpoint(backup, check))
        return _Verdict("timed_out", checkpoint=last.checkpoint, resources=resources, error=info)

    # -- the end --------------------------------------------------------------------------------------

    def _finish(self, check: WatchCheck, verdict: _Verdict, deadline: float) -> Outcome:
        """Record the final result (first one wins) and return it for publishing."""
        if verdict.kind == "pending":
            raise ValueError("a pending verdict is not an end")
        kind = verdict.kind
        now = self._clock.now()
        key = completion_key(check.idempotency_key)
        claim = self._ledger_call(check, lambda: self._ledger.claim(key, now=now, lease_until=deadline))
        if isinstance(claim, Completed):
            return _stored_end(check, claim.result)
        if isinstance(claim, Busy):
            info = ErrorInfo(
                "api", "another invocation is recording this checkpoint's end", code="InProgress"
            )
            raise TransientFailure(check, replace(info, retryable=True))
        end = StoredOutcome(kind, verdict.checkpoint, verdict.error, verdict.resources)
        try:
            self._ledger.complete(key, end, now=self._clock.now())
        except LedgerUnavailable as error:
            self._release(key, now)
            raise TransientFailure(check, error.info()) from None
        logger.info("checkpoint followed to its end", extra=_check_extra(check, kind))
        return Outcome(
            kind,
            check,
            checkpoint=verdict.checkpoint,
            error=verdict.error,
            resources=verdict.resources,
        )

    def _republish(self, check: WatchCheck, deadline: float) -> Outcome | None:
        """A redelivered check that already ended: its final result again (its publish may have failed)."""
        now = self._clock.now()
        key = completion_key(check.idempotency_key)
        claim = self._ledger_call(check, lambda: self._ledger.claim(key, now=now, lease_until=deadline))
        if isinstance(claim, Completed):
            return _stored_end(check, claim.result)
        if isinstance(claim, Busy):
            raise TransientFailure(
                check, ErrorInfo("api", "the end is being recorded", code="InProgress", retryable=True)
            )
        self._release(key, now)  # the stored end expired: nothing left to republish
        return None

    # -- helpers --------------------------------------------------------------------------------------

    def _ledger_call(self, check: WatchCheck, call: Callable[[], T]) -> T:
        try:
            return call()
        except LedgerUnavailable as error:
            raise TransientFailure(check, error.info()) from None

    def _release(self, key: str, now: float) -> None:
        """Give a key back (best effort: a lease left behind runs out at this invocation's deadline)."""
        try:
            self._ledger.release(key, now=now, reconcile_since=None)
        except LedgerUnavailable as error:
            logger.warning("ledger release failed", extra={"error_code": error.code, "key": key})

    def _mark(self, key: str, step: StepDone) -> None:
        """Record that a step was done (best effort: without it a redelivery repeats a harmless step)."""
        try:
            self._ledger.complete(key, step, now=self._clock.now())
        except LedgerUnavailable as error:
            logger.warning("ledger write failed", extra={"error_code": error.code, "key": key})


# -- pure functions -----------------------------------------------------------------------------------


def _first_check(outcome: Outcome, now: float) -> WatchCheck | None:
    request = outcome.item
    checkpoint_id = (outcome.checkpoint or {}).get("id")
    if (
        outcome.kind != "created"
        or not isinstance(request, BackupRequest)
        or not isinstance(checkpoint_id, str)
    ):
        return None
    return WatchCheck(
        idempotency_key=request.idempotency_key,
        project_id=request.project_id,
        vault_id=request.vault_id,
        checkpoint_id=checkpoint_id,
        request=request.body,
        trigger=request.trigger,
        first_seen=datetime.fromtimestamp(now, UTC),
        attempt=1,
        region=request.region,
    )


def _stored_end(check: WatchCheck, result: StoredResult) -> Outcome:
    if not isinstance(result, StoredOutcome):
        raise TypeError(
            f"the ledger holds a step, not an end, under {completion_key(check.idempotency_key)!r}"
        )
    return result.replayed(check)


def _is_not_found(error: CbrCallFailed) -> bool:
    return error.info.code in NOT_FOUND_CODES or error.info.http_status == 404


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _resource(backup: Mapping[str, Any]) -> ResourceResult:
    status = backup.get("status")
    return ResourceResult(
        resource_id=backup.get("resource_id"),
        status=status,
        backup_id=backup.get("id"),
        resource_name=backup.get("resource_name"),
        resource_type=backup.get("resource_type"),
        note="deleted after the backup finished" if backup_phase(status) is Phase.DELETED else None,
    )


def _of_checkpoint(backup: Mapping[str, Any], check: WatchCheck) -> bool:
    """Listed for this checkpoint (the list was asked for its backups; one that does not name its
    checkpoint is taken to be one)."""
    return backup.get("checkpoint_id") in (None, check.checkpoint_id)


def _all_ended_well(resources: Sequence[ResourceResult]) -> bool:
    """Every backup listed finished (and may have been deleted since), and there is at least one."""
    return bool(resources) and all(
        backup_phase(entry.status) in (Phase.FINISHED, Phase.DELETED) for entry in resources
    )


def _did_not_complete(entry: ResourceResult) -> bool:
    return entry.status == "skipped" or backup_phase(entry.status) is Phase.FAILED


def _resource_from_log(log: Mapping[str, Any]) -> ResourceResult:
    extra = _mapping(log.get("extra_info"))
    resource = _mapping(extra.get("resource"))
    return ResourceResult(
        resource_id=resource.get("id"),
        status="error",
        backup_id=_mapping(extra.get("backup")).get("backup_id") or None,
        resource_name=resource.get("name"),
        resource_type=resource.get("type"),
    )


def _log_error(log: Mapping[str, Any] | None) -> ResourceError:
    if log is None:
        return ResourceError(None, "the backup ended in error; no backup task of this checkpoint explains it")
    info = _mapping(log.get("error_info"))
    message = info.get("message") or f"the backup task ended {log.get('status')} without a reason"
    return ResourceError(info.get("code") or None, _clip(str(message)))


def _failure_summary(resources: Sequence[ResourceResult], status: str) -> ErrorInfo:
    failed = [entry for entry in resources if _did_not_complete(entry)]
    if not failed:
        return ErrorInfo(
            "api", f"the checkpoint ended {status}; no backup of it reports why", code="CheckpointError"
        )
    parts = []
    for entry in failed:
        name = entry.resource_name or entry.resource_id
        reason = (
            ""
            if entry.error is None
            else ": ".join(part for part in (entry.error.code, entry.error.message) if part)
        )
        parts.append(f"{name} ({entry.resource_id}) {entry.status}: {reason}")
    first_code = None if failed[0].error is None else failed[0].error.code
    message = f"{len(failed)} of {len(resources)} backup(s) did not complete: " + "; ".join(parts)
    return ErrorInfo("api", _clip(message), code=first_code or "BackupFailed")


def _skipped(
    request: Mapping[str, Any], checkpoint: Mapping[str, Any], listed: set[str | None]
) -> list[ResourceResult]:
    """Resources with no backup in this checkpoint: skipped by CBR at the create (a busy resource),
    as ShowCheckpoint's `vault.skipped_resources` says, or named by the request and absent."""
    reasons: dict[str, ResourceError] = {}
    for skipped in _mapping(checkpoint.get("vault")).get("skipped_resources") or ():
        if isinstance(skipped, Mapping) and isinstance(skipped.get("id"), str):
            reasons[skipped["id"]] = ResourceError(
                skipped.get("code") or "Skipped", skipped.get("reason") or "skipped by CBR at the create"
            )
    for resource_id in _requested_resources(request):
        reasons.setdefault(
            resource_id,
            ResourceError("NoBackup", "the request named this resource but CBR made no backup of it"),
        )
    return [
        ResourceResult(resource_id=resource_id, status="skipped", error=error)
        for resource_id, error in reasons.items()
        if resource_id not in listed
    ]


def _requested_resources(request: Mapping[str, Any]) -> list[str]:
    parameters = _mapping(_mapping(request.get("checkpoint")).get("parameters"))
    ids = [value for value in parameters.get("resources") or () if isinstance(value, str)]
    ids.extend(
        detail["id"]
        for detail in parameters.get("resource_details") or ()
        if isinstance(detail, Mapping) and isinstance(detail.get("id"), str)
    )
    return list(dict.fromkeys(ids))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


def _unavailable_extra(error: DependencyUnavailable, check: WatchCheck) -> dict[str, Any]:
    return {"error_code": error.code, "error": error.message, "idempotency_key": check.idempotency_key}


def _check_extra(check: WatchCheck, state: str) -> dict[str, Any]:
    return {
        "idempotency_key": check.idempotency_key,
        "checkpoint_id": check.checkpoint_id,
        "attempt": check.attempt,
        "state": state,
    }
