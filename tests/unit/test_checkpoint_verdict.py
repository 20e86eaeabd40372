"""The verdict on one look at a checkpoint, from CBR's answers alone: plain values in, a verdict out.

No CBR, queue, ledger or clock: the answers are the dictionaries ShowCheckpoint, ListBackups and
ListOpLogs give (as the client returns them), and the age is told.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fakes import backup_task

from cbr_checkpointer.checkpoint_verdict import (
    MAX_ERROR_MESSAGE,
    NOT_FOUND_GRACE_SECONDS,
    UnexplainedFailure,
    Verdict,
    backups_unlisted,
    checkpoint_unreadable,
    explain,
    judge_backups,
    judge_checkpoint,
    timed_out,
)
from cbr_checkpointer.domain import ErrorInfo, ResourceError, ResourceResult

CHECKPOINT = "8b0851a8-adf3-4f4c-a914-dead08bf9664"
OTHER_CHECKPOINT = "0c1d2e3f-4a5b-4c6d-8e7f-901234567890"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SERVER = "94eba8b2-acc9-4d82-badc-127144cc5526"
VOLUME = "5f0f3b1e-8d2c-4c1a-9e57-2b0a6c1d9e44"
DISK = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
NAMING_SERVER = {"checkpoint": {"vault_id": VAULT, "parameters": {"resources": [SERVER]}}}
NAMING_NOTHING = {"checkpoint": {"vault_id": VAULT}}
DAY = 24 * 3600.0


def shown(status: str | None, *, skipped: list[Any] | None = None) -> dict[str, Any]:
    """ShowCheckpoint's checkpoint, as the client dumps it."""
    return {
        "id": CHECKPOINT,
        "status": status,
        "vault": {"id": VAULT, "name": "v", "skipped_resources": skipped or []},
    }


def backup(
    resource_id: str, status: str | None, backup_id: str = "b-1", *, checkpoint: str | None = CHECKPOINT
) -> dict[str, Any]:
    """One entry of ListBackups."""
    return {
        "id": backup_id,
        "checkpoint_id": checkpoint,
        "resource_id": resource_id,
        "resource_name": f"res-{resource_id[:4]}",
        "resource_type": "OS::Nova::Server",
        "status": status,
    }


def task(
    resource_id: str, status: str, code: str = "", message: str = "", *, checkpoint: str = CHECKPOINT
) -> dict[str, Any]:
    return backup_task(checkpoint, resource_id, status, code, message)


def judge(
    checkpoint: dict[str, Any], backups: list[dict[str, Any]], request: dict[str, Any] = NAMING_NOTHING
) -> Verdict | UnexplainedFailure:
    return judge_backups(checkpoint, backups, checkpoint_id=CHECKPOINT, request=request)


def judge_failure(
    checkpoint: dict[str, Any],
    backups: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    request: dict[str, Any] = NAMING_NOTHING,
) -> Verdict:
    """The verdict on a failed checkpoint, with the reasons its backup tasks give."""
    judged = judge(checkpoint, backups, request)
    assert isinstance(judged, UnexplainedFailure)
    return explain(judged, tasks, checkpoint_id=CHECKPOINT)


# -- the checkpoint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["protecting", "creating"])
def test_a_running_checkpoint_is_pending_with_its_status(status: str) -> None:
    checkpoint = shown(status)

    verdict = judge_checkpoint(checkpoint)

    assert verdict == Verdict("pending", reason=status, checkpoint=checkpoint)
    assert verdict.unknown_status is False


@pytest.mark.parametrize(
    ("status", "reason"), [("frozen", "unknown status 'frozen'"), (None, "unknown status ''")]
)
def test_a_checkpoint_in_a_status_the_table_lacks_is_pending_and_flagged(
    status: str | None, reason: str
) -> None:
    # Given a checkpoint whose status no table lists (or none at all)
    verdict = judge_checkpoint(shown(status))

    # Then it is followed like a running one, flagged for a warning
    assert verdict is not None
    assert (verdict.kind, verdict.reason, verdict.unknown_status) == ("pending", reason, True)
    assert verdict.checkpoint_status == (status or "")


@pytest.mark.parametrize(
    "status", ["available", "restoring", "error", "deleting", "deleted", "error-deleting"]
)
def test_an_ended_checkpoint_is_left_to_its_backups(status: str) -> None:
    assert judge_checkpoint(shown(status)) is None


# -- a checkpoint CBR does not show ------------------------------------------------------------------------


