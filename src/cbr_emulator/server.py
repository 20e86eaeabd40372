"""The emulator: one loopback HTTP server answering IAM (`/v3/auth/tokens`) and CBR (`/v3/{project_id}/…`)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cbr_emulator.signing import signature_problem
from cbr_emulator.state import (
    OBJECT_RESOURCE_TYPES,
    OBJECT_TYPES,
    REGION,
    Backup,
    BoundResource,
    BusyMode,
    Checkpoint,
    EmulatorState,
    Fault,
    OperationLog,
    RateLimit,
    RecordedRequest,
    SkippedResource,
    TokenBucket,
    Vault,
)
from cbr_emulator.validation import (
    KEEP_FOREVER,
    TAG_KEY,
    TAG_VALUE,
    UUID,
    InvalidParameter,
    parse_backup_query,
    parse_create_checkpoint,
    parse_operation_log_query,
    parse_resource_instance_query,
    parse_vault_query,
)

IAM_TOKENS_PATH = "/v3/auth/tokens"
CBR_ROUTE = re.compile(
    r"/v3/(?P<project_id>[^/]+)"
    r"/(?P<collection>checkpoints|backups|operation-logs|vaults|vault/resource_instances/action)"
    r"(?:/(?P<item_id>[^/]+))?"
)
DEFAULT_PROJECT_ID = "0b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
SIGNATURE_FAILURE = "Incorrect IAM authentication information: verify aksk signature fail"
BUSY_CODE = "BackupService.0002"
BUSY_REASON = "The resource is being backed up."
# What a backup failure says when the test names no reason (an arbitrary code of the backup service).
BACKUP_FAILURE_CODE = "BackupService.9910"
BACKUP_FAILURE_MESSAGE = "The backup of the resource failed."
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iam_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    request_id: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(
        status, json.dumps(payload).encode(), {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    )


def cbr_error(status: int, code: str, message: str) -> Answer:
    return json_answer(status, {"error_code": code, "error_msg": message})


def gateway_error(
    status: int, code: str, message: str, request_id: str, headers: Mapping[str, str] | None = None
) -> Answer:
    return json_answer(status, {"error_code": code, "error_msg": message, "request_id": request_id}, headers)


def iam_error(status: HTTPStatus, message: str) -> Answer:
    return json_answer(status, {"error": {"code": status.value, "message": message, "title": status.phrase}})


def fault_answer(status: int, fault: Fault) -> Answer:
    if isinstance(fault.body, dict):
        return json_answer(status, fault.body, fault.headers)
    return Answer(status, fault.body or b"", {"Content-Type": "text/plain; charset=utf-8", **fault.headers})


def lookup(document: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def json_or_none(body: bytes) -> Any | None:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class Emulator:
    """Huawei IAM + CBR on one loopback port. Thread-safe; tests read its state while it serves."""

    def __init__(
        self,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        ak: str = "AKEXAMPLE",
        sk: str = "SKEXAMPLE",
        user_name: str = "ops",
        password: str = "pw",  # noqa: S107 - a local test double's well-known credential
        domain_name: str = "acme",
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl_seconds: float = 86400,
        latency: float = 0.0,
        backup_duration: float | None = None,
        create_rate_limit: RateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project_id = project_id
        self.ak = ak
        self.sk = sk
        self.user_name = user_name
        self.password = password
        self.domain_name = domain_name
        self.host = host
        self.port = port
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.latency = latency
        # Seconds a checkpoint stays `protecting` before it ends `available` (or `error` for the resources
        # given to fail_resources); None: it stays `protecting` until complete_checkpoint is called.
        # Read when the checkpoint is next looked at, so changing it also moves existing checkpoints.
        self.backup_duration = backup_duration
        self.faults: list[Fault] = []
        self._initial_latency = latency
        self._initial_backup_duration = backup_duration
        self._initial_create_rate_limit = create_rate_limit
        # Seconds, for rate limits only: tests pass one they move by hand.
        self._clock = clock
        self._state = EmulatorState()
        self._state.create_bucket = self._bucket(create_rate_limit)
        self._lock = threading.Lock()
        # Set (and replaced) by reset/stop so that requests sleeping on a delay give up at once.
        self._wake = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _HttpServer | None = None
        self._serving: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is None:
            self._server = _HttpServer((self.host, self.port), self)
            self._serving = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="cbr-emulator",
                daemon=True,
            )
            self._serving.start()
        return self

    def stop(self) -> None:
        server, serving = self._server, self._serving
        if server is None or serving is None:
            return
        self._server = self._serving = None
        server.shutdown()
        server.server_close()
        with self._lock:
            self._interrupt_waits()
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        serving.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return f"http://{self._server.server_name}:{self._server.server_port}"

    # -- test controls ---------------------------------------------------------------------------

    def add_vault(
        self,
        vault_id: str,
        resources: Iterable[Mapping[str, str]] | None = None,
        name: str | None = None,
        *,
        object_type: str = "server",
        policy_ids: Iterable[str] = (),
        tags: Mapping[str, str] | None = None,
        project_id: str | None = None,
        status: str = "available",
    ) -> None:
        """Create (or replace) a vault with these bound resources: `{"id", "type"?, "name"?}` each.

        The resources' type defaults to what a vault of `object_type` protects. `policy_ids` are the
        policies applied to it, `tags` its tags; `project_id` defaults to the emulator's project.
        ListVault lists vaults in the order they were first added.
        """
        if not UUID.fullmatch(vault_id):
            raise ValueError(f"vault id {vault_id!r} is not a UUID, so no request could name it")
        if object_type not in OBJECT_TYPES:
            raise ValueError(f"object_type must be one of {', '.join(OBJECT_TYPES)}, not {object_type!r}")
        if isinstance(policy_ids, str):
            raise ValueError(f"policy_ids must be a list of policy ids, not the string {policy_ids!r}")
        for key, value in (tags or {}).items():
            if not TAG_KEY.fullmatch(key) or not TAG_VALUE.fullmatch(value):
                raise ValueError(f"tag {key!r}={value!r} is not one CBR would store")
        bound = {
            resource["id"]: BoundResource(
                id=resource["id"],
                type=resource.get("type", OBJECT_RESOURCE_TYPES.get(object_type, "OS::Nova::Server")),
                name=resource.get("name", f"ecs-{resource['id'][:4]}"),
            )
            for resource in resources or ()
        }
        vault = Vault(
            id=vault_id,
            name=name or f"vault-{vault_id[:4]}",
            project_id=project_id or self.project_id,
            created_at=utc_now(),
            resources=bound,
            object_type=object_type,
            policy_ids=frozenset(policy_ids),
            tags=dict(tags or {}),
            status=status,
        )
        with self._lock:
            self._state.vaults[vault_id] = vault

    def limit_creates(self, limit: RateLimit | None) -> None:
        """From now on, creates over `limit` are answered 429 APIGW.0308 (None: no limit). The bucket
        starts full; reset() goes back to the limit the emulator was made with."""
        with self._lock:
            self._state.create_bucket = self._bucket(limit)

    def mark_busy(self, resource_id: str, mode: BusyMode = "reject") -> None:
        """Creates touching this resource fail with 500 BackupService.0002 ("reject") or skip it ("skip")."""
        if mode not in ("skip", "reject"):
            raise ValueError(f"mode must be 'skip' or 'reject', not {mode!r}")
        with self._lock:
            self._state.busy[resource_id] = mode

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired: CBR answers it with 401 APIGW.0307."""
        with self._lock:
            moment = utc_now()
            for token in self._state.tokens:
                self._state.tokens[token] = moment

    def fail_resources(
        self,
        resource_ids: str | Iterable[str],
        code: str = BACKUP_FAILURE_CODE,
        message: str = BACKUP_FAILURE_MESSAGE,
    ) -> None:
        """Backups of these resources end in `error` (task `failed` with this code and message) when their
        checkpoint finishes, by `backup_duration` or by complete_checkpoint."""
        ids = [resource_ids] if isinstance(resource_ids, str) else list(resource_ids)
        with self._lock:
            for resource_id in ids:
                self._state.failing_resources[resource_id] = (code, message)

    def complete_checkpoint(self, checkpoint_id: str, failed_resources: Iterable[str] = ()) -> None:
        """Finish a checkpoint: its backups become `available`, or `error` for the failed resources
        (these and those given to fail_resources).

        The checkpoint itself becomes `error` when any resource failed, else `available`; each resource's
        backup task (operation log) ends `success` or `failed`."""
        with self._lock:
            self._finish(self._state.checkpoints[checkpoint_id], utc_now(), set(failed_resources))

    def reset(self) -> None:
        """Forget everything that happened (checkpoints, requests, faults, tokens, busy marks, counters) and
        restore the initial latency, backup duration and create rate limit (with a full bucket); vaults and
        credentials stay."""
        with self._lock:
            self._state.clear_activity()
            self.faults.clear()
            self.latency = self._initial_latency
            self.backup_duration = self._initial_backup_duration
            self._state.create_bucket = self._bucket(self._initial_create_rate_limit)
            self._interrupt_waits()

    # -- observations ----------------------------------------------------------------------------

    @property
    def created(self) -> list[dict[str, Any]]:
        """Every checkpoint created, as its create response's `checkpoint` object, oldest first."""
        with self._lock:
            return list(self._state.created)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (IAM and CBR), in the order they were answered."""
        with self._lock:
            return list(self._state.requests)

    @property
    def issued_tokens(self) -> list[str]:
        """Every IAM token issued since the last reset (expired ones too), oldest first: what must never
        leak."""
        with self._lock:
            return list(self._state.tokens)

    @property
    def operation_logs(self) -> list[dict[str, Any]]:
        """Every backup task (operation log) as ListOpLogs shows it, oldest first."""
        with self._lock:
            self._advance(utc_now())
            return [log.to_json() for log in self._state.operation_logs]

    @property
    def throttled_creates(self) -> int:
        """Creates answered 429 by the create rate limit (scripted faults not counted)."""
        with self._lock:
            return self._state.throttled_creates

    @property
    def token_requests(self) -> int:
        with self._lock:
            return self._state.token_requests

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._state.connections_opened

    @property
    def peak_in_flight(self) -> int:
        """The most requests the emulator was answering at the same moment."""
        with self._lock:
            return self._state.peak_in_flight

    @property
    def cbr_connections(self) -> int:
        """TCP connections that carried at least one CBR request (IAM-only connections not counted)."""
        with self._lock:
            return self._state.cbr_connections

    # -- serving (called by the request handler threads) -----------------------------------------

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._state.connections_opened += 1
            self._connections.add(connection)

    def _cbr_connection_used(self) -> None:
        with self._lock:
            self._state.cbr_connections += 1

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _interrupt_waits(self) -> None:
        self._wake.set()
        self._wake = threading.Event()

    def _handle(self, received: Received) -> Answer | None:
        """The answer to send, or None to close the connection without answering."""
        with self._lock:
            self._state.in_flight += 1
            self._state.peak_in_flight = max(self._state.peak_in_flight, self._state.in_flight)
        try:
            return self._answer(received)
        finally:
            with self._lock:
                self._state.in_flight -= 1

    def _answer(self, received: Received) -> Answer | None:
        is_iam = received.path == IAM_TOKENS_PATH
        with self._lock:
            wake = self._wake
            pause = 0.0 if is_iam else self.latency
            if is_iam and received.method == "POST":
                self._state.token_requests += 1
            fault = self._take_fault(received)
        rejection = self._check_password(received) if is_iam else self._check_token_or_signature(received)

        answer: Answer | None
        if fault is not None and fault.drop == "before":
            answer = None
        elif fault is not None and fault.status is not None and fault.drop == "none":
            answer = fault_answer(fault.status, fault)
        else:
            answer = self._dispatch(received, is_iam, rejection)
            if fault is not None and (fault.nulls or fault.omit) and answer.status == HTTPStatus.OK:
                answer = json_answer(answer.status, fault.reshape(json.loads(answer.body)), answer.headers)
        if fault is not None:
            pause += fault.delay
            if fault.drop == "after":
                answer = None
        if wake.wait(pause):
            # reset() or stop() came while this request waited: it belongs to a past test; leave no trace.
            return None

        with self._lock:
            self._state.requests.append(
                RecordedRequest(
                    method=received.method,
                    path=received.path,
                    query=received.query,
                    headers=received.headers,
                    body=received.body,
                    json=json_or_none(received.body),
                    authenticated=rejection is None,
                    status=0 if answer is None else answer.status,
                    held_seconds=pause,
                )
            )
        return answer

    def _take_fault(self, received: Received) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.matches(received.method, received.path):
                fault.times -= 1
                if fault.times == 0:
                    del self.faults[index]
                return fault
        return None

    def _dispatch(self, received: Received, is_iam: bool, rejection: Answer | None) -> Answer:
        if is_iam and received.method == "POST":
            return rejection or self._issue_token()
        routed = None if is_iam else self._route(received)
        if routed is None:
            return gateway_error(
                404,
                "APIGW.0101",
                "The API does not exist or has not been published in the environment",
                received.request_id,
            )
        if rejection is not None:
            return rejection
        project_id, operation = routed
        if project_id != self.project_id or received.headers.get("x-project-id", project_id) != project_id:
            return gateway_error(
                403, "APIGW.0302", "The IAM user is not authorized to access the API.", received.request_id
            )
        return operation()

    def _route(self, received: Received) -> tuple[str, Callable[[], Answer]] | None:
        route = CBR_ROUTE.fullmatch(received.path)
        if route is None:
            return None
        project_id = route["project_id"]
        match received.method, route["collection"], route["item_id"]:
            case "POST", "checkpoints", None:
                return (
                    project_id,
                    lambda: self._throttle_create(received) or self._create_checkpoint(received.body),
                )
            case "GET", "checkpoints", str(checkpoint_id):
                return project_id, lambda: self._show_checkpoint(checkpoint_id)
            case "GET", "backups", None:
                return project_id, lambda: self._list_backups(received.query)
            case "GET", "operation-logs", None:
                return project_id, lambda: self._list_operation_logs(received.query)
            case "GET", "operation-logs", str(operation_log_id):
                return project_id, lambda: self._show_operation_log(operation_log_id)
            case "GET", "vaults", None:
                return project_id, lambda: self._list_vaults(project_id, received.query)
            case "POST", "vault/resource_instances/action", None:
                return project_id, lambda: self._vault_resource_instances(project_id, received.body)
        return None

    # -- IAM -------------------------------------------------------------------------------------

    def _check_password(self, received: Received) -> Answer | None:
        document = json_or_none(received.body)
        methods = lookup(document, "auth", "identity", "methods")
        user = lookup(document, "auth", "identity", "password", "user")
        project = lookup(document, "auth", "scope", "project")
        if not isinstance(methods, list) or "password" not in methods or not isinstance(project, dict):
            return iam_error(HTTPStatus.BAD_REQUEST, "The request body is invalid.")
        claimed = (lookup(user, "name"), lookup(user, "password"), lookup(user, "domain", "name"))
        if claimed != (self.user_name, self.password, self.domain_name):
            return iam_error(HTTPStatus.UNAUTHORIZED, "The username or password is wrong.")
        in_scope = project.get("id") == self.project_id if "id" in project else project.get("name") == REGION
        if not in_scope:
            return iam_error(
                HTTPStatus.BAD_REQUEST, "Invalid auth.scope.project: no such project in this domain."
            )
        return None

    def _issue_token(self) -> Answer:
        issued_at = utc_now()
        expires_at = issued_at + self.token_ttl
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._state.tokens[token] = expires_at
        body = {
            "token": {
                "expires_at": iam_timestamp(expires_at),
                "issued_at": iam_timestamp(issued_at),
                "methods": ["password"],
                "project": {"id": self.project_id, "name": REGION, "domain": {"name": self.domain_name}},
                "roles": [],
                "catalog": [],
            }
        }
        return json_answer(HTTPStatus.CREATED, body, {"X-Subject-Token": token})

    # -- CBR -------------------------------------------------------------------------------------

    def _check_token_or_signature(self, received: Received) -> Answer | None:
        token = received.headers.get("x-auth-token")
        if token is not None:
            with self._lock:
                expires_at = self._state.tokens.get(token)
            if expires_at is None:
                message = "Incorrect IAM authentication information: decrypt token fail"
                return gateway_error(401, "APIGW.0301", message, received.request_id)
            if expires_at <= utc_now():
                return gateway_error(401, "APIGW.0307", "The token must be updated.", received.request_id)
            return None
        problem = signature_problem(
            received.method,
            received.path,
            received.query,
            received.headers,
            received.body,
            secret_keys={self.ak: self.sk},
            now=utc_now(),
        )
        if problem is None:
            return None
        return gateway_error(401, "APIGW.0301", f"{SIGNATURE_FAILURE}, {problem}", received.request_id)

    def _bucket(self, limit: RateLimit | None) -> TokenBucket | None:
        return None if limit is None else TokenBucket(limit, self._clock)

    def _throttle_create(self, received: Received) -> Answer | None:
        """The gateway's 429 when the create rate limit has no token left, else None (a token taken)."""
        with self._lock:
            bucket = self._state.create_bucket
            wait = 0.0 if bucket is None else bucket.take()
            if bucket is None or wait == 0.0:
                return None
            self._state.throttled_creates += 1
        message = (
            "The throttling threshold has been reached: "
            f"policy user over ratelimit,limit:{bucket.limit.rate:g},time:1 second"
        )
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if bucket.limit.retry_after else {}
        return gateway_error(429, "APIGW.0308", message, received.request_id, headers)

    def _create_checkpoint(self, body: bytes) -> Answer:
        try:
            request = parse_create_checkpoint(body)
        except InvalidParameter as invalid:
            return cbr_error(400, "BackupService.9900", str(invalid))
        with self._lock:
            vault = self._state.vaults.get(request.vault_id)
            if vault is None:
                return cbr_error(404, "BackupService.6105", f"Vault {request.vault_id} does not exist.")
            unbound = [
                resource_id for resource_id in request.resource_ids if resource_id not in vault.resources
            ]
            if unbound:
                return cbr_error(
                    400, "BackupService.6135", f"Resource {unbound[0]} is not in vault {vault.id}."
                )
            targets = [vault.resources[resource_id] for resource_id in request.resource_ids] or list(
                vault.resources.values()
            )
            busy = self._state.busy
            if any(busy.get(resource.id) == "reject" for resource in targets):
                return cbr_error(500, BUSY_CODE, f"{BUSY_REASON} Try again later.")
            checkpoint = Checkpoint(
                id=str(uuid.uuid4()),
                project_id=self.project_id,
                vault=vault,
                resources=[resource for resource in targets if resource.id not in busy],
                skipped=[SkippedResource(r, BUSY_CODE, BUSY_REASON) for r in targets if r.id in busy],
                name=request.name or f"manualbk_{secrets.token_hex(2)}",
                description=request.description,
                retention_duration=KEEP_FOREVER
                if request.retention_duration_days is None
                else request.retention_duration_days,
                created_at=utc_now(),
            )
            self._state.checkpoints[checkpoint.id] = checkpoint
            backups = [
                Backup(
                    id=str(uuid.uuid4()),
                    project_id=self.project_id,
                    checkpoint_id=checkpoint.id,
                    vault_id=vault.id,
                    name=checkpoint.name,
                    description=checkpoint.description,
                    resource=resource,
                    incremental=request.incremental,
                    auto_trigger=request.auto_trigger,
                    created_at=checkpoint.created_at,
                )
                for resource in checkpoint.resources
            ]
            self._state.backups.extend(backups)
            self._state.operation_logs.extend(
                OperationLog(
                    id=str(uuid.uuid4()),
                    project_id=self.project_id,
                    checkpoint_id=checkpoint.id,
                    vault_id=vault.id,
                    vault_name=vault.name,
                    backup_id=backup.id,
                    backup_name=backup.name,
                    incremental=backup.incremental,
                    resource=backup.resource,
                    started_at=checkpoint.created_at,
                )
                for backup in backups
            )
            created = checkpoint.to_json()
            self._state.created.append(created)
        return json_answer(200, {"checkpoint": created})

    def _show_checkpoint(self, checkpoint_id: str) -> Answer:
        with self._lock:
            self._advance(utc_now())
            checkpoint = self._state.checkpoints.get(checkpoint_id)
            shown = None if checkpoint is None else checkpoint.to_json()
        if shown is None:
            return cbr_error(404, "BackupService.6217", f"Checkpoint {checkpoint_id} does not exist.")
        return json_answer(200, {"checkpoint": shown})

    def _list_backups(self, query: dict[str, list[str]]) -> Answer:
        try:
            selection = parse_backup_query(query)
        except InvalidParameter as invalid:
            return cbr_error(400, "BackupService.9900", str(invalid))
        with self._lock:
            self._advance(utc_now())
            # Newest first, the API's default sort.
            matched = [backup for backup in reversed(self._state.backups) if selection.matches(backup)]
            page = [
                backup.to_json() for backup in matched[selection.offset : selection.offset + selection.limit]
            ]
        return json_answer(
            200,
            {"backups": page, "count": len(matched), "offset": selection.offset, "limit": selection.limit},
        )

    def _list_operation_logs(self, query: dict[str, list[str]]) -> Answer:
        try:
            selection = parse_operation_log_query(query)
        except InvalidParameter as invalid:
            return cbr_error(400, "BackupService.9900", str(invalid))
        with self._lock:
            self._advance(utc_now())
            matched = [log for log in reversed(self._state.operation_logs) if selection.matches(log)]
            page = [log.to_json() for log in matched[selection.offset : selection.offset + selection.limit]]
        return json_answer(
            200,
            {
                "operation_logs": page,
                "count": len(matched),
                "offset": selection.offset,
                "limit": selection.limit,
            },
        )

    def _list_vaults(self, project_id: str, query: dict[str, list[str]]) -> Answer:
        try:
            selection = parse_vault_query(project_id, query)
        except InvalidParameter as invalid:
            return cbr_error(400, "BackupService.9900", str(invalid))
        with self._lock:
            matched = [vault for vault in self._state.vaults.values() if selection.matches(vault)]
            page = [
                vault.to_json() for vault in matched[selection.offset : selection.offset + selection.limit]
            ]
        return json_answer(
            200, {"vaults": page, "count": len(matched), "limit": selection.limit, "offset": selection.offset}
        )

    def _vault_resource_instances(self, project_id: str, body: bytes) -> Answer:
        try:
            selection = parse_resource_instance_query(project_id, body)
        except InvalidParameter as invalid:
            return cbr_error(400, "BackupService.9900", str(invalid))
        with self._lock:
            matched = [vault for vault in self._state.vaults.values() if selection.matches(vault)]
            if selection.action == "count":
                return json_answer(200, {"total_count": len(matched)})
            page = [
                vault.to_tag_resource()
                for vault in matched[selection.offset : selection.offset + selection.limit]
            ]
        return json_answer(200, {"resources": page, "total_count": len(matched)})

    def _show_operation_log(self, operation_log_id: str) -> Answer:
        with self._lock:
            self._advance(utc_now())
            found = [log.to_json() for log in self._state.operation_logs if log.id == operation_log_id]
        if not found:
            return cbr_error(404, "BackupService.6500", "Operation log does not exist.")
        return json_answer(200, {"operation_log": found[0]})

    # -- the backup lifecycle (called with the lock held) ------------------------------------------

    def _advance(self, now: datetime) -> None:
        """Finish every protecting checkpoint whose backup_duration has passed."""
        if self.backup_duration is None:
            return
        due = now - timedelta(seconds=self.backup_duration)
        for checkpoint in self._state.checkpoints.values():
            if checkpoint.status == "protecting" and checkpoint.created_at <= due:
                self._finish(checkpoint, now, set())

    def _finish(self, checkpoint: Checkpoint, now: datetime, failed_resources: set[str]) -> None:
        failures = {
            resource.id: self._state.failing_resources.get(
                resource.id, (BACKUP_FAILURE_CODE, BACKUP_FAILURE_MESSAGE)
            )
            for resource in checkpoint.resources
            if resource.id in failed_resources or resource.id in self._state.failing_resources
        }
        checkpoint.status = "error" if failures else "available"
        checkpoint.protect_status = {
            resource.id: "error" if resource.id in failures else "available"
            for resource in checkpoint.resources
        }
        for backup in self._state.backups:
            if backup.checkpoint_id == checkpoint.id:
                backup.status = "error" if backup.resource.id in failures else "available"
        for log in self._state.operation_logs:
            if log.checkpoint_id == checkpoint.id:
                failure = failures.get(log.resource.id)
                log.status = "success" if failure is None else "failed"
                log.error_code, log.error_message = failure or ("", "")
                log.ended_at = now


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK stall keep-alive requests.
    disable_nagle_algorithm = True
    server: _HttpServer
    carried_cbr_request = False

    def setup(self) -> None:
        super().setup()
        self.server.emulator._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks read `Emulator.requests` instead of an access log."""

    def _serve(self) -> None:
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        received = Received(
            method=self.command,
            path=target.path,
            query=parse_qs(target.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            request_id=uuid.uuid4().hex,
        )
        if received.path != IAM_TOKENS_PATH and not self.carried_cbr_request:
            self.carried_cbr_request = True
            self.server.emulator._cbr_connection_used()
        answer = self.server.emulator._handle(received)
        if answer is None:
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            self.send_header("X-Request-Id", received.request_id)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            # The client gave up waiting (its timeout was shorter than a scripted delay).
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many connections at once; the default backlog of 5 makes the kernel drop SYNs.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query that can stall an offline machine.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.socket.getsockname()[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
