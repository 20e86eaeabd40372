"""What one look at a followed checkpoint found, judged from CBR's answers alone.

ShowCheckpoint says whether the checkpoint is still running; once it is not, ListBackups says how each
resource's backup ended, and when one failed, the checkpoint's backup tasks (operation logs) say why.
The judgement is a `Verdict`: still pending (look again later), or a final result with one entry per
resource: `completed`, `failed` or `timed_out`.

Everything here is a function of the answers it is given (and of the age it is told): asking CBR,
counting checks, scheduling the next one and recording the end are the completion chain's.

- A running checkpoint, one in a status the table does not know, or one not in error whose backups
  have not all ended, is pending; so is a checkpoint CBR does not find yet, within
  NOT_FOUND_GRACE_SECONDS of its create.
- An ended checkpoint completed when each of its backups finished (one restored or deleted since
  counts as finished, with a note) and every resource has a backup.
- It failed when it ended in error, a backup failed, a resource has no backup (skipped by CBR, or
  named by the request and absent), or it was deleted before its backups finished. Each resource
  that did not complete carries its own reason, from its backup task when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from cbr_checkpointer.domain import ErrorInfo, ResourceError, ResourceResult
from cbr_checkpointer.statuses import Phase, backup_phase, checkpoint_phase
from cbr_checkpointer.values import replace, value

# ShowCheckpoint may not know a checkpoint for a little while after the create answered.
NOT_FOUND_GRACE_SECONDS = 120
NOT_FOUND_CODES = frozenset({"BackupService.6217"})
MAX_ERROR_MESSAGE = 1024
_NOT_ENDED = (Phase.RUNNING, Phase.UNKNOWN)


@value
class Verdict:
    """What one look at a checkpoint found: still running, or a final result.

    `unknown_status`: the checkpoint's status is not in the status table; it is followed like a
    running one, and worth a warning."""

    kind: Literal["pending", "completed", "failed", "timed_out"]
    reason: str = ""
    checkpoint: dict[str, Any] | None = None
    resources: tuple[ResourceResult, ...] = ()
    error: ErrorInfo | None = None
    unknown_status: bool = False

    @property
    def checkpoint_status(self) -> str:
        """The checkpoint's status as CBR last showed it; empty when it showed none."""
        return str((self.checkpoint or {}).get("status") or "")


@value
class UnexplainedFailure:
    """The checkpoint failed; the reasons of its resources are in its backup tasks, not read yet."""

    checkpoint: dict[str, Any]
    resources: tuple[ResourceResult, ...]


def checkpoint_unreadable(info: ErrorInfo, age: float) -> Verdict:
    """ShowCheckpoint refused for good, `age` seconds after the create (a refusal that may pass is
    the chain's to retry, not a verdict)."""
    if _is_not_found(info):
        if age < NOT_FOUND_GRACE_SECONDS:
            return Verdict("pending", reason="not found yet (CBR may not list it right after the create)")
        message = f"the checkpoint no longer exists: {info.message}"
        return Verdict("failed", error=replace(info, message=message, retryable=False))
    # No permission to read it, ...: say so rather than follow forever.
    return Verdict("failed", error=replace(info, message=f"cannot follow the checkpoint: {info.message}"))


def judge_checkpoint(checkpoint: dict[str, Any]) -> Verdict | None:
    """Pending while the checkpoint runs (or is in a status the table does not know); None once it
    ended: its backups tell the rest (`judge_backups`)."""
    status = str(checkpoint.get("status") or "")
    phase = checkpoint_phase(status)
    if phase is Phase.RUNNING:
        return Verdict("pending", reason=status, checkpoint=checkpoint)
    if phase is Phase.UNKNOWN:
        return Verdict(
            "pending", reason=f"unknown status {status!r}", checkpoint=checkpoint, unknown_status=True
        )
    return None


def backups_unlisted(checkpoint: dict[str, Any], info: ErrorInfo) -> Verdict:
    """ListBackups refused for good the backups of an ended checkpoint."""
    message = f"cannot list the checkpoint's backups: {info.message}"
    return Verdict("failed", checkpoint=checkpoint, error=replace(info, message=message))


def judge_backups(
    checkpoint: dict[str, Any],
    backups: Sequence[Mapping[str, Any]],
    *,
    checkpoint_id: str,
    request: Mapping[str, Any],
) -> Verdict | UnexplainedFailure:
    """An ended checkpoint (ShowCheckpoint's `checkpoint`), by its backups (ListBackups) and the
    resources its create `request` named. A failure whose reasons are in the backup tasks comes back
    unexplained (`explain` adds them)."""
    status = str(checkpoint.get("status") or "")
    phase = checkpoint_phase(status)
    resources = [_resource(backup) for backup in backups if _of_checkpoint(backup, checkpoint_id)]
    if phase is Phase.DELETED and not _all_ended_well(resources):
        info = ErrorInfo("api", f"the checkpoint is {status}: it was deleted", code="CheckpointDeleted")
        return Verdict("failed", checkpoint=checkpoint, resources=tuple(resources), error=info)
    listed = {entry.resource_id for entry in resources}
    # A backup in a status the table does not know is followed like a running one.
    running = [entry for entry in resources if backup_phase(entry.status) in _NOT_ENDED]
    if running and phase is not Phase.FAILED:
        return Verdict("pending", reason=f"{len(running)} backup(s) still running", checkpoint=checkpoint)
    resources.extend(_skipped(request, checkpoint, listed))
    if phase is not Phase.FAILED and not any(_did_not_complete(entry) for entry in resources):
        return Verdict("completed", checkpoint=checkpoint, resources=tuple(resources))
    return UnexplainedFailure(checkpoint, tuple(resources))


