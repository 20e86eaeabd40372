"""In-memory stand-ins for every port, for unit tests: no sockets, no sleeping, no wall clock."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx

from cbr_checkpointer import http
from cbr_checkpointer.aws import AwsError
from cbr_checkpointer.domain import (
    BackupRequest,
    ClaimResult,
    ErrorInfo,
    Expansion,
    LedgerUnavailable,
    Outcome,
    QueueUnavailable,
    Selection,
    StoredResult,
    WatchCheck,
    WorkItem,
)
from cbr_checkpointer.ledger import MemoryLedger
from cbr_checkpointer.models import CheckpointCreate

CbrAnswer = CheckpointCreate | Exception


class FakeCbr:
    """CBR with scripted answers. Each call records `(name, arguments)`.

    `creates` is a queue of answers for CreateCheckpoint (an exception instance is raised); once empty,
    each create answers a new checkpoint. `status`, `backups` and `logs` answer ShowCheckpoint,
    ListBackups and ListOpLogs (an exception instance is raised instead). Every call's arguments
    include the `region` it was sent to.
    """

    def __init__(self) -> None:
        self.creates: list[CbrAnswer] = []
        self.status: str | Exception = "protecting"
        self.backups: list[dict[str, Any]] | Exception = []
        self.logs: list[dict[str, Any]] | Exception = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        # Told the name of every call as it is made (to move a fake clock by a call's duration).
        self.on_call: Callable[[str], None] = lambda name: None

    def create_checkpoint(
        self, project_id: str, body: Mapping[str, Any], *, region: str | None, time_left: float | None = None
    ) -> CheckpointCreate:
        arguments = {"project_id": project_id, "body": body, "time_left": time_left, "region": region}
        self.calls.append(("create", arguments))
        self.on_call("create")
        answer = self.creates.pop(0) if self.creates else checkpoint(f"cp-{len(self.calls)}", project_id)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def show_checkpoint(self, project_id: str, checkpoint_id: str, *, region: str | None) -> CheckpointCreate:
        self.calls.append(
            ("show", {"project_id": project_id, "checkpoint_id": checkpoint_id, "region": region})
        )
        self.on_call("show")
        if isinstance(self.status, Exception):
            raise self.status
        return checkpoint(checkpoint_id, project_id, self.status)

    def list_backups(self, project_id: str, *, region: str | None, **filters: str) -> list[dict[str, Any]]:
        self.calls.append(("backups", {**filters, "region": region}))
        self.on_call("backups")
        if isinstance(self.backups, Exception):
            raise self.backups
        return self.backups

    def list_operation_logs(
        self, project_id: str, *, region: str | None, max_pages: int = 5, **filters: str
    ) -> list[dict[str, Any]]:
        self.calls.append(("logs", {**filters, "region": region}))
        self.on_call("logs")
        if isinstance(self.logs, Exception):
            raise self.logs
        return self.logs

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def checkpoint(checkpoint_id: str, project_id: str, status: str = "protecting") -> CheckpointCreate:
    return CheckpointCreate.model_validate(
        {"id": checkpoint_id, "project_id": project_id, "status": status, "created_at": "2026-11-27T02:00:00"}
    )


def backup_task(
    checkpoint_id: str, resource_id: str, status: str, code: str = "", message: str = ""
) -> dict[str, Any]:
    """One backup task of ListOpLogs, as CBR lists it: its checkpoint, resource, status and error."""
    return {
        "checkpoint_id": checkpoint_id,
        "operation_type": "backup",
        "status": status,
        "error_info": {"code": code, "message": message},
        "extra_info": {
            "resource": {"id": resource_id, "type": "OS::Cinder::Volume", "name": f"task-{resource_id[:4]}"},
            "backup": {"backup_id": f"b-of-{resource_id[:4]}"},
        },
    }


class FakeClock:
    """Time that moves only when told to, or when someone sleeps."""

    def __init__(self, now: float) -> None:
        self._now = now
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._now += seconds

    def advance(self, seconds: float) -> None:
        self._now += seconds


class FakeEventSink:
    """Keeps what it published; refuses the outcomes (and expansions) of the keys in `refused_keys`."""

    def __init__(self) -> None:
        self.published: list[Outcome] = []
        self.expansions: list[Expansion] = []
        self.refused_keys: set[str] = set()

    def publish_expansions(self, expansions: Sequence[Expansion]) -> list[Expansion]:
        refused = [
            expansion for expansion in expansions if expansion.selection.idempotency_key in self.refused_keys
        ]
        self.expansions.extend(expansion for expansion in expansions if expansion not in refused)
        return refused

    def publish(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        unpublished = [outcome for outcome in outcomes if outcome.item.idempotency_key in self.refused_keys]
        self.published.extend(
            outcome for outcome in outcomes if outcome.item.idempotency_key not in self.refused_keys
        )
        return unpublished


@dataclass(frozen=True)
class ListedVault:
    id: str


class FakeVaults:
    """A project's vaults: `tags` (vault id -> {key: value}), `policies` (vault id -> policy id) and
    `object_types` (vault id -> type). `failures` are raised, one a call, before any answer."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.policies: dict[str, str] = {}
        self.object_types: dict[str, str] = {}
        self.failures: list[Exception] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def add(
        self,
        vault_id: str,
        *,
        tags: Mapping[str, str] | None = None,
        policy_id: str | None = None,
        object_type: str = "server",
    ) -> None:
        self.tags[vault_id] = dict(tags or {})
        if policy_id is not None:
            self.policies[vault_id] = policy_id
        self.object_types[vault_id] = object_type

    def list_vaults(
        self,
        project_id: str,
        *,
        region: str | None,
        policy_id: str | None = None,
        object_type: str | None = None,
    ) -> list[ListedVault]:
        self.calls.append(("list_vaults", {"policy_id": policy_id, "object_type": object_type}))
        if self.failures:
            raise self.failures.pop(0)
        return [
            ListedVault(vault_id)
            for vault_id in self.tags
            if (policy_id is None or self.policies.get(vault_id) == policy_id)
            and (object_type is None or self.object_types.get(vault_id) == object_type)
        ]

    def vault_ids_with_tags(
        self, project_id: str, tags: Mapping[str, Sequence[str]], *, region: str | None
    ) -> list[str]:
        self.calls.append(("vault_ids_with_tags", {"tags": dict(tags)}))
        if self.failures:
            raise self.failures.pop(0)
        return [
            vault_id
            for vault_id, carried in self.tags.items()
            if all(key in carried and (not values or carried[key] in values) for key, values in tags.items())
        ]


