"""The rules of the operation: one checkpoint per idempotency key, retries, and what ends as which outcome."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cbr_checkpointer.domain import (
    BackupRequest,
    Busy,
    CbrCallFailed,
    Claimed,
    Completed,
    ErrorInfo,
    Outcome,
    Rejected,
    StoredOutcome,
    TransientFailure,
    WorkItem,
)
from cbr_checkpointer.models import CheckpointCreate
from cbr_checkpointer.observability import logger
from cbr_checkpointer.ports import Cbr, Clock, Ledger, NoObserver, Observer, SystemClock
from cbr_checkpointer.retry import RetryPolicy

# The shortest wait for a create's answer worth trying when the invocation is nearly out of time.
MIN_CALL_SECONDS = 1.0
# Backups whose creation we may have missed are searched from a little before the claim, for clock skew.
RECONCILE_SKEW_SECONDS = 300


class CheckpointService:
    """Turns one work item into one outcome, calling CBR at most once per key that it completes."""

    def __init__(
        self,
        cbr: Cbr,
        ledger: Ledger,
        *,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._cbr = cbr
        self._ledger = ledger
        self._retry = retry or RetryPolicy()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._observer = observer or NoObserver()

    def execute(self, item: WorkItem, *, deadline: float) -> Outcome:
        """Run one item to its outcome; raises TransientFailure when its trigger should deliver it again."""
        self._observer.request_started(item)
        try:
            outcome = self._execute(item, deadline=deadline)
        except BaseException as error:
            self._observer.request_finished(item, error)
            raise
        self._observer.request_finished(item, outcome)
        return outcome

    def _execute(self, item: WorkItem, *, deadline: float) -> Outcome:
        if isinstance(item, Rejected):
            return Outcome("rejected", item, error=item.error_info())
        if item.dry_run:
            return Outcome("validated", item)
        claimed_at = self._clock.now()
        claim = self._ledger.claim(
            item.idempotency_key, now=claimed_at, lease_until=deadline, request=item.body
        )
        if isinstance(claim, Completed):
            if not isinstance(claim.result, StoredOutcome):
                raise TypeError(
                    f"the ledger holds a completion step under request key {item.idempotency_key!r}"
                )
            return claim.result.replayed(item)
        if isinstance(claim, Busy):
            held = datetime.fromtimestamp(claim.lease_until, UTC).isoformat()
            info = ErrorInfo(
                kind="api",
                message=f"another invocation holds this request until {held}",
                code="InProgress",
                retryable=True,
            )
            raise TransientFailure(item, info)
        return self._create_once(item, claim, claimed_at=claimed_at, deadline=deadline)

    def _create_once(
        self, request: BackupRequest, claim: Claimed, *, claimed_at: float, deadline: float
    ) -> Outcome:
        reconcile_since = claim.reconcile_since
        if claim.request is not None and claim.request != request.body:
            # An earlier delivery may have sent the body it pinned (its name rendered from another
            # time): look for that one, and send that one, so that the key still means one checkpoint.
            logger.info(
                "using the request as first claimed", extra={"idempotency_key": request.idempotency_key}
            )
            request = replace(request, body=claim.request)
        attempt = 0
        while True:
            reconciling = reconcile_since is not None
            try:
                existing = None if reconcile_since is None else self._find_existing(request, reconcile_since)
                if existing is not None:
                    logger.info(
                        "checkpoint found by reconciliation", extra={"checkpoint_id": existing.get("id")}
                    )
                    return self._finish(Outcome("created", request, checkpoint=existing))
                reconciling = False
                time_left = deadline - self._retry.safety_margin - self._clock.now()
                created = self._cbr.create_checkpoint(
                    request.project_id,
                    request.body,
                    region=request.region,
                    time_left=max(time_left, MIN_CALL_SECONDS),
                )
                return self._finish(Outcome("created", request, checkpoint=created.model_dump(mode="json")))
            except CbrCallFailed as error:
                if error.ambiguous and reconcile_since is None:
                    reconcile_since = claimed_at
                if not error.info.retryable and reconciling:
                    # CBR may hold a checkpoint for this key but would not let us look for it: the
                    # request's fate is unknown, so it is not Failed. Its trigger delivers it again.
                    self._ledger.release(
                        request.idempotency_key, now=self._clock.now(), reconcile_since=reconcile_since
                    )
                    raise TransientFailure(request, error.info) from None
                if not error.info.retryable:
                    return self._finish(Outcome("failed", request, error=error.info))
                attempt += 1
                delay = self._retry.next_delay(
                    attempt,
                    retry_after=error.retry_after,
                    now=self._clock.now(),
                    deadline=deadline,
                    rng=self._rng,
                )
                if delay is None:
                    self._ledger.release(
                        request.idempotency_key, now=self._clock.now(), reconcile_since=reconcile_since
                    )
                    raise TransientFailure(request, error.info) from None
                logger.info(
                    "transient CBR failure, retrying",
                    extra={
                        "error_code": error.info.code,
                        "attempt": attempt,
                        "delay_seconds": round(delay, 3),
                    },
                )
                self._observer.request_retried(request, attempt, delay, error.info)
                self._clock.sleep(delay)

    def _find_existing(self, request: BackupRequest, since: float) -> dict[str, Any] | None:
        start = datetime.fromtimestamp(since - RECONCILE_SKEW_SECONDS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        backups = self._cbr.list_backups(
            request.project_id,
            region=request.region,
            vault_id=request.vault_id,
            name=request.name,
            start_time=start,
        )
        for backup in backups:
            checkpoint_id = backup.get("checkpoint_id")
            if checkpoint_id:
                return self._describe(request, str(checkpoint_id), backup)
        return None

    def _describe(self, request: BackupRequest, checkpoint_id: str, backup: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint found by reconciliation, as ShowCheckpoint tells it.

        It exists (a backup names it), so a permanent refusal to describe it (404 BackupService.6217
        right after the create, or no permission to read it) must not turn the request into a Failed:
        the checkpoint is then reported from what its backup says.
        """
        try:
            checkpoint = self._cbr.show_checkpoint(request.project_id, checkpoint_id, region=request.region)
            return checkpoint.model_dump(mode="json")
        except CbrCallFailed as error:
            if error.info.retryable:
                raise
            logger.warning(
                "ShowCheckpoint refused a checkpoint found by reconciliation; reporting it from its backup",
                extra={"checkpoint_id": checkpoint_id, "error_code": error.info.code},
            )
        described = {
            "id": checkpoint_id,
            "project_id": request.project_id,
            "status": backup.get("status") or "protecting",
            "created_at": backup.get("created_at") or "",
            "extra_info": {"name": backup.get("name"), "description": backup.get("description")},
        }
        return CheckpointCreate.model_validate(described).model_dump(mode="json")

    def _finish(self, outcome: Outcome) -> Outcome:
        self._ledger.complete(outcome.item.idempotency_key, StoredOutcome.of(outcome), now=self._clock.now())
        return outcome
