"""The phase of each status: a finished backup being restored from finished; deletion is not failure;
whatever the table does not list (null included) is unknown, followed like a running one."""

from __future__ import annotations

import pytest

from cbr_checkpointer.statuses import Phase, backup_phase, checkpoint_phase


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("protecting", Phase.RUNNING),
        ("waiting_protect", Phase.RUNNING),
        ("available", Phase.FINISHED),
        ("restoring", Phase.FINISHED),
        ("waiting_restore", Phase.FINISHED),
        ("error", Phase.FAILED),
        ("deleting", Phase.DELETED),
        ("waiting_delete", Phase.DELETED),
        ("frozen", Phase.UNKNOWN),
        (None, Phase.UNKNOWN),
        (7, Phase.UNKNOWN),
    ],
)
def test_each_backup_status_has_its_phase(status: object, phase: Phase) -> None:
    assert backup_phase(status) is phase


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("protecting", Phase.RUNNING),
        ("creating", Phase.RUNNING),
        ("available", Phase.FINISHED),
        ("restoring", Phase.FINISHED),
        ("error", Phase.FAILED),
        ("deleted", Phase.DELETED),
        ("error-deleting", Phase.DELETED),
        ("waiting_protect", Phase.UNKNOWN),
        (None, Phase.UNKNOWN),
    ],
)
def test_each_checkpoint_status_has_its_phase(status: object, phase: Phase) -> None:
    assert checkpoint_phase(status) is phase
