"""The status table against the statuses the official SDK documents for a checkpoint and a backup."""

from __future__ import annotations

import inspect
import re

from huaweicloudsdkcbr.v1 import model as sdk

from cbr_checkpointer.statuses import BACKUP_PHASES, CHECKPOINT_PHASES

STATUS_WORD = re.compile(r"(?<![\w-])[a-z]+(?:[_-][a-z]+)*(?![\w-])")


def documented_statuses(model: type[object]) -> set[str]:
    """The status values listed in the SDK's docstring of `model.status` (its paragraph after the title)."""
    doc = inspect.getdoc(model.status)  # type: ignore[attr-defined]
    assert doc is not None
    description = doc.split("\n\n")[1]
    return set(STATUS_WORD.findall(description))


def test_the_sdk_docstrings_are_read_as_status_lists() -> None:
    # The parser is what the next tests stand on: it must find the values, and nothing else.
    assert documented_statuses(sdk.CheckpointCreate) == {
        "available", "deleting", "protecting", "deleted", "error-deleting", "error",
    }  # fmt: skip
    assert {"waiting_protect", "waiting_restore", "restoring"} <= documented_statuses(sdk.BackupResp)
    assert len(documented_statuses(sdk.BackupResp)) == 8


def test_every_checkpoint_status_the_sdk_lists_has_a_phase() -> None:
    missing = documented_statuses(sdk.CheckpointCreate) - set(CHECKPOINT_PHASES)
    assert not missing, f"add these checkpoint statuses to the table: {sorted(missing)}"


def test_every_backup_status_the_sdk_lists_has_a_phase() -> None:
    missing = documented_statuses(sdk.BackupResp) - set(BACKUP_PHASES)
    assert not missing, f"add these backup statuses to the table: {sorted(missing)}"