def not_found(code: str | None, http_status: int) -> ErrorInfo:
    return ErrorInfo("api", "not there", code=code, http_status=http_status)


@pytest.mark.parametrize(
    "info", [not_found("BackupService.6217", 400), not_found(None, 404)], ids=["CBR's code", "404"]
)
@pytest.mark.parametrize("age", [0.0, 30.0, NOT_FOUND_GRACE_SECONDS - 0.001])
def test_not_found_within_the_grace_after_the_create_is_pending(info: ErrorInfo, age: float) -> None:
    verdict = checkpoint_unreadable(info, age)

    assert (verdict.kind, verdict.error, verdict.checkpoint) == ("pending", None, None)
    assert verdict.reason.startswith("not found yet")


@pytest.mark.parametrize(
    "info", [not_found("BackupService.6217", 400), not_found(None, 404)], ids=["CBR's code", "404"]
)
@pytest.mark.parametrize("age", [NOT_FOUND_GRACE_SECONDS, DAY])
def test_not_found_after_the_grace_is_a_failure_that_says_it_no_longer_exists(
    info: ErrorInfo, age: float
) -> None:
    verdict = checkpoint_unreadable(info, age)

    assert verdict.kind == "failed"
    assert verdict.error == ErrorInfo(
        "api",
        "the checkpoint no longer exists: not there",
        code=info.code,
        http_status=info.http_status,
        retryable=False,
    )
    assert NOT_FOUND_GRACE_SECONDS == 120


def test_a_checkpoint_refused_for_good_fails_at_once_naming_the_refusal() -> None:
    # Given ShowCheckpoint refused (no permission), right after the create
    refused = ErrorInfo("api", "no permission", code="APIGW.0302", http_status=403, request_id="req-1")

    verdict = checkpoint_unreadable(refused, 0.0)

    # Then it is not followed forever: failed, keeping CBR's code, status and request id
    assert verdict == Verdict(
        "failed",
        error=ErrorInfo(
            "api",
            "cannot follow the checkpoint: no permission",
            code="APIGW.0302",
            http_status=403,
            request_id="req-1",
        ),
    )


def test_backups_refused_for_good_fail_the_ended_checkpoint() -> None:
    checkpoint = shown("available")
    refused = ErrorInfo("api", "no permission", code="APIGW.0302", http_status=403)

    verdict = backups_unlisted(checkpoint, refused)

    assert (verdict.kind, verdict.checkpoint, verdict.resources) == ("failed", checkpoint, ())
    assert verdict.error is not None
    assert (verdict.error.code, verdict.error.message) == (
        "APIGW.0302",
        "cannot list the checkpoint's backups: no permission",
    )


# -- an ended checkpoint, by its backups ---------------------------------------------------------------


def test_all_backups_available_is_completed_with_each_resource() -> None:
    # Given an available checkpoint whose two backups are available, the request naming one of them
    checkpoint = shown("available")

    verdict = judge(
        checkpoint, [backup(SERVER, "available", "b-1"), backup(VOLUME, "available", "b-2")], NAMING_SERVER
    )

    # Then it completed, with one entry per resource as ListBackups showed it
    assert verdict == Verdict(
        "completed",
        checkpoint=checkpoint,
        resources=(
            ResourceResult(
                SERVER, "available", "b-1", resource_name="res-94eb", resource_type="OS::Nova::Server"
            ),
            ResourceResult(
                VOLUME, "available", "b-2", resource_name="res-5f0f", resource_type="OS::Nova::Server"
            ),
        ),
    )


@pytest.mark.parametrize("status", ["protecting", "waiting_protect", "creating", "archiving", None])
def test_an_available_checkpoint_with_a_backup_not_ended_is_pending(status: str | None) -> None:
    # Given a finished checkpoint with one backup still running (or in a status no table lists)
    verdict = judge(shown("available"), [backup(SERVER, "available", "b-1"), backup(VOLUME, status, "b-2")])

    # Then it is looked at again, like a running one
    assert isinstance(verdict, Verdict)
    assert (verdict.kind, verdict.reason) == ("pending", "1 backup(s) still running")


def test_a_checkpoint_in_error_fails_even_while_a_backup_is_still_listed_running() -> None:
    judged = judge(shown("error"), [backup(SERVER, "protecting")])

    assert isinstance(judged, UnexplainedFailure)
    assert [entry.status for entry in judged.resources] == ["protecting"]


