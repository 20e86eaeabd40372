"""Following a created checkpoint to its end, by messages instead of by waiting.

A 200 from the create only means the backup started (`protecting`); backups can take hours and a
Lambda lives 15 minutes at most. So each Created schedules a check on the watch queue, an SQS
message with `DelaySeconds`; each check looks once (ShowCheckpoint, then ListBackups and, for the
reasons of a failure, the operation logs) and either schedules the next check, later, or ends in one
final outcome: `completed`, `failed` (`"stage": "completion"`) or `timed_out`. What CBR's answers
mean is judged in `checkpoint_verdict`; this module asks, schedules and records.

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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cbr_checkpointer.checkpoint_verdict import (
    UnexplainedFailure,
    Verdict,
    backups_unlisted,
    checkpoint_unreadable,
    explain,
    judge_backups,
    judge_checkpoint,
    timed_out,
)
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
    StepDone,
    StoredOutcome,
    StoredResult,
    TransientFailure,
    WatchCheck,
)
from cbr_checkpointer.observability import logger
from cbr_checkpointer.ports import MAX_DELAY_SECONDS, Cbr, Clock, Ledger, SystemClock, WatchQueue
from cbr_checkpointer.values import replace

T = TypeVar("T")

FIRST_CHECK_SECONDS = 30
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
            verdict = Verdict("pending", reason=f"CBR did not answer: {failure.info.message}")
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

    def _look(self, check: WatchCheck, age: float) -> Verdict:
        try:
            checkpoint = self._cbr.show_checkpoint(
                check.project_id, check.checkpoint_id, region=check.region
            ).model_dump(mode="json")
        except CbrCallFailed as error:
            if error.info.retryable:
                raise _LookFailed(error.info) from None
            return checkpoint_unreadable(error.info, age)
        verdict = judge_checkpoint(checkpoint)
        if verdict is None:
            return self._backups_verdict(check, checkpoint)
        if verdict.unknown_status:
            logger.warning(
                "unknown checkpoint status; looking again later",
                extra=_check_extra(check, verdict.checkpoint_status),
            )
        return verdict

    def _backups_verdict(self, check: WatchCheck, checkpoint: dict[str, Any]) -> Verdict:
        try:
            backups = self._cbr.list_backups(
                check.project_id, region=check.region, checkpoint_id=check.checkpoint_id
            )
        except CbrCallFailed as error:
            if error.info.retryable:
                raise _LookFailed(error.info) from None
            return backups_unlisted(checkpoint, error.info)
        judged = judge_backups(checkpoint, backups, checkpoint_id=check.checkpoint_id, request=check.request)
        if isinstance(judged, UnexplainedFailure):
            return explain(judged, self._backup_tasks(check), checkpoint_id=check.checkpoint_id)
        return judged

    def _backup_tasks(self, check: WatchCheck) -> list[dict[str, Any]]:
        """The vault's backup tasks (operation logs) that may be this checkpoint's; none when CBR
        refuses them for good (the failure is then published without its reasons)."""
        try:
            # From a little before the checkpoint was seen created, so that a busy vault's newer tasks
            # cannot push this checkpoint's out of the pages read.
            since = check.first_seen - timedelta(seconds=TASKS_SKEW_SECONDS)
            return self._cbr.list_operation_logs(
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
            return []

    def _timed_out(self, check: WatchCheck, age: float, last: Verdict) -> Verdict:
        """Followed past WATCH_MAX_AGE_SECONDS: the end, with each resource's backup as it stands."""
        try:
            backups = self._cbr.list_backups(
                check.project_id, region=check.region, checkpoint_id=check.checkpoint_id
            )
        except CbrCallFailed:
            backups = []
        return timed_out(last, backups, checkpoint_id=check.checkpoint_id, age=age, max_age=self._max_age)

    # -- the end --------------------------------------------------------------------------------------

    def _finish(self, check: WatchCheck, verdict: Verdict, deadline: float) -> Outcome:
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

    # -- the first check, the stored end, log fields -------------------------------------------------------

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


# -- the first check, the stored end, log fields ------------------------------------------------------


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


def _unavailable_extra(error: DependencyUnavailable, check: WatchCheck) -> dict[str, Any]:
    return {"error_code": error.code, "error": error.message, "idempotency_key": check.idempotency_key}


def _check_extra(check: WatchCheck, state: str) -> dict[str, Any]:
    return {
        "idempotency_key": check.idempotency_key,
        "checkpoint_id": check.checkpoint_id,
        "attempt": check.attempt,
        "state": state,
    }
