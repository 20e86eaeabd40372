"""What one look at a followed checkpoint finds, judged from CBR's answers.

ShowCheckpoint says whether the checkpoint is still running; once it is not, ListBackups says how each
resource's backup ended, and for a failure the backup tasks (operation logs) say why. The judgement is
a `Verdict`: still pending (look again later), or a final result with one entry per resource. Which
check this is, when the next one goes out and how the end is recorded are the completion service's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from cbr_checkpointer.domain import (
    CbrCallFailed,
    ErrorInfo,
    ResourceError,
    ResourceResult,
    WatchCheck,
)
from cbr_checkpointer.observability import logger
from cbr_checkpointer.ports import Cbr
from cbr_checkpointer.statuses import Phase, backup_phase, checkpoint_phase

# ShowCheckpoint may not know a checkpoint for a little while after the create answered.
NOT_FOUND_GRACE_SECONDS = 120
NOT_FOUND_CODES = frozenset({"BackupService.6217"})
_NOT_ENDED = (Phase.RUNNING, Phase.UNKNOWN)
MAX_ERROR_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one look at a checkpoint found: still running, or a final result."""

    kind: Literal["pending", "completed", "failed", "timed_out"]
    reason: str = ""
    checkpoint: dict[str, Any] | None = None
    resources: tuple[ResourceResult, ...] = ()
    error: ErrorInfo | None = None


class LookFailed(Exception):
    """CBR could not answer now (throttled, busy, 5xx, network): look again later."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


class CheckpointInspector:
    """Looks at a checkpoint through CBR's read calls and judges what it found."""

    def __init__(self, cbr: Cbr, *, max_age_seconds: float) -> None:
        self._cbr = cbr
        self._max_age = max_age_seconds

    def look(self, check: WatchCheck, age: float) -> Verdict:
        """The checkpoint as CBR shows it `age` seconds after the create; raises LookFailed when CBR
        cannot answer now."""
        try:
            checkpoint = self._cbr.show_checkpoint(check.project_id, check.checkpoint_id).model_dump(
                mode="json"
            )
        except CbrCallFailed as error:
            if error.info.retryable:
                raise LookFailed(error.info) from None
            if _is_not_found(error):
                if age < NOT_FOUND_GRACE_SECONDS:
                    return Verdict(
                        "pending", reason="not found yet (CBR may not list it right after the create)"
                    )
                message = f"the checkpoint no longer exists: {error.info.message}"
                return Verdict("failed", error=replace(error.info, message=message, retryable=False))
            # Refused for good (no permission to read it, ...): say so rather than follow forever.
            message = f"cannot follow the checkpoint: {error.info.message}"
            return Verdict("failed", error=replace(error.info, message=message))
        status = str(checkpoint.get("status") or "")
        phase = checkpoint_phase(status)
        if phase is Phase.RUNNING:
            return Verdict("pending", reason=status, checkpoint=checkpoint)
        if phase is not Phase.UNKNOWN:
            return self._backups_verdict(check, checkpoint, status)
        logger.warning("unknown checkpoint status; looking again later", extra=check_log_extra(check, status))
        return Verdict("pending", reason=f"unknown status {status!r}", checkpoint=checkpoint)

    def _backups_verdict(self, check: WatchCheck, checkpoint: dict[str, Any], status: str) -> Verdict:
        try:
            backups = self._cbr.list_backups(check.project_id, checkpoint_id=check.checkpoint_id)
        except CbrCallFailed as error:
            if error.info.retryable:
                raise LookFailed(error.info) from None
            message = f"cannot list the checkpoint's backups: {error.info.message}"
            return Verdict("failed", checkpoint=checkpoint, error=replace(error.info, message=message))
        resources = [_resource(backup) for backup in backups if _of_checkpoint(backup, check)]
        phase = checkpoint_phase(status)
        if phase is Phase.DELETED and not _all_ended_well(resources):
            info = ErrorInfo("api", f"the checkpoint is {status}: it was deleted", code="CheckpointDeleted")
            return Verdict("failed", checkpoint=checkpoint, resources=tuple(resources), error=info)
        listed = {entry.resource_id for entry in resources}
        # A backup in a status the table does not know is followed like a running one.
        running = [entry for entry in resources if backup_phase(entry.status) in _NOT_ENDED]
        if running and phase is not Phase.FAILED:
            return Verdict("pending", reason=f"{len(running)} backup(s) still running", checkpoint=checkpoint)
        resources.extend(_skipped(check.request, checkpoint, listed))
        failed = [entry for entry in resources if _did_not_complete(entry)]
        if phase is not Phase.FAILED and not failed:
            return Verdict("completed", checkpoint=checkpoint, resources=tuple(resources))
        resources = self._with_reasons(check, resources)
        return Verdict(
            "failed",
            checkpoint=checkpoint,
            resources=tuple(resources),
            error=_failure_summary(resources, status),
        )

    def _with_reasons(self, check: WatchCheck, resources: list[ResourceResult]) -> list[ResourceResult]:
        """The resources, failed ones with `error` from this checkpoint's backup tasks (operation logs)."""
        try:
            logs = self._cbr.list_operation_logs(
                check.project_id, vault_id=check.vault_id, operation_type="backup"
            )
        except CbrCallFailed as error:
            if error.info.retryable:
                raise LookFailed(error.info) from None
            logger.warning(
                "operation logs unavailable; failures published without their reasons",
                extra=check_log_extra(check, error.info.code or error.info.message),
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

    def timed_out(self, check: WatchCheck, age: float, last: Verdict) -> Verdict:
        """Followed past WATCH_MAX_AGE_SECONDS: the end, with each resource's backup as it stands."""
        try:
            backups = self._cbr.list_backups(check.project_id, checkpoint_id=check.checkpoint_id)
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
        return Verdict("timed_out", checkpoint=last.checkpoint, resources=resources, error=info)


# -- pure functions -------------------------------------------------------------------------------------


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


def check_log_extra(check: WatchCheck, state: str) -> dict[str, Any]:
    """The log fields that place a line in the following of one checkpoint."""
    return {
        "idempotency_key": check.idempotency_key,
        "checkpoint_id": check.checkpoint_id,
        "attempt": check.attempt,
        "state": state,
    }