def test_a_failed_backup_is_failed_with_the_reason_of_its_own_task() -> None:
    # Given a checkpoint in error: its server's backup available, its volume's in error
    checkpoint = shown("error")
    backups = [backup(SERVER, "available", "b-1"), backup(VOLUME, "error", "b-2")]
    judged = judge(checkpoint, backups)
    assert judged == UnexplainedFailure(
        checkpoint,
        (
            ResourceResult(
                SERVER, "available", "b-1", resource_name="res-94eb", resource_type="OS::Nova::Server"
            ),
            ResourceResult(
                VOLUME, "error", "b-2", resource_name="res-5f0f", resource_type="OS::Nova::Server"
            ),
        ),
    )

    # When the vault's backup tasks are read: another checkpoint's failure of the same volume among them
    assert isinstance(judged, UnexplainedFailure)
    verdict = explain(
        judged,
        [
            task(
                VOLUME,
                "failed",
                "BackupService.0000",
                "another checkpoint's failure",
                checkpoint=OTHER_CHECKPOINT,
            ),
            task(VOLUME, "failed", "BackupService.7003", "The disk status does not allow backup."),
            task(SERVER, "success"),
        ],
        checkpoint_id=CHECKPOINT,
    )

    # Then only the volume carries an error, its own task's, and the summary names it
    assert verdict.kind == "failed"
    assert verdict.checkpoint == checkpoint
    assert [entry.error for entry in verdict.resources] == [
        None,
        ResourceError("BackupService.7003", "The disk status does not allow backup."),
    ]
    assert verdict.error == ErrorInfo(
        "api",
        f"1 of 2 backup(s) did not complete: res-5f0f ({VOLUME}) error: "
        "BackupService.7003: The disk status does not allow backup.",
        code="BackupService.7003",
    )


@pytest.mark.parametrize("success_first", [True, False])
def test_a_task_that_did_not_succeed_explains_a_resource_whatever_the_order(success_first: bool) -> None:
    # Given a resource with a successful task and a failed one (a retried task), in either order
    tasks = [task(VOLUME, "success"), task(VOLUME, "timeout", "BackupService.6801", "took too long")]
    if not success_first:
        tasks.reverse()

    verdict = judge_failure(shown("error"), [backup(VOLUME, "error")], tasks)

    # Then the failure's reason is the failed task's
    assert [entry.error for entry in verdict.resources] == [
        ResourceError("BackupService.6801", "took too long")
    ]


def test_a_resource_that_failed_before_it_was_listed_is_added_from_its_task() -> None:
    # Given a checkpoint in error, ListBackups showing only the server's backup, and failed and timed-out
    # tasks of resources it does not show (and a running one, which is no end)
    tasks = [
        task(VOLUME, "failed", "BackupService.7003", "The disk status does not allow backup."),
        task(DISK, "timeout"),
        task("a-running-one", "running"),
    ]

    verdict = judge_failure(shown("error"), [backup(SERVER, "available")], tasks)

    # Then each ended one is a resource of the verdict, in error, as its task names it
    assert [entry.to_detail() for entry in verdict.resources[1:]] == [
        {
            "resource_id": VOLUME,
            "resource_name": "task-5f0f",
            "resource_type": "OS::Cinder::Volume",
            "backup_id": "b-of-5f0f",
            "status": "error",
            "error": {"code": "BackupService.7003", "message": "The disk status does not allow backup."},
        },
        {
            "resource_id": DISK,
            "resource_name": "task-c3d4",
            "resource_type": "OS::Cinder::Volume",
            "backup_id": "b-of-c3d4",
            "status": "error",
            "error": {"code": None, "message": "the backup task ended timeout without a reason"},
        },
    ]
    assert verdict.error is not None
    assert verdict.error.code == "BackupService.7003"  # the first failure's
    assert verdict.error.message.startswith("2 of 3 backup(s) did not complete: ")


def test_a_failure_no_task_explains_still_names_each_resource() -> None:
    # Given a failed backup and no task of this checkpoint (none listed, or the logs could not be read)
    verdict = judge_failure(
        shown("error"), [backup(VOLUME, "error")], [task(VOLUME, "failed", checkpoint="x")]
    )

    assert verdict.resources[0].error == ResourceError(
        None, "the backup ended in error; no backup task of this checkpoint explains it"
    )
    assert verdict.error is not None
    assert verdict.error.code == "BackupFailed"
    assert f"res-5f0f ({VOLUME}) error: the backup ended in error" in verdict.error.message