class FakeRequestQueue:
    """Keeps the vaults it was given per selection key; `refuse` names vault ids it fails (once each, with
    `refusal`), `down` fails every one."""

    def __init__(self) -> None:
        self.sent: list[tuple[Selection, str]] = []
        self.refuse: set[str] = set()
        self.refusal = QueueUnavailable("ThrottlingException", "slow down")
        self.down: QueueUnavailable | None = None

    def send_vaults(self, selection: Selection, vault_ids: Sequence[str]) -> list[QueueUnavailable | None]:
        results: list[QueueUnavailable | None] = []
        for vault_id in vault_ids:
            if self.down is not None:
                results.append(self.down)
            elif vault_id in self.refuse:
                self.refuse.discard(vault_id)
                results.append(self.refusal)
            else:
                self.sent.append((selection, vault_id))
                results.append(None)
        return results


class FakeWatchQueue:
    """Keeps the checks it was given as `(check, delay_seconds)`; `down` makes it refuse every one."""

    def __init__(self) -> None:
        self.sent: list[tuple[WatchCheck, int]] = []
        self.down: QueueUnavailable | None = None

    def send(self, check: WatchCheck, delay_seconds: int) -> None:
        if self.down is not None:
            raise self.down
        self.sent.append((check, delay_seconds))

    def send_all(self, checks: Sequence[tuple[WatchCheck, int]]) -> list[QueueUnavailable | None]:
        if self.down is not None:
            return [self.down for _ in checks]
        self.sent.extend(checks)
        return [None for _ in checks]


@dataclass
class RecordingObserver:
    """Everything the observer hooks were told, in order."""

    started: list[WorkItem] = field(default_factory=list)
    retried: list[tuple[str, int, float, str | None]] = field(default_factory=list)
    finished: list[tuple[WorkItem, Outcome | BaseException]] = field(default_factory=list)
    published: list[Outcome] = field(default_factory=list)
    unpublished: list[Outcome] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    def request_started(self, item: WorkItem) -> None:
        self.started.append(item)

    def request_retried(
        self, item: BackupRequest, attempt: int, delay_seconds: float, error: ErrorInfo
    ) -> None:
        self.retried.append((item.idempotency_key, attempt, delay_seconds, error.code))

    def request_finished(self, item: WorkItem, result: Outcome | BaseException) -> None:
        self.finished.append((item, result))

    def events_published(self, published: Sequence[Outcome], unpublished: Sequence[Outcome]) -> None:
        self.published.extend(published)
        self.unpublished.extend(unpublished)

    def invocation_failed(self, error: BaseException) -> None:
        self.failures.append(error)


