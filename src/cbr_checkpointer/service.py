"""The rules of the operation: one checkpoint per idempotency key, retries, and what ends as which outcome."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any, NoReturn

from cbr_checkpointer.domain import (
    BackupRequest,
    Busy,
    CbrCallFailed,
    Claimed,
    Completed,
    ErrorInfo,
    LedgerUnavailable,
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
from cbr_checkpointer.values import replace

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
        if deadline - claimed_at < self._retry.safety_margin + MIN_CALL_SECONDS:
            # Not started: one create could not be waited for and still leave the time to record and
            # publish it. Its trigger delivers it again (an item already finished replays from the ledger).
            info = ErrorInfo(
                kind="timeout",
                message="too little of the invocation's time left to start this request",
                code="NoTimeLeft",
                retryable=True,
            )
            raise TransientFailure(item, info)
        try:
            claim = self._ledger.claim(
                item.idempotency_key, now=claimed_at, lease_until=deadline, request=pinned_request(item)
            )
        except LedgerUnavailable as error:
            raise TransientFailure(item, error.info()) from error
        if isinstance(claim, Completed):
            if not isinstance(claim.result, StoredOutcome):
                raise TypeError(
                    f"the ledger holds a completion step under request key {item.idempotency_key!r}"
                )
            differences = _differences(claim.request, item)
            if differences:
                return _key_reused(item, differences)
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
        differences = _differences(claim.request, request)
        if differences:
            self._release(request, reconcile_since)
            return _key_reused(request, differences)
        if claim.request is not None and claim.request["body"] != request.body:
            # An earlier delivery may have sent the body it pinned (its name rendered from another
            # time): look for that one, and send that one, so that the key still means one checkpoint.
            logger.info(
                "using the request as first claimed", extra={"idempotency_key": request.idempotency_key}
            )
            request = replace(request, body=claim.request["body"])
        attempt = 0
        spent = 0  # the attempts that count against max_attempts: a throttled create never reached CBR
        while True:
            reconciling = reconcile_since is not None
            try:
                existing = None if reconcile_since is None else self._find_existing(request, reconcile_since)
                if existing is not None:
                    logger.info(
                        "checkpoint found by reconciliation", extra={"checkpoint_id": existing.get("id")}
                    )
                    return self._finish(Outcome("created", request, checkpoint=existing), deadline=deadline)
                reconciling = False
                time_left = deadline - self._retry.safety_margin - self._clock.now()
                created = self._cbr.create_checkpoint(
                    request.project_id,
                    request.body,
                    region=request.region,
                    time_left=max(time_left, MIN_CALL_SECONDS),
                )
                self._record_owner(request, created.id)
                return self._finish(
                    Outcome("created", request, checkpoint=created.model_dump(mode="json")), deadline=deadline
                )
            except LedgerUnavailable as error:
                # Raised only by the search: whether a checkpoint found is this key's is not known.
                self._hand_back(request, error.info(), reconcile_since)
            except CbrCallFailed as error:
                if error.ambiguous and reconcile_since is None:
                    reconcile_since = claimed_at
                if not error.info.retryable and reconciling:
                    # CBR may hold a checkpoint for this key but would not let us look for it: the
                    # request's fate is unknown, so it is not Failed. Its trigger delivers it again.
                    self._hand_back(request, error.info, reconcile_since)
                if not error.info.retryable:
                    return self._finish(Outcome("failed", request, error=error.info), deadline=deadline)
                attempt += 1
                if error.info.kind != "throttled" or error.ambiguous:
                    spent += 1
                delay = self._retry.next_delay(
                    attempt,
                    retry_after=error.retry_after,
                    now=self._clock.now(),
                    deadline=deadline,
                    rng=self._rng,
                    spent=spent,
                )
                if delay is None:
                    self._hand_back(request, error.info, reconcile_since)
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

    def _hand_back(self, request: BackupRequest, info: ErrorInfo, reconcile_since: float | None) -> NoReturn:
        """Give the key back and raise for the trigger to deliver the request again."""
        self._release(request, reconcile_since)
        raise TransientFailure(request, info) from None

    def _release(self, request: BackupRequest, reconcile_since: float | None) -> None:
        """Give the key back. A ledger that will not take the release only delays the next delivery: the
        lease runs out at this invocation's deadline, and the next claimer reconciles."""
        try:
            self._ledger.release(
                request.idempotency_key, now=self._clock.now(), reconcile_since=reconcile_since
            )
        except LedgerUnavailable as error:
            logger.warning(
                "the ledger did not take the release; the key is held until its lease runs out",
                extra={"idempotency_key": request.idempotency_key, "error_code": error.code},
            )

    def _record_owner(self, request: BackupRequest, checkpoint_id: str) -> None:
        """Record the checkpoint just made as this key's, so that no other key's reconciliation adopts it.

        Best effort: the checkpoint is made whatever the ledger says, and is reported as this key's."""
        try:
            owned = self._ledger.own(checkpoint_id, request.idempotency_key, now=self._clock.now())
        except LedgerUnavailable as error:
            owned = True
            logger.warning(
                "the ledger did not record the checkpoint's owner",
                extra={"checkpoint_id": checkpoint_id, "error_code": error.code},
            )
        if not owned:
            logger.error(
                "a checkpoint just made was already adopted by another key",
                extra={"checkpoint_id": checkpoint_id, "idempotency_key": request.idempotency_key},
            )

    def _find_existing(self, request: BackupRequest, since: float) -> dict[str, Any] | None:
        """The checkpoint an earlier holder of the key made, if any: one of the vault's backups named
        exactly as the request (the API's name filter may match more), created since the claim less the
        skew, and owned by no other key. Adopting it records this key as its owner, by one conditional
        write, so two keys that gave one name to one vault within the window never adopt one checkpoint.
        """
        start = datetime.fromtimestamp(since - RECONCILE_SKEW_SECONDS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        backups = self._cbr.list_backups(
            request.project_id,
            region=request.region,
            vault_id=request.vault_id,
            name=request.name,
            start_time=start,
        )
        seen: set[str] = set()
        for backup in backups:
            checkpoint_id = backup.get("checkpoint_id")
            if not checkpoint_id or backup.get("name") != request.name or checkpoint_id in seen:
                continue
            seen.add(str(checkpoint_id))
            if self._ledger.own(str(checkpoint_id), request.idempotency_key, now=self._clock.now()):
                return self._describe(request, str(checkpoint_id), backup)
            logger.info(
                "a checkpoint of the same name belongs to another key; not adopted",
                extra={"checkpoint_id": checkpoint_id},
            )
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

    def _finish(self, outcome: Outcome, *, deadline: float) -> Outcome:
        """Store the outcome (retried as the retry policy allows), then answer it. CBR has acted already,
        so a ledger that will not store it does not hold the outcome back: it is published all the same,
        and a redelivery of the key finds the checkpoint by reconciliation once the lease runs out."""
        attempt = 1
        while True:
            try:
                self._ledger.complete(
                    outcome.item.idempotency_key, StoredOutcome.of(outcome), now=self._clock.now()
                )
                return outcome
            except LedgerUnavailable as error:
                delay = self._retry.next_delay(
                    attempt, retry_after=None, now=self._clock.now(), deadline=deadline, rng=self._rng
                )
                if delay is None:
                    logger.warning(
                        "the ledger did not store the outcome; publishing it unstored",
                        extra={"idempotency_key": outcome.item.idempotency_key, "error_code": error.code},
                    )
                    return outcome
                attempt += 1
                self._clock.sleep(delay)


def pinned_request(request: BackupRequest) -> dict[str, Any]:
    """What the ledger pins at a key's first claim: the body to send, and what tells one request from
    another (its project, region and, when its name is a template, the template rather than the name
    one delivery rendered from it)."""
    return {
        "project_id": request.project_id,
        "region": request.region,
        "name_template": request.name_template,
        "body": request.body,
    }


def _differences(pinned: dict[str, Any] | None, request: BackupRequest) -> list[str]:
    """The fields in which `request` differs from the request its key was first claimed for.

    A name rendered from a template is compared as its template: two deliveries of one request render
    it from two times, and that is not a different request (the first rendering is the one sent).
    """
    if pinned is None:
        return []
    first = pinned["body"]["checkpoint"]
    again = request.body["checkpoint"]
    fields = [
        name
        for name, was, now in (
            ("project_id", pinned.get("project_id"), request.project_id),
            ("region", pinned.get("region"), request.region),
            ("vault_id", first.get("vault_id"), again["vault_id"]),
        )
        if was != now
    ]
    was_parameters = dict(first.get("parameters") or {})
    now_parameters = dict(again.get("parameters") or {})
    if pinned.get("name_template") is not None or request.name_template is not None:
        was_parameters["name"] = pinned.get("name_template") or was_parameters.get("name")
        now_parameters["name"] = request.name_template or now_parameters.get("name")
    fields += [
        name
        for name in sorted(was_parameters.keys() | now_parameters.keys())
        if was_parameters.get(name) != now_parameters.get(name)
    ]
    return fields


def _key_reused(request: BackupRequest, differences: list[str]) -> Outcome:
    """The refusal of a key already claimed for another request: nothing is sent, nothing stored."""
    message = (
        "this idempotency key was first used for a different request (it differs in "
        f"{', '.join(differences)}); use a new key for a new request"
    )
    logger.warning("idempotency key reused", extra={"idempotency_key": request.idempotency_key})
    return Outcome("rejected", request, error=ErrorInfo("validation", message, code="IdempotencyKeyReused"))