def test_a_checkpoint_in_error_whose_backups_all_finished_says_nothing_explains_it() -> None:
    verdict = judge_failure(shown("error"), [backup(SERVER, "available")], [])

    assert verdict.resources[0].error is None
    assert verdict.error == ErrorInfo(
        "api", "the checkpoint ended error; no backup of it reports why", code="CheckpointError"
    )


def test_a_long_reason_is_clipped() -> None:
    verdict = judge_failure(
        shown("error"), [backup(VOLUME, "error")], [task(VOLUME, "failed", "C", "x" * 5000)]
    )

    reason = verdict.resources[0].error
    assert reason is not None
    assert len(reason.message) == MAX_ERROR_MESSAGE == 1024
    assert reason.message.endswith("x…")
    assert verdict.error is not None
    assert len(verdict.error.message) == MAX_ERROR_MESSAGE


# -- resources with no backup ------------------------------------------------------------------------------


def test_a_resource_the_request_named_without_a_backup_fails_the_completion_as_skipped() -> None:
    # Given an available checkpoint with no backup of the server its request named
    judged = judge(shown("available"), [], NAMING_SERVER)

    # Then it failed, the server skipped with the reason; no task is needed to explain that
    assert isinstance(judged, UnexplainedFailure)
    verdict = explain(judged, [task(SERVER, "failed", "Other", "not this")], checkpoint_id=CHECKPOINT)
    assert verdict.resources == (
        ResourceResult(
            SERVER,
            "skipped",
            error=ResourceError("NoBackup", "the request named this resource but CBR made no backup of it"),
        ),
    )
    assert [entry.to_detail() for entry in verdict.resources] == [
        {
            "resource_id": SERVER,
            "backup_id": None,
            "status": "skipped",
            "error": {
                "code": "NoBackup",
                "message": "the request named this resource but CBR made no backup of it",
            },
        }
    ]
    assert verdict.error is not None
    assert verdict.error.code == "NoBackup"


def test_resources_cbr_skipped_at_the_create_carry_its_code_and_reason() -> None:
    # Given CBR's list of skipped resources: one with code and reason, one bare, one not a resource at all;
    # the request names the first by `resource_details`
    checkpoint = shown(
        "available",
        skipped=[
            {"id": VOLUME, "code": "BackupService.6202", "reason": "the resource is being backed up"},
            {"id": DISK},
            {"code": "no id"},
            "not an object",
        ],
    )
    request = {
        "checkpoint": {"parameters": {"resource_details": [{"id": VOLUME, "type": "OS::Cinder::Volume"}]}}
    }

    verdict = judge_failure(checkpoint, [backup(SERVER, "available")], [], request)

    assert [(entry.resource_id, entry.status, entry.error) for entry in verdict.resources] == [
        (SERVER, "available", None),
        (VOLUME, "skipped", ResourceError("BackupService.6202", "the resource is being backed up")),
        (DISK, "skipped", ResourceError("Skipped", "skipped by CBR at the create")),
    ]
    assert verdict.error is not None
    assert verdict.error.message.startswith("2 of 3 backup(s) did not complete: ")


def test_a_named_resource_with_a_backup_is_not_skipped() -> None:
    request = {
        "checkpoint": {"parameters": {"resources": [SERVER, SERVER], "resource_details": [{"id": SERVER}]}}
    }

    verdict = judge(shown("available"), [backup(SERVER, "available")], request)

    assert isinstance(verdict, Verdict)
    assert verdict.kind == "completed"
    assert [entry.resource_id for entry in verdict.resources] == [SERVER]


# -- restored and deleted, per the status table --------------------------------------------------------


@pytest.mark.parametrize("checkpoint_status", ["available", "restoring"])
@pytest.mark.parametrize("backup_status", ["restoring", "waiting_restore"])
def test_a_backup_being_restored_right_after_it_finished_is_completed(
    checkpoint_status: str, backup_status: str
) -> None:
    # Given a finished checkpoint whose backup is already being restored from
    verdict = judge(shown(checkpoint_status), [backup(SERVER, backup_status)], NAMING_SERVER)

    # Then the backup finished: Completed, not "Failed: restoring"
    assert isinstance(verdict, Verdict)
    assert (verdict.kind, verdict.error) == ("completed", None)
    assert [(entry.status, entry.note) for entry in verdict.resources] == [(backup_status, None)]