class FakeSqs:
    """The AWS JSON client of SQS, in memory: takes SendMessage / SendMessageBatch, or fails as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail_with: AwsError | None = None
        # Entry id -> the `Failed` entry SQS reports for it (once).
        self.batch_failures: dict[str, dict[str, Any]] = {}

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((operation, payload))
        if operation == "SendMessageBatch":
            failed = [
                {"Id": entry["Id"], **self.batch_failures.pop(entry["Id"])}
                for entry in payload["Entries"]
                if entry["Id"] in self.batch_failures
            ]
            failed_ids = {entry["Id"] for entry in failed}
            ok = [{"Id": entry["Id"]} for entry in payload["Entries"] if entry["Id"] not in failed_ids]
            return {"Successful": ok, "Failed": failed}
        return {"MessageId": "m"}

    def bodies(self) -> list[tuple[dict[str, Any], int]]:
        """(watch, DelaySeconds) of every message sent, in order."""
        found: list[tuple[dict[str, Any], int]] = []
        for operation, payload in self.sent:
            entries = payload["Entries"] if operation == "SendMessageBatch" else [payload]
            found.extend(
                (json.loads(entry["MessageBody"])["watch"], entry["DelaySeconds"]) for entry in entries
            )
        return found


class FlakyLedger:
    """The MemoryLedger, except that the operations named in `down` raise LedgerUnavailable."""

    def __init__(self, ttl_seconds: float = 7 * 24 * 3600) -> None:
        self.memory = MemoryLedger(ttl_seconds=ttl_seconds)
        self.down: set[str] = set()
        # Operation -> how many of its next calls raise LedgerUnavailable.
        self.fail_next: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []

    def claim(
        self, key: str, *, now: float, lease_until: float, request: dict[str, Any] | None = None
    ) -> ClaimResult:
        self._call("claim", key)
        return self.memory.claim(key, now=now, lease_until=lease_until, request=request)

    def complete(self, key: str, result: StoredResult, *, now: float) -> None:
        self._call("complete", key)
        self.memory.complete(key, result, now=now)

    def own(self, checkpoint_id: str, key: str, *, now: float) -> bool:
        self._call("own", key)
        return self.memory.own(checkpoint_id, key, now=now)

    def release(self, key: str, *, now: float, reconcile_since: float | None) -> None:
        self._call("release", key)
        self.memory.release(key, now=now, reconcile_since=reconcile_since)

    def _call(self, operation: str, key: str) -> None:
        self.calls.append((operation, key))
        failing = self.fail_next.get(operation, 0) > 0
        if failing:
            self.fail_next[operation] -= 1
        if operation in self.down or failing:
            raise LedgerUnavailable("InternalServerError", f"{operation} failed", http_status=500)


class HighestJitter(random.Random):
    """Jitter that always picks the top of its range, so a retry policy's bound itself is seen."""

    def uniform(self, a: float, b: float) -> float:
        return b


class AnsweringTransport:
    """An HTTP transport answered in memory by `answer`, as httpx2's `MockTransport` is.

    `answer` reads each request as httpx2 parses it (`httpx2.Request`: URL, headers, body) and returns an
    `httpx2.Response`, or raises one of `cbr_checkpointer.http`'s transport errors. The timeout each
    request was sent with is kept in `timeouts`.
    """

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self._answer = answer
        self.timeouts: list[http.Timeout] = []
        self.closed = False

    def send(self, request: http.Request, timeout: http.Timeout) -> http.Response:
        self.timeouts.append(timeout)
        reply = self._answer(
            httpx.Request(
                request.method, request.url, headers=list(request.headers.items()), content=request.content
            )
        )
        headers = http.Headers()
        for name, text in reply.headers.multi_items():
            headers.add(name, text)
        return http.Response(reply.status_code, headers, reply.read())

    def close(self) -> None:
        self.closed = True


class ScriptedStream:
    """A connection whose peer answers with `answer`, one chunk per read, then closes (reads give b"").

    It keeps what was written and the timeout of every read and write, and whether it was closed.
    `peer_closed` makes it readable while idle, as a socket is once its peer has closed it; `read_failure`
    and `write_failure` are raised by every read and write; `before_read` runs at every read (a test
    holding the answer back).
    """

    def __init__(
        self,
        answer: Sequence[bytes] = (),
        *,
        read_failure: Exception | None = None,
        write_failure: Exception | None = None,
        before_read: Callable[[], None] = lambda: None,
    ) -> None:
        self.answer = list(answer)
        self.read_failure = read_failure
        self.write_failure = write_failure
        self.before_read = before_read
        self.written = b""
        self.timeouts: list[tuple[str, float]] = []
        self.peer_closed = False
        self.closed = False

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self.timeouts.append(("read", timeout))
        self.before_read()
        if self.read_failure is not None:
            raise self.read_failure
        return self.answer.pop(0) if self.answer else b""

    def write(self, data: bytes, timeout: float) -> None:
        self.timeouts.append(("write", timeout))
        if self.write_failure is not None:
            raise self.write_failure
        self.written += data

    def is_readable(self) -> bool:
        return self.peer_closed

    def close(self) -> None:
        self.closed = True


class ScriptedNetwork:
    """A `ConnectionPool`'s connector that hands out `streams` in order, or raises `failure`; keeps the
    origin and the timeout of every connection it was asked for."""

    def __init__(self, *streams: ScriptedStream, failure: Exception | None = None) -> None:
        self.streams = list(streams)
        self.failure = failure
        self.connects: list[tuple[http.Origin, float]] = []

    def __call__(self, origin: http.Origin, timeout: float) -> http.NetworkStream:
        self.connects.append((origin, timeout))
        if self.failure is not None:
            raise self.failure
        return self.streams.pop(0)
