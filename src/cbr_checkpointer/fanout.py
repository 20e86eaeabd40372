"""The rules of a selection: list the vaults it matches, and turn them into one request per vault.

- Listing: a vault must match every criterion. Tags are asked of the tag query; `policy_id` and
  `object_type` of ListVault (one call with both filters); `all` of ListVault unfiltered, only when
  nothing else narrows the selection. Several listings are intersected. A transient failure is
  retried under the one retry policy, then the trigger is handed back (`TransientFailure`): the
  retry lists again. A permanent one (refused, or more vaults than a listing reads) ends the
  selection as an Expansion with an error: nothing is backed up, and retrying would fail alike.
- Running: up to `inline_max` vaults run in this invocation as ordinary requests. More go to the
  request queue, one message per vault, where the SQS path runs them. Either way a vault's request
  has the key `expand_selection` derives from the selection's key, so a retried trigger, which
  lists and sends again, finds the vaults it already did in the ledger: none gets a second checkpoint.
- Time: sends stop when the invocation has no time left for them, and the trigger is handed back.
- A dry run takes the same path; every vault's request is a dry run, so nothing is created.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from cbr_checkpointer.domain import (
    BackupRequest,
    CbrCallFailed,
    ErrorInfo,
    Expansion,
    Selection,
    TransientFailure,
    WorkItem,
)
from cbr_checkpointer.expansion import expand_selection
from cbr_checkpointer.observability import logger
from cbr_checkpointer.ports import Clock, RequestQueue, SystemClock, Vaults
from cbr_checkpointer.retry import RetryPolicy

# Messages sent between two looks at the clock (ten SendMessageBatch calls).
SEND_CHUNK = 100
# The least time worth starting a chunk of sends with (beyond the retry policy's safety margin).
MIN_SEND_SECONDS = 2.0

T = TypeVar("T")


class FanoutService:
    """Expands selections: lists their vaults, and either returns the requests to run here or sends
    them to the request queue."""

    def __init__(
        self,
        vaults: Vaults,
        queue: RequestQueue | None,
        *,
        inline_max: int,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if inline_max < 0:
            raise ValueError(f"inline_max must not be negative, not {inline_max}")
        self._vaults = vaults
        self._queue = queue
        self._inline_max = inline_max
        self._retry = retry or RetryPolicy()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def expand(self, selection: Selection, *, deadline: float) -> tuple[Expansion, list[WorkItem]]:
        """The expansion of `selection` and the requests to run in this invocation (none when they went
        to the request queue). Raises TransientFailure when the trigger must be delivered again."""
        try:
            vault_ids = sorted(self._list(selection, deadline=deadline))
        except CbrCallFailed as error:
            logger.error(
                "selection not expanded: listing its vaults failed for good",
                extra={"idempotency_key": selection.idempotency_key, "error": error.info.message},
            )
            return Expansion(selection, error=error.info), []
        items = expand_selection(selection, vault_ids)
        if len(items) <= self._inline_max:
            return Expansion(selection, tuple(vault_ids)), items
        requests = [item for item in items if isinstance(item, BackupRequest)]
        self._send(selection, [request.vault_id for request in requests], deadline=deadline)
        here: list[WorkItem] = [item for item in items if not isinstance(item, BackupRequest)]
        return Expansion(selection, tuple(vault_ids), queued=len(requests)), here

    def _list(self, selection: Selection, *, deadline: float) -> set[str]:
        """The ids of the vaults matching every criterion of the selection."""
        selector = selection.selector
        project_id = selection.project_id
        listings: list[set[str]] = []
        tags = selector.get("tags")
        if tags:
            listings.append(
                set(
                    self._call(
                        selection,
                        lambda: self._vaults.vault_ids_with_tags(project_id, tags, region=selection.region),
                        deadline,
                    )
                )
            )
        policy_id, object_type = selector.get("policy_id"), selector.get("object_type")
        if policy_id is not None or object_type is not None or not listings:
            vaults = self._call(
                selection,
                lambda: self._vaults.list_vaults(
                    project_id, region=selection.region, policy_id=policy_id, object_type=object_type
                ),
                deadline,
            )
            listings.append({vault.id for vault in vaults})
        return set.intersection(*listings)

    def _call(self, selection: Selection, call: Callable[[], T], deadline: float) -> T:
        """`call()`, retried on transient failures as the policy allows; a transient failure that outlives
        them hands the trigger back."""
        attempt = 1
        while True:
            try:
                return call()
            except CbrCallFailed as error:
                if not error.info.retryable:
                    raise
                delay = self._retry.next_delay(
                    attempt,
                    retry_after=error.retry_after,
                    now=self._clock.now(),
                    deadline=deadline,
                    rng=self._rng,
                )
                if delay is None:
                    raise TransientFailure(selection, error.info) from None
                logger.info(
                    "listing a selection's vaults failed transiently, retrying", extra={"attempt": attempt}
                )
                self._clock.sleep(delay)
                attempt += 1

    def _send(self, selection: Selection, vault_ids: Sequence[str], *, deadline: float) -> None:
        """Every vault's message on the request queue, or TransientFailure for the trigger to be retried."""
        if self._queue is None:
            raise TransientFailure(
                selection,
                ErrorInfo(
                    "api",
                    f"the selection matched {len(vault_ids)} vaults, more than FANOUT_INLINE_MAX "
                    f"({self._inline_max}), and REQUEST_QUEUE_URL is not set to fan them out",
                    code="RequestQueueNotConfigured",
                    retryable=True,
                ),
            )
        for start in range(0, len(vault_ids), SEND_CHUNK):
            if self._clock.now() + MIN_SEND_SECONDS > deadline - self._retry.safety_margin:
                raise TransientFailure(
                    selection,
                    ErrorInfo(
                        "timeout",
                        f"sent {start} of {len(vault_ids)} vaults to the request queue before the "
                        "invocation ran out of time; the retried trigger sends the rest",
                        code="ExpansionOutOfTime",
                        retryable=True,
                    ),
                )
            failures = self._queue.send_vaults(selection, vault_ids[start : start + SEND_CHUNK])
            failed = [failure for failure in failures if failure is not None]
            if failed:
                first = failed[0]
                raise TransientFailure(
                    selection,
                    ErrorInfo(
                        "api",
                        f"the request queue did not take {len(failed)} of {len(failures)} vault messages "
                        f"({first.code}: {first.message}); the retried trigger sends them again",
                        code=first.code,
                        http_status=first.http_status,
                        retryable=True,
                    ),
                )