@pytest.mark.parametrize("checkpoint_status", ["deleted", "deleting", "available"])
@pytest.mark.parametrize("backup_status", ["deleting", "waiting_delete", "deleted", "error-deleting"])
def test_a_backup_deleted_after_it_finished_is_completed_and_says_so(
    checkpoint_status: str, backup_status: str
) -> None:
    # Given a checkpoint whose only backup finished and is now being deleted
    verdict = judge(shown(checkpoint_status), [backup(SERVER, backup_status)], NAMING_SERVER)

    # Then that is no failure: Completed, with CBR's status and a note on the resource
    assert isinstance(verdict, Verdict)
    assert (verdict.kind, verdict.error) == ("completed", None)
    assert [(entry.status, entry.note) for entry in verdict.resources] == [
        (backup_status, "deleted after the backup finished")
    ]


@pytest.mark.parametrize("status", ["deleted", "deleting", "error-deleting"])
@pytest.mark.parametrize(
    "backups",
    [[], [backup(SERVER, "protecting")], [backup(SERVER, "available"), backup(VOLUME, "error", "b-2")]],
    ids=["no backup", "unfinished", "one failed"],
)
def test_a_checkpoint_deleted_before_its_backups_all_finished_is_a_clear_failure(
    status: str, backups: list[dict[str, Any]]
) -> None:
    checkpoint = shown(status)

    verdict = judge(checkpoint, backups, NAMING_SERVER)

    # A final verdict: the deletion is the reason, no backup task is read for it
    assert isinstance(verdict, Verdict)
    assert verdict.kind == "failed"
    assert verdict.error == ErrorInfo(
        "api", f"the checkpoint is {status}: it was deleted", code="CheckpointDeleted"
    )
    assert len(verdict.resources) == len(backups)


# -- which backups are the checkpoint's ---------------------------------------------------------------------


def test_a_backup_listed_without_its_checkpoint_or_names_still_counts() -> None:
    # Given the backups of this checkpoint, listed with every optional field null
    listed = dict.fromkeys(("checkpoint_id", "resource_name", "resource_type", "id")) | {
        "resource_id": SERVER,
        "status": "available",
    }

    verdict = judge(shown("available"), [listed], NAMING_SERVER)

    # Then the backup is this checkpoint's (the list was asked for it), and it completed
    assert isinstance(verdict, Verdict)
    assert verdict.kind == "completed"
    assert [entry.to_detail() for entry in verdict.resources] == [
        {"resource_id": SERVER, "backup_id": None, "status": "available"}
    ]


def test_a_backup_of_another_checkpoint_is_not_counted() -> None:
    # Given a listing that also holds another checkpoint's backup of the same server, still running
    backups = [
        backup(SERVER, "available", "b-1"),
        backup(SERVER, "protecting", "b-0", checkpoint=OTHER_CHECKPOINT),
    ]

    verdict = judge(shown("available"), backups, NAMING_SERVER)

    assert isinstance(verdict, Verdict)
    assert verdict.kind == "completed"
    assert [entry.backup_id for entry in verdict.resources] == ["b-1"]


# -- timed out ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["protecting", "archiving", None])
def test_past_the_maximum_age_the_end_shows_each_backup_as_it_stands(status: str | None) -> None:
    # Given the last look found the checkpoint protecting, a backup still in `status`
    last = Verdict("pending", reason="1 backup(s) still running", checkpoint=shown("protecting"))
    backups = [backup(SERVER, status), backup(VOLUME, "available", checkpoint=OTHER_CHECKPOINT)]

    verdict = timed_out(last, backups, checkpoint_id=CHECKPOINT, age=3600.4, max_age=3600)

    # Then the end is timed_out, with this checkpoint's backup as CBR gave it
    assert (verdict.kind, verdict.checkpoint) == ("timed_out", last.checkpoint)
    assert [(entry.resource_id, entry.status) for entry in verdict.resources] == [(SERVER, status)]
    assert verdict.error == ErrorInfo(
        "timeout",
        "the checkpoint was still protecting after 3600 s (1 backup(s) still running); "
        "followed for at most 3600 s (WATCH_MAX_AGE_SECONDS)",
        code="CompletionTimedOut",
    )


def test_timed_out_without_ever_seeing_the_checkpoint_says_its_status_is_unknown() -> None:
    last = Verdict("pending", reason="CBR did not answer: busy")

    verdict = timed_out(last, [], checkpoint_id=CHECKPOINT, age=DAY, max_age=DAY)

    assert (verdict.kind, verdict.checkpoint, verdict.resources) == ("timed_out", None, ())
    assert verdict.error is not None
    assert verdict.error.message.startswith(
        "the checkpoint was still unknown after 86400 s (CBR did not answer"
    )
