"""What each status of a checkpoint (ShowCheckpoint) and of a backup (ListBackups) means for following it.

Every status the API documents is listed, old ones included; any other is UNKNOWN, which is followed
like a running one (until WATCH_MAX_AGE_SECONDS) rather than guessed to be an end.

- A backup that finished and is now being restored from (`restoring`, `waiting_restore`) finished.
- DELETED: the checkpoint or backup is being (or was) deleted. Its deletion is reported as such,
  never as a failure of the backup: a deleted checkpoint whose backups all finished ends Completed,
  each deleted backup keeping CBR's status (`deleting`, ...) with a note that it was deleted.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class Phase(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    DELETED = "deleted"
    UNKNOWN = "unknown"


# `checkpoint.status`. Older regions also report `creating` and `restoring`.
CHECKPOINT_PHASES = MappingProxyType(
    {
        "protecting": Phase.RUNNING,
        "creating": Phase.RUNNING,
        "available": Phase.FINISHED,
        "restoring": Phase.FINISHED,
        "error": Phase.FAILED,
        "deleting": Phase.DELETED,
        "deleted": Phase.DELETED,
        "error-deleting": Phase.DELETED,
    }
)

# A backup's `status` (one backup per resource of a checkpoint).
BACKUP_PHASES = MappingProxyType(
    {
        "protecting": Phase.RUNNING,
        "waiting_protect": Phase.RUNNING,
        "creating": Phase.RUNNING,
        "available": Phase.FINISHED,
        "restoring": Phase.FINISHED,
        "waiting_restore": Phase.FINISHED,
        "error": Phase.FAILED,
        "deleting": Phase.DELETED,
        "waiting_delete": Phase.DELETED,
        "deleted": Phase.DELETED,
        "error-deleting": Phase.DELETED,
    }
)


def checkpoint_phase(status: object) -> Phase:
    """The phase of a checkpoint status; UNKNOWN for anything the table lacks (null included)."""
    return CHECKPOINT_PHASES.get(status, Phase.UNKNOWN) if isinstance(status, str) else Phase.UNKNOWN


def backup_phase(status: object) -> Phase:
    """The phase of a backup status; UNKNOWN for anything the table lacks (null included)."""
    return BACKUP_PHASES.get(status, Phase.UNKNOWN) if isinstance(status, str) else Phase.UNKNOWN