def explain(
    failure: UnexplainedFailure, tasks: Sequence[Mapping[str, Any]], *, checkpoint_id: str
) -> Verdict:
    """The failed verdict, each resource that did not complete with the reason its backup task gives
    (`tasks`: the vault's backup operation logs, of any checkpoint; empty when they cannot be read)."""
    by_resource: dict[str, Mapping[str, Any]] = {}
    for task in tasks:
        if task.get("checkpoint_id") != checkpoint_id:
            continue
        resource_id = _mapping(_mapping(task.get("extra_info")).get("resource")).get("id")
        if not isinstance(resource_id, str):
            continue
        # A task that did not succeed wins over a successful one of the same resource.
        if task.get("status") != "success" or resource_id not in by_resource:
            by_resource[resource_id] = task
    resources = list(failure.resources)
    known = {entry.resource_id for entry in resources}
    for resource_id, task in by_resource.items():
        # The checkpoint failed before ListBackups showed a backup of this resource.
        if resource_id not in known and task.get("status") in ("failed", "timeout"):
            resources.append(_resource_from_task(task))
    resources = [
        replace(entry, error=_task_error(by_resource.get(entry.resource_id or "")))
        if _did_not_complete(entry) and entry.error is None
        else entry
        for entry in resources
    ]
    status = str(failure.checkpoint.get("status") or "")
    return Verdict(
        "failed",
        checkpoint=failure.checkpoint,
        resources=tuple(resources),
        error=_failure_summary(resources, status),
    )


def timed_out(
    last: Verdict,
    backups: Sequence[Mapping[str, Any]],
    *,
    checkpoint_id: str,
    age: float,
    max_age: float,
) -> Verdict:
    """Followed past its maximum age (`max_age`, WATCH_MAX_AGE_SECONDS) while still `last`: the end,
    with each resource's backup as it stands (`backups`: empty when they cannot be listed)."""
    info = ErrorInfo(
        "timeout",
        f"the checkpoint was still {last.checkpoint_status or 'unknown'} after {age:.0f} s ({last.reason}); "
        f"followed for at most {max_age:.0f} s (WATCH_MAX_AGE_SECONDS)",
        code="CompletionTimedOut",
    )
    resources = tuple(_resource(backup) for backup in backups if _of_checkpoint(backup, checkpoint_id))
    return Verdict("timed_out", checkpoint=last.checkpoint, resources=resources, error=info)


# -- the parts of a judgement -------------------------------------------------------------------------


def _is_not_found(info: ErrorInfo) -> bool:
    return info.code in NOT_FOUND_CODES or info.http_status == 404


def _resource(backup: Mapping[str, Any]) -> ResourceResult:
    """One resource's entry, from its backup as ListBackups shows it."""
    status = backup.get("status")
    return ResourceResult(
        resource_id=backup.get("resource_id"),
        status=status,
        backup_id=backup.get("id"),
        resource_name=backup.get("resource_name"),
        resource_type=backup.get("resource_type"),
        note="deleted after the backup finished" if backup_phase(status) is Phase.DELETED else None,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _of_checkpoint(backup: Mapping[str, Any], checkpoint_id: str) -> bool:
    """Listed for this checkpoint (the list was asked for its backups; one that does not name its
    checkpoint is taken to be one)."""
    return backup.get("checkpoint_id") in (None, checkpoint_id)


def _all_ended_well(resources: Sequence[ResourceResult]) -> bool:
    """Every backup listed finished (and may have been deleted since), and there is at least one."""
    return bool(resources) and all(
        backup_phase(entry.status) in (Phase.FINISHED, Phase.DELETED) for entry in resources
    )


def _did_not_complete(entry: ResourceResult) -> bool:
    return entry.status == "skipped" or backup_phase(entry.status) is Phase.FAILED


def _resource_from_task(task: Mapping[str, Any]) -> ResourceResult:
    extra = _mapping(task.get("extra_info"))
    resource = _mapping(extra.get("resource"))
    return ResourceResult(
        resource_id=resource.get("id"),
        status="error",
        backup_id=_mapping(extra.get("backup")).get("backup_id") or None,
        resource_name=resource.get("name"),
        resource_type=resource.get("type"),
    )


def _task_error(task: Mapping[str, Any] | None) -> ResourceError:
    if task is None:
        return ResourceError(None, "the backup ended in error; no backup task of this checkpoint explains it")
    info = _mapping(task.get("error_info"))
    message = info.get("message") or f"the backup task ended {task.get('status')} without a reason"
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
