"""The exactly-once fault matrix: every scripted fault, in both trigger modes, delivered as the platform does.

A scenario scripts the CBR emulator (`Emulator.faults`, `mark_busy`, `expire_tokens`), a faulting proxy in
front of the CBR API and one in front of moto (EventBridge and the DynamoDB ledger), then hands one trigger
to the real handler and keeps handing it over the way Lambda does:

- timer: the Scheduler input invoked like an async invoke; a raise (or a timeout) means Lambda invokes it
  again with the same input and the same request id;
- sqs: a batch; `batchItemFailures` records come back with the same messageId and body.

Up to MAX_REDELIVERIES redeliveries, each in a new execution environment (a fresh runtime) that shares only
the DynamoDB ledger. A delivery that must outlive its deadline runs in a child process that is killed at
the deadline, as Lambda kills a timed-out invocation. A redelivery never comes while a lease taken by an
earlier delivery is still live (SQS' visibility timeout and Lambda's retry delay both outlast the
function's timeout); the driver waits for such a lease instead of the whole platform delay.

Every row is checked against the invariants (at most one checkpoint per idempotency key, every created
checkpoint reported, nothing lost, no Failed for a transient fault, consistent events) and the scenario's
expected verdict.

    python -m devtools.faults        # prints the table; exit status 1 when any row fails
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

import httpx2 as httpx

from cbr_checkpointer.local_context import LocalContext
from cbr_checkpointer.retry import RetryPolicy
from cbr_checkpointer.service import MIN_CALL_SECONDS
from cbr_emulator import Emulator, Fault, RecordedRequest
from devtools.records import sqs_record
from devtools.sandbox import (
    AWS_TEST_CREDENTIALS,
    HUAWEI_SK,
    IAM_USER,
    PROJECT_ID,
    REGION,
    RESOURCE_ID,
    SECOND_VAULT_ID,
    VAULT_ID,
    Sandbox,
)

Mode = Literal["timer", "sqs"]
MODES: tuple[Mode, ...] = ("timer", "sqs")
MAX_REDELIVERIES = 3
ROOT = Path(__file__).resolve().parents[2]
# A Lambda timeout just long enough to start a request (the service's safety margin and one call's
# shortest wait), and a failure held back until the safety margin begins (AT_THE_MARGIN seconds into the
# invocation): that failure goes straight back to the trigger instead of being retried within the
# invocation. The timeout also bounds how long a lease can stay live.
NO_TIME_TO_RETRY = RetryPolicy().safety_margin + MIN_CALL_SECONDS + 0.5
AT_THE_MARGIN = NO_TIME_TO_RETRY - RetryPolicy().safety_margin
EXPANDED = "CBR Backup Selection Expanded"
# Events that are not the outcome of one request: following a checkpoint, and listing a selection.
NOT_REQUEST_STAGES = frozenset({"completion", "selection"})
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "content-length"}
)

# --------------------------------------------------------------------------------------- fault proxy


@dataclass
class Rule:
    """A scripted answer for the next `times` requests that match.

    A request matches on its method, a substring of its path, the end of its `X-Amz-Target` and, with
    `when`, a predicate on its JSON body. `forward=False` answers without passing the request on (nothing
    takes effect upstream); `forward=True` lets the upstream act on it first and then answers this instead
    of what the upstream said. `body` is a JSON value, bytes, or a function of the request's JSON body.
    """

    method: str = "POST"
    path: str = ""
    target: str = ""
    when: Callable[[Any], bool] | None = None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    forward: bool = False
    times: int = 1
    delay: float = 0.0  # seconds the answer is held back

    def matches(self, method: str, path: str, target: str, document: Any) -> bool:
        if method != self.method.upper() or self.path not in path:
            return False
        if self.target and not target.endswith(self.target):
            return False
        return self.when is None or bool(self.when(document))

    def answer(self, document: Any) -> tuple[int, bytes, dict[str, str]]:
        body = self.body(document) if callable(self.body) else self.body
        if isinstance(body, bytes):
            return self.status, body, dict(self.headers)
        if body is None:
            return self.status, b"", dict(self.headers)
        content_type = "application/x-amz-json-1.1" if self.target else "application/json;charset=UTF-8"
        return self.status, json.dumps(body).encode(), {"Content-Type": content_type, **self.headers}


@dataclass
class ProxiedCall:
    """One request through a proxy, logged when it arrives: what it was, what was answered (None: nothing
    yet; 0: the connection was closed without an answer), and whether a rule answered it."""

    method: str
    path: str
    target: str
    status: int | None = None
    scripted: bool = False


class FaultProxy:
    """A loopback HTTP proxy that forwards to one upstream, except where a scripted `Rule` says otherwise.

    When the upstream closes the connection without answering, the proxy does the same to its client.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.upstream = ""
        self.rules: list[Rule] = []
        self._calls: list[ProxiedCall] = []
        self._connections = 0
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None

    def start(self, upstream: str) -> FaultProxy:
        self.upstream = upstream.rstrip("/")
        self._http = httpx.Client(
            timeout=httpx.Timeout(300.0, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            trust_env=False,
            follow_redirects=False,
        )
        self._server = _ProxyServer(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        if self._http is not None:
            self._http.close()
        self._server = self._thread = self._http = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self._calls.clear()
            self._connections = 0

    @property
    def connections_opened(self) -> int:
        """TCP connections clients opened to the proxy."""
        with self._lock:
            return self._connections

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    @property
    def calls(self) -> list[ProxiedCall]:
        with self._lock:
            return list(self._calls)

    def count(self, *, target: str = "", path: str = "", method: str = "") -> int:
        return sum(
            1
            for call in self.calls
            if call.target.endswith(target) and path in call.path and call.method.endswith(method)
        )

    def _take(self, method: str, path: str, target: str, document: Any) -> Rule | None:
        with self._lock:
            for index, rule in enumerate(self.rules):
                if rule.matches(method, path, target, document):
                    rule.times -= 1
                    if rule.times <= 0:
                        del self.rules[index]
                    return rule
        return None

    def _arrived(self, method: str, path: str, target: str) -> ProxiedCall:
        call = ProxiedCall(method, path, target)
        with self._lock:
            self._calls.append(call)
        return call

    def handle(
        self, method: str, target_path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """The answer to send back, or None to close the connection without one."""
        path = urlsplit(target_path).path
        lowered = {name.lower(): value for name, value in headers}
        target = lowered.get("x-amz-target", "")
        document = _json_or_none(body)
        call = self._arrived(method, path, target)
        rule = self._take(method, path, target, document)
        call.scripted = rule is not None
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        if rule is not None and not rule.forward:
            answer = rule.answer(document)
            call.status = answer[0]
            return answer
        forwarded = [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]
        assert self._http is not None
        try:
            response = self._http.request(
                method, self.upstream + target_path, content=body, headers=forwarded
            )
        except httpx.TransportError:
            call.status = 0
            return None
        if rule is not None:
            answer = rule.answer(document)
        else:
            kept = {
                name: value
                for name, value in response.headers.items()
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-encoding"
            }
            answer = (response.status_code, response.content, kept)
        call.status = answer[0]
        return answer


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        self.server.proxy._connected()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the proxy's call log is read instead."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.proxy.handle(self.command, self.path, list(self.headers.items()), body)
        if answer is None:
            self.close_connection = True
            return
        status, content, headers = answer
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _ProxyHandler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # no FQDN lookup
        self.server_name, self.server_port = self.socket.getsockname()[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------- scenarios


@dataclass
class World:
    """What a scenario's setup scripts. Setup runs inside the first delivery's execution environment."""

    sandbox: Sandbox
    cbr: FaultProxy
    aws: FaultProxy
    mode: Mode

    @property
    def emulator(self) -> Emulator:
        return self.sandbox.emulator

    def fault(self, **fields: Any) -> None:
        self.emulator.faults.append(Fault(**fields))

    def warm_token(self) -> None:
        """Make the first delivery's runtime hold an IAM token already, as a warm environment would."""
        from cbr_checkpointer.cbr import RegionalCbr
        from cbr_checkpointer.runtime import get_runtime

        (cbr,) = (client for client in get_runtime().clients if isinstance(client, RegionalCbr))
        cbr.list_backups(PROJECT_ID, region=None, vault_id=VAULT_ID)


Outcome = Literal["created", "failed", "rejected", "pending"]


@dataclass(frozen=True)
class Expect:
    """The verdict a scenario must reach, in either mode."""

    outcomes: tuple[Outcome, ...] = ("created",)  # one per idempotency key, any order
    checkpoints: int = 1
    code: str | None = None  # the Failed event's error code
    fields: tuple[str, ...] = ()  # fields the Rejected event must name
    returns: int | None = 0  # deliveries returned to the queue / raised / timed out; None: any
    check: Callable[[Row], Iterable[str]] | None = None  # more, scenario-specific problems


def _no_setup(world: World) -> None:
    """Nothing scripted."""


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[World], None]
    expect: Expect
    request: Any = field(default_factory=lambda: {"vault_id": VAULT_ID, "resources": [RESOURCE_ID]})
    keys: int = 1  # idempotency keys in the request (a "many" request has one per item)
    timeout: float = 8.0  # the Lambda timeout of every delivery; 5 s of it is the service's safety margin
    auth: Literal["aksk", "token"] = "aksk"
    env: Mapping[str, str] = field(default_factory=dict)  # every delivery
    first_env: Mapping[str, str] = field(default_factory=dict)  # the first delivery only
    copies: int = 1  # the first delivery arrives this many times at once
    abandon_first: bool = False  # the first delivery outlives its deadline and is killed
    watch: bool = False  # follow completion: every delivery sets WATCH_QUEUE_URL (through the AWS proxy)


def cbr_error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": message}


def gateway_error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": message, "request_id": uuid.uuid4().hex}


def put_events_failing(code: str) -> Callable[[Any], dict[str, Any]]:
    def answer(document: Any) -> dict[str, Any]:
        entries = document.get("Entries", []) if isinstance(document, dict) else []
        failed = [{"ErrorCode": code, "ErrorMessage": "Rate exceeded"} for _ in entries]
        return {"FailedEntryCount": len(failed), "Entries": failed}

    return answer


def publisher_attempts() -> int:
    """The most attempts the function makes of one AWS call, or of one entry of a batch call."""
    from cbr_checkpointer.retry import RetryPolicy

    return RetryPolicy().max_attempts


def send_message_batch_failing(code: str) -> Callable[[Any], dict[str, Any]]:
    """A SendMessageBatch answer that takes none of the entries, each failing with `code` (not the
    sender's fault, so worth another attempt)."""

    def answer(document: Any) -> dict[str, Any]:
        entries = document.get("Entries", []) if isinstance(document, dict) else []
        failed = [
            {"Id": entry["Id"], "Code": code, "Message": "Rate exceeded", "SenderFault": False}
            for entry in entries
        ]
        return {"Successful": [], "Failed": failed}

    return answer


def _is_completion(document: Any) -> bool:
    values = document.get("ExpressionAttributeValues", {}) if isinstance(document, dict) else {}
    return bool(values.get(":completed", {}).get("S") == "completed")


def _is_claim(document: Any) -> bool:
    item = document.get("Item", {}) if isinstance(document, dict) else {}
    return bool(item.get("status", {}).get("S") == "in_progress")


DYNAMODB_500 = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "Internal error"}
DYNAMODB_THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded.",
}
EVENTS_500 = {"__type": "InternalException", "message": "Internal error"}


# -- scenario-specific checks


def _first_delivery_waited(seconds: float) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        if row.round_seconds[0] < seconds:
            yield f"the first delivery took {row.round_seconds[0]:.2f}s: Retry-After {seconds}s not honoured"

    return check


def _expanded(selected: int) -> Callable[[Row], Iterable[str]]:
    """The selection was published as expanded (again on each delivery that finished it, always alike)."""

    def check(row: Row) -> Iterable[str]:
        counts = {detail.get("selected") for detail in row.expansions()}
        if counts != {selected}:
            yield f"Expanded events select {sorted(map(str, counts))} vaults, expected {selected}"

    return check


def _first_delivery_quick(row: Row) -> Iterable[str]:
    if row.round_seconds[0] > 3.0:
        yield f"the first delivery slept {row.round_seconds[0]:.1f}s past what its deadline allows"


def _aws_calls(target: str, count: int) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        calls = row.aws.count(target=target)
        if calls != count:
            yield f"{calls} {target.lstrip('.')} calls, expected {count}"

    return check


def _cbr_posts(count: int) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        posts = row.cbr.count(method="POST", path="/checkpoints")
        if posts != count:
            yield f"{posts} create calls reached CBR, expected {count}"

    return check


def _token_requests(count: int) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        if row.token_requests != count:
            yield f"{row.token_requests} IAM token requests, expected {count}"

    return check


def _skipped_reported(row: Row) -> Iterable[str]:
    for event in row.events_of("CBR Checkpoint Created"):
        skipped = (event["checkpoint"].get("vault") or {}).get("skipped_resources") or []
        if [item.get("id") for item in skipped] != [SKIPPED_RESOURCE_ID]:
            yield f"skipped_resources in the event: {skipped!r}"
        elif skipped[0].get("code") != "BackupService.0002":
            yield f"skipped resource without its code: {skipped[0]!r}"


def _nothing_sent(row: Row) -> Iterable[str]:
    if row.cbr_requests:
        yield f"{len(row.cbr_requests)} request(s) reached the emulator for a rejected payload"


def _all(*checks: Callable[[Row], Iterable[str]]) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        for one in checks:
            yield from one(row)

    return check


SKIP_VAULT_ID = "5f0c7e3a-1b2d-4c6e-8f9a-0b1c2d3e4f5a"
SKIPPED_RESOURCE_ID = "0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
KEPT_RESOURCE_ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
OTHER_PROJECT_ID = "ffffffffffffffffffffffffffffffff"


def _setup_skip(world: World) -> None:
    world.emulator.add_vault(
        SKIP_VAULT_ID,
        [
            {"id": KEPT_RESOURCE_ID, "type": "OS::Nova::Server", "name": "ecs-kept"},
            {"id": SKIPPED_RESOURCE_ID, "type": "OS::Nova::Server", "name": "ecs-busy"},
        ],
        name="vault-skip",
    )
    world.emulator.mark_busy(SKIPPED_RESOURCE_ID, mode="skip")


def _setup_token_expiry(world: World) -> None:
    world.warm_token()
    world.emulator.expire_tokens()


def _setup_duplicate(world: World) -> None:
    # The create takes effect at once but its answer takes a second: the copies overlap for sure.
    world.fault(delay=1.0)


def _setup_lambda_timeout(world: World) -> None:
    # The create takes effect, then the answer is held far beyond the first delivery's deadline.
    world.fault(delay=60.0)


def throttle_put_events(aws: FaultProxy) -> None:
    """Every attempt of the publisher's next PutEvents gets its entries back as ThrottlingException."""
    aws.rules.append(
        Rule(
            target=".PutEvents",
            status=200,
            body=put_events_failing("ThrottlingException"),
            times=publisher_attempts(),
        )
    )


def _setup_putevents_exhausted(world: World) -> None:
    throttle_put_events(world.aws)


def _setup_putevents_5xx(world: World) -> None:
    world.aws.rules.append(Rule(target=".PutEvents", status=500, body=EVENTS_500, times=publisher_attempts()))


def _setup_reconcile_list_fails(world: World) -> None:
    world.fault(drop="after")
    world.fault(
        method="GET",
        path_suffix="/backups",
        status=500,
        body=cbr_error("BackupService.9910", "unknown exception"),
    )


def _setup_reconcile_list_refused(world: World) -> None:
    # Right after the ambiguous create, listing backups is refused once (a permission change still
    # propagating): whether a checkpoint exists is unknown, so the request cannot be Failed.
    world.fault(drop="after")
    world.fault(
        method="GET",
        path_suffix="/backups",
        status=403,
        body=gateway_error("APIGW.0302", "The IAM user is not authorized to access the API."),
    )


def _setup_reconcile_show_fails(world: World) -> None:
    # Right after a create, ShowCheckpoint may not know the checkpoint yet: CBR answers 404
    # BackupService.6217 for a little while.
    world.fault(drop="after")
    world.cbr.rules.append(
        Rule(
            method="GET",
            path="/checkpoints/",
            status=404,
            body=cbr_error("BackupService.6217", "The checkpoint does not exist."),
        )
    )


# The vaults a selection scenario selects, each with a resource of its own: a checkpoint of a vault
# without resources has no backups, so nothing could find it again after an ambiguous create.
FLEET_TAG = {"fleet": "fault-matrix"}
FLEET = {
    "c0ffee00-0000-4000-8000-000000000001": "c0ffee00-0000-4000-8000-0000000000a1",
    "c0ffee00-0000-4000-8000-000000000002": "c0ffee00-0000-4000-8000-0000000000a2",
}
SELECTION = {"select": {"tags": FLEET_TAG}}


def _add_fleet(world: World) -> None:
    for vault_id, resource_id in FLEET.items():
        world.emulator.add_vault(
            vault_id, [{"id": resource_id, "type": "OS::Nova::Server", "name": "ecs-fleet"}], tags=FLEET_TAG
        )


def _setup_listing_throttled(world: World) -> None:
    _add_fleet(world)
    world.fault(
        path_suffix="/vault/resource_instances/action",
        status=429,
        body=gateway_error("APIGW.0308", "The throttling threshold has been reached"),
    )


def _setup_second_listing_fails(world: World) -> None:
    # The tag query answers; ListVault, the second criterion's listing, fails once, held back until the
    # safety margin begins so that the failure goes back to the trigger however fast the machine is.
    _add_fleet(world)
    world.fault(
        method="GET",
        path_suffix="/vaults",
        status=500,
        body=cbr_error("BackupService.9910", "unknown"),
        delay=AT_THE_MARGIN,
    )


def _first_entry_failed_after_sending(document: Any) -> dict[str, Any]:
    """A SendMessageBatch answer that reports the first entry failed although SQS took it (the proxy
    forwarded the call first): the function sends it again, so that vault's message is on the queue twice."""
    entries = document.get("Entries", []) if isinstance(document, dict) else []
    failed = [{"Id": entries[0]["Id"], "Code": "InternalError", "Message": "try again", "SenderFault": False}]
    return {
        "Successful": [{"Id": entry["Id"], "MessageId": uuid.uuid4().hex} for entry in entries[1:]],
        "Failed": failed,
    }


def _setup_send_partial(world: World) -> None:
    _add_fleet(world)
    world.aws.rules.append(
        Rule(target=".SendMessageBatch", status=200, body=_first_entry_failed_after_sending, forward=True)
    )


def _setup_send_exhausted(world: World) -> None:
    _add_fleet(world)
    world.aws.rules.append(
        Rule(
            target=".SendMessageBatch",
            status=200,
            body=send_message_batch_failing("ThrottlingException"),
            times=publisher_attempts(),
        )
    )


def _setup_lambda_timeout_mid_expansion(world: World) -> None:
    _add_fleet(world)
    _setup_lambda_timeout(world)


SCENARIOS: list[Scenario] = [
    Scenario("happy-path", _no_setup, Expect(check=_cbr_posts(1))),
    Scenario(
        "429-throttled-retry-after",
        lambda w: w.fault(
            status=429,
            body=gateway_error("APIGW.0308", "The throttling threshold has been reached"),
            headers={"Retry-After": "1"},
        ),
        Expect(check=_all(_cbr_posts(2), _first_delivery_waited(1.0))),
    ),
    Scenario(
        "429-retry-after-past-deadline",
        lambda w: w.fault(
            status=429,
            body=gateway_error("APIGW.0308", "The throttling threshold has been reached"),
            headers={"Retry-After": "120"},
        ),
        Expect(returns=1, check=_all(_cbr_posts(2), _first_delivery_quick)),
    ),
    Scenario(
        "500-0002-busy-then-ok",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.0002", "resources are being backed up")),
        Expect(returns=None, check=_cbr_posts(2)),
    ),
    Scenario(
        "busy-forever",
        lambda w: w.emulator.mark_busy(RESOURCE_ID, mode="reject"),
        Expect(outcomes=("pending",), checkpoints=0, returns=1 + MAX_REDELIVERIES),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "400-9900-invalid-parameter",
        lambda w: w.fault(status=400, body=cbr_error("BackupService.9900", "parameter verification failed")),
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.9900", check=_cbr_posts(1)),
    ),
    Scenario(
        "404-6105-no-such-vault",
        _no_setup,
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.6105", check=_cbr_posts(1)),
        request={"vault_id": "0e5e7a3c-9d1b-4b8f-a2c4-6d8e0f1a3b5c"},
    ),
    Scenario(
        "400-6135-resource-not-in-vault",
        _no_setup,
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.6135", check=_cbr_posts(1)),
        request={"vault_id": VAULT_ID, "resources": ["6f1e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"]},
    ),
    Scenario(
        "403-apigw-0302-forbidden",
        _no_setup,
        Expect(outcomes=("failed",), checkpoints=0, code="APIGW.0302", check=_cbr_posts(1)),
        request={"vault_id": VAULT_ID, "project_id": OTHER_PROJECT_ID},
        # The function may act on the project; CBR refuses the credentials for it.
        env={"ALLOWED_PROJECT_IDS": f"{PROJECT_ID},{OTHER_PROJECT_ID}"},
    ),
    Scenario(
        "500-9998-auth-once",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.9998", "authentication failed")),
        Expect(check=_cbr_posts(2)),
    ),
    Scenario(
        "500-9998-auth-twice",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.9998", "authentication failed"), times=2),
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.9998", check=_cbr_posts(2)),
    ),
    Scenario(
        "401-apigw-0307-token-expired",
        _setup_token_expiry,
        Expect(check=_all(_cbr_posts(2), _token_requests(2))),
        auth="token",
    ),
    Scenario(
        "iam-503-once",
        lambda w: w.fault(path_suffix="/v3/auth/tokens", status=503, body={"error": {"code": 503}}),
        Expect(check=_all(_cbr_posts(1), _token_requests(2))),
        auth="token",
    ),
    Scenario(
        "iam-connection-dropped",
        lambda w: w.fault(path_suffix="/v3/auth/tokens", drop="before"),
        Expect(check=_all(_cbr_posts(1), _token_requests(2))),
        auth="token",
    ),
    Scenario(
        "secret-read-500-once",
        lambda w: w.aws.rules.append(
            Rule(
                target=".GetSecretValue", status=500, body={"__type": "InternalServiceError", "message": "x"}
            )
        ),
        Expect(check=_all(_cbr_posts(1), _token_requests(1))),
        auth="token",
    ),
    Scenario(
        "502-gateway",
        lambda w: w.fault(status=502, body=gateway_error("APIGW.0201", "Backend unavailable")),
        Expect(check=_cbr_posts(2)),
    ),
    Scenario(
        "504-gateway-after-create",
        lambda w: w.cbr.rules.append(
            Rule(
                path="/checkpoints",
                status=504,
                body=gateway_error("APIGW.0201", "Backend timeout"),
                forward=True,
            )
        ),
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "500-9910-unknown-once",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.9910", "unknown exception")),
        Expect(check=_cbr_posts(2)),
    ),
    Scenario("drop-before-create", lambda w: w.fault(drop="before"), Expect(check=_cbr_posts(2))),
    Scenario("drop-after-create", lambda w: w.fault(drop="after"), Expect(check=_cbr_posts(1))),
    Scenario(
        "drop-after-create-no-time-left",
        lambda w: w.fault(drop="after", delay=AT_THE_MARGIN),
        Expect(returns=1, check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "drop-after-create-templated-name",
        lambda w: w.fault(drop="after", delay=AT_THE_MARGIN),
        Expect(returns=1, check=_cbr_posts(1)),
        request={"vault_id": VAULT_ID, "resources": [RESOURCE_ID], "name": "manual-{time:%H%M%S%f}"},
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "read-timeout-after-create",
        lambda w: w.fault(delay=3.0),
        Expect(check=_cbr_posts(1)),
        env={"CBR_READ_TIMEOUT_SECONDS": "0.5"},
    ),
    Scenario(
        "malformed-200-after-create",
        lambda w: w.cbr.rules.append(
            Rule(path="/checkpoints", status=200, body=b"<html>upstream glitch</html>", forward=True)
        ),
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "reconcile-list-backups-500",
        _setup_reconcile_list_fails,
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "reconcile-list-backups-403-once",
        _setup_reconcile_list_refused,
        Expect(returns=None, check=_cbr_posts(1)),
    ),
    Scenario(
        "reconcile-show-checkpoint-404",
        _setup_reconcile_show_fails,
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "200-skipped-resources",
        _setup_skip,
        Expect(check=_skipped_reported),
        request={"vault_id": SKIP_VAULT_ID},
    ),
    Scenario(
        "lambda-timeout-mid-call",
        _setup_lambda_timeout,
        Expect(returns=1, check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
        abandon_first=True,
    ),
    Scenario(
        "putevents-throttled-once",
        lambda w: w.aws.rules.append(
            Rule(target=".PutEvents", status=200, body=put_events_failing("ThrottlingException"))
        ),
        Expect(),
    ),
    Scenario("putevents-throttled-exhausted", _setup_putevents_exhausted, Expect(returns=1)),
    Scenario(
        "putevents-call-throttled-once",
        lambda w: w.aws.rules.append(
            Rule(
                target=".PutEvents",
                status=400,
                body={"__type": "ThrottlingException", "message": "Rate exceeded"},
            )
        ),
        Expect(check=_aws_calls(".PutEvents", 2)),
    ),
    Scenario(
        "putevents-500-once",
        lambda w: w.aws.rules.append(Rule(target=".PutEvents", status=500, body=EVENTS_500)),
        Expect(check=_aws_calls(".PutEvents", 2)),
    ),
    Scenario("putevents-500-exhausted", _setup_putevents_5xx, Expect(returns=1)),
    Scenario(
        "putevents-bus-missing-first",
        _no_setup,
        Expect(returns=1),
        first_env={"EVENT_BUS_NAME": "no-such-bus"},
    ),
    Scenario(
        "ledger-claim-500",
        lambda w: w.aws.rules.append(Rule(target=".PutItem", when=_is_claim, status=500, body=DYNAMODB_500)),
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "ledger-claim-throttled",
        lambda w: w.aws.rules.append(
            Rule(target=".PutItem", when=_is_claim, status=400, body=DYNAMODB_THROTTLED, times=2)
        ),
        Expect(check=_all(_cbr_posts(1), _aws_calls(".PutItem", 4))),
    ),
    Scenario(
        "ledger-complete-throttled",
        lambda w: w.aws.rules.append(
            Rule(target=".UpdateItem", when=_is_completion, status=400, body=DYNAMODB_THROTTLED)
        ),
        Expect(check=_all(_cbr_posts(1), _aws_calls(".UpdateItem", 2))),
    ),
    Scenario(
        "ledger-claim-throttled-no-time-left",
        lambda w: w.aws.rules.append(
            Rule(target=".PutItem", when=_is_claim, status=400, body=DYNAMODB_THROTTLED, delay=AT_THE_MARGIN)
        ),
        Expect(returns=1, check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "watch-schedule-throttled-once",
        lambda w: w.aws.rules.append(
            Rule(target=".SendMessageBatch", status=200, body=send_message_batch_failing("RequestThrottled"))
        ),
        Expect(check=_all(_cbr_posts(1), _aws_calls(".SendMessageBatch", 2))),
        watch=True,
    ),
    Scenario(
        "ledger-complete-500",
        lambda w: w.aws.rules.append(
            Rule(
                target=".UpdateItem", when=_is_completion, status=500, body=DYNAMODB_500, delay=AT_THE_MARGIN
            )
        ),
        # CBR has acted: the outcome is published though the ledger did not store it.
        Expect(check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "duplicate-delivery-concurrent",
        _setup_duplicate,
        Expect(returns=1, check=_cbr_posts(1)),
        copies=2,
    ),
    Scenario(
        "many-one-busy-forever",
        lambda w: w.emulator.mark_busy(RESOURCE_ID, mode="reject"),
        Expect(outcomes=("created", "pending"), checkpoints=1, returns=1 + MAX_REDELIVERIES),
        request={
            "requests": [{"vault_id": SECOND_VAULT_ID}, {"vault_id": VAULT_ID, "resources": [RESOURCE_ID]}]
        },
        keys=2,
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "selection-listing-throttled",
        _setup_listing_throttled,
        # The throttle also slows this environment's CBR calls: a create may not start in time and go back.
        Expect(outcomes=("created", "created"), checkpoints=2, returns=None, check=_expanded(2)),
        request=SELECTION,
        keys=2,
    ),
    Scenario(
        "selection-second-listing-500-no-time-left",
        _setup_second_listing_fails,
        Expect(outcomes=("created", "created"), checkpoints=2, returns=1, check=_expanded(2)),
        request={"select": SELECTION["select"] | {"object_type": "server"}},
        keys=2,
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "selection-sendmessagebatch-partial",
        _setup_send_partial,
        Expect(outcomes=("created", "created"), checkpoints=2, check=_expanded(2)),
        request=SELECTION,
        keys=2,
        env={"FANOUT_INLINE_MAX": "1"},
    ),
    Scenario(
        "selection-sendmessagebatch-exhausted",
        _setup_send_exhausted,
        Expect(outcomes=("created", "created"), checkpoints=2, returns=1, check=_expanded(2)),
        request=SELECTION,
        keys=2,
        env={"FANOUT_INLINE_MAX": "1"},
    ),
    Scenario(
        "selection-trigger-retried-mid-expansion",
        _setup_lambda_timeout_mid_expansion,
        Expect(outcomes=("created", "created"), checkpoints=2, returns=1, check=_expanded(2)),
        request=SELECTION,
        keys=2,
        timeout=NO_TIME_TO_RETRY,
        abandon_first=True,
    ),
    Scenario(
        "invalid-payload",
        _no_setup,
        Expect(outcomes=("rejected",), checkpoints=0, fields=("vault_id", "incremntal"), check=_nothing_sent),
        request={"vault_id": "not-a-uuid", "incremntal": False},
    ),
    Scenario(
        "project-not-allowed",
        _no_setup,
        Expect(outcomes=("rejected",), checkpoints=0, fields=("project_id",), check=_nothing_sent),
        request={"vault_id": VAULT_ID, "project_id": OTHER_PROJECT_ID},
    ),
]


# ------------------------------------------------------------------------------------------- results


@dataclass
class Row:
    """What one scenario did in one mode, and what is wrong with it."""

    scenario: Scenario
    mode: Mode
    rounds: list[list[str]]  # per delivery round, the fate of each copy: ok | returned | raised | timeout
    round_seconds: list[float]
    created: list[dict[str, Any]]  # checkpoints at the emulator
    events: list[dict[str, Any]]  # published, as the capture queue got them
    cbr_requests: list[RecordedRequest]  # everything the emulator answered
    token_requests: int
    cbr: FaultProxy
    aws: FaultProxy
    errors: list[str]  # texts of exceptions that escaped the handler (what Lambda would log)
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def returns(self) -> int:
        return sum(1 for fates in self.rounds for fate in fates if fate != "ok")

    @property
    def ended_pending(self) -> bool:
        return any(fate != "ok" for fate in self.rounds[-1])

    def events_of(self, detail_type: str) -> list[dict[str, Any]]:
        return [
            event["detail"]
            for event in self.events
            if event["detail-type"] == detail_type and event["detail"].get("stage") not in NOT_REQUEST_STAGES
        ]

    def expansions(self) -> list[dict[str, Any]]:
        """The events of selections listed (Expanded, or Failed at stage selection)."""
        return [
            event["detail"]
            for event in self.events
            if event["detail-type"] == EXPANDED or event["detail"].get("stage") == "selection"
        ]

    def by_key(self) -> dict[str, list[dict[str, Any]]]:
        """The request outcome events by idempotency key (events that follow a checkpoint to its
        completion, `"stage": "completion"`, and those of a selection, which stands for its vaults'
        requests, are not outcomes of a request)."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            if event["detail-type"] != EXPANDED and event["detail"].get("stage") not in NOT_REQUEST_STAGES:
                grouped.setdefault(event["detail"]["idempotency_key"], []).append(event["detail"])
        return grouped

    def outcomes(self) -> list[str]:
        found = sorted(_final(details) for details in self.by_key().values())
        missing = self.scenario.keys - len(found)
        return found + ["pending"] * missing if self.ended_pending else found

    @property
    def passed(self) -> bool:
        return not self.problems


def _final(details: list[dict[str, Any]]) -> str:
    return str(details[-1]["outcome"])


def invariant_problems(row: Row) -> list[str]:
    """What breaks the rules that hold in every row, whatever the fault.

    Checkpoints are told apart by name: every scenario's requests have names of their own (derived
    from their keys, or given once), so two checkpoints with one name are two for one key.
    """
    problems: list[str] = []
    names = Counter((checkpoint.get("extra_info") or {}).get("name") for checkpoint in row.created)
    problems += [f"{count} checkpoints named {name!r}" for name, count in names.items() if count > 1]
    if len(row.created) > row.scenario.keys:
        problems.append(f"{len(row.created)} checkpoints for {row.scenario.keys} idempotency key(s)")

    by_key = row.by_key()
    owner: dict[str, str] = {}
    for key, details in by_key.items():
        kinds = {detail["outcome"] for detail in details}
        if len(kinds) > 1:
            problems.append(f"{key}: published as {sorted(kinds)}")
        ids = {detail["checkpoint"]["id"] for detail in details if detail["outcome"] == "created"}
        if len(ids) > 1:
            problems.append(f"{key}: Created events name {len(ids)} different checkpoints")
        fresh = [d for d in details if d["outcome"] == "created" and not d.get("duplicate")]
        if len(fresh) > 1:
            problems.append(f"{key}: {len(fresh)} Created events not marked duplicate")
        for checkpoint_id in ids:
            if owner.setdefault(checkpoint_id, key) != key:
                problems.append(
                    f"checkpoint {checkpoint_id} reported for two keys: {owner[checkpoint_id]}, {key}"
                )
        for detail in details:
            error = detail.get("error") or {}
            if detail["outcome"] == "failed" and error.get("retryable"):
                problems.append(f"{key}: Failed for a retryable error {error.get('code')}")

    reported = set(owner)
    at_emulator = {checkpoint["id"] for checkpoint in row.created}
    if reported - at_emulator:
        problems.append(f"events name checkpoints CBR never created: {sorted(reported - at_emulator)}")
    unreported = at_emulator - reported
    if unreported and not row.ended_pending:
        problems.append(f"checkpoints created but never reported: {sorted(unreported)}")
    if not row.ended_pending and len(by_key) < row.scenario.keys:
        problems.append(f"lost: {row.scenario.keys - len(by_key)} request(s) ended with no event")
    if len(by_key) > row.scenario.keys:
        problems.append(f"events for {len(by_key)} keys, the request has {row.scenario.keys}")
    if "failed" not in row.scenario.expect.outcomes and row.events_of("CBR Checkpoint Failed"):
        problems.append("Failed published for a transient fault")
    if set(row.outcomes()) == {"rejected"} and row.cbr_requests:
        problems.append("a rejected request reached CBR")
    return problems


def _bypassed(row: Row) -> list[str]:
    """The harness' own check: the function's calls went through the faulting proxies."""
    problems = []
    if row.events and not row.aws.count(target=".PutEvents"):
        problems.append("events were published around the proxy (AWS_ENDPOINT_URL_<SERVICE> not honoured?)")
    if row.cbr_requests and not row.cbr.calls:
        problems.append("CBR was called around the proxy (CBR_ENDPOINT not honoured?)")
    if row.scenario.watch and row.created and not row.aws.count(target=".SendMessageBatch"):
        problems.append("no completion check was scheduled through the proxy (AWS_ENDPOINT_URL_SQS?)")
    return problems


def expectation_problems(row: Row) -> list[str]:
    expect = row.scenario.expect
    problems: list[str] = []
    if sorted(row.outcomes()) != sorted(expect.outcomes):
        problems.append(f"outcomes {row.outcomes()}, expected {sorted(expect.outcomes)}")
    if len(row.created) != expect.checkpoints:
        problems.append(f"{len(row.created)} checkpoints, expected {expect.checkpoints}")
    if expect.code is not None:
        codes = {(d.get("error") or {}).get("code") for d in row.events_of("CBR Checkpoint Failed")}
        if codes != {expect.code}:
            problems.append(f"Failed with {sorted(map(str, codes))}, expected {expect.code}")
    for wanted in expect.fields:
        named = {
            e["field"] for d in row.events_of("CBR Backup Request Rejected") for e in d.get("errors", [])
        }
        if wanted not in named:
            problems.append(f"the rejection does not name {wanted!r} (names {sorted(named)})")
    if expect.returns is not None and row.returns != expect.returns:
        problems.append(f"returned/raised {row.returns} time(s), expected {expect.returns}")
    if expect.check is not None:
        problems += list(expect.check(row))
    return problems


# -------------------------------------------------------------------------------------------- driver


class Harness:
    """A sandbox and the two proxies; runs scenarios one at a time."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.cbr = FaultProxy("cbr-proxy")
        self.aws = FaultProxy("aws-proxy")

    def __enter__(self) -> Harness:
        self.cbr.start(self.sandbox.emulator.base_url)
        self.aws.start(self.sandbox.moto_url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cbr.stop()
        self.aws.stop()

    def environment(self, table: str) -> dict[str, str]:
        """The function's environment overrides: the DynamoDB ledger `table`, everything via the proxies."""
        from cbr_checkpointer.settings import AWS_SERVICE_ENV_IDS

        through_proxy = {
            f"AWS_ENDPOINT_URL_{AWS_SERVICE_ENV_IDS[service]}": self.aws.url
            for service in ("events", "dynamodb", "secretsmanager", "sqs")
        }
        return {"IDEMPOTENCY_TABLE": table, "CBR_ENDPOINT": self.cbr.url, **through_proxy}

    def run(self, scenario: Scenario, mode: Mode) -> Row:
        """Deliver the scenario's trigger until it succeeds or MAX_REDELIVERIES redeliveries are spent."""
        sandbox = self.sandbox
        sandbox.reset()
        self.cbr.reset()
        self.aws.reset()
        table = sandbox.create_ledger_table()
        environment = self.environment(table) | dict(scenario.env)
        if scenario.watch:
            environment["WATCH_QUEUE_URL"] = sandbox.watch_queue_url
        saved_auth, sandbox.auth = sandbox.auth, scenario.auth
        delivery = _Delivery(scenario, mode)
        rounds: list[list[str]] = []
        round_seconds: list[float] = []
        errors: list[str] = []
        started = time.monotonic()
        try:
            copies = scenario.copies
            for number in range(1 + MAX_REDELIVERIES):
                overrides = environment | (dict(scenario.first_env) if number == 0 else {})
                with sandbox.configured(**overrides):
                    if number == 0:
                        scenario.setup(World(sandbox, self.cbr, self.aws, mode))
                    round_started = time.monotonic()
                    fates = delivery.deliver(
                        copies, number, abandon=number == 0 and scenario.abandon_first, errors=errors
                    )
                    # The request queue's event source: the vaults of a large selection, run until done.
                    self._run_request_queue(scenario)
                    round_seconds.append(time.monotonic() - round_started)
                rounds.append(fates)
                failed = sum(1 for fate in fates if fate != "ok")
                if not failed:
                    break
                # SQS gives a returned message back once, whatever the copies; Lambda retries each invoke.
                copies = 1 if mode == "sqs" else failed
                self.wait_for_live_leases(table)
            row = Row(
                scenario=scenario,
                mode=mode,
                rounds=rounds,
                round_seconds=round_seconds,
                created=sandbox.emulator.created,
                events=sandbox.published_events(),
                cbr_requests=[r for r in sandbox.emulator.requests if r.path != "/v3/auth/tokens"],
                token_requests=sandbox.emulator.token_requests,
                cbr=self.cbr,
                aws=self.aws,
                errors=errors,
                elapsed=time.monotonic() - started,
            )
        finally:
            sandbox.auth = saved_auth
        row.problems = _bypassed(row) + invariant_problems(row) + expectation_problems(row)
        return row

    def _run_request_queue(self, scenario: Scenario) -> None:
        from cbr_checkpointer.handler import lambda_handler

        self.sandbox.run_request_queue(lambda_handler, lambda: LocalContext(timeout_seconds=scenario.timeout))

    def wait_for_live_leases(self, table: str) -> None:
        """A redelivery comes after the visibility timeout / retry delay, which outlast any lease taken."""
        items = self.sandbox.aws("dynamodb").call("Scan", {"TableName": table}).get("Items", [])
        leases = [
            float(item["lease_until"]["N"])
            for item in items
            if item.get("status", {}).get("S") == "in_progress" and "lease_until" in item
        ]
        wait = max(leases, default=0.0) - time.time()
        if wait > 0:
            time.sleep(min(wait + 0.05, 60.0))


class _Delivery:
    """The trigger of one scenario run: the same input, request id, messageId and body every time."""

    def __init__(self, scenario: Scenario, mode: Mode) -> None:
        self.scenario = scenario
        self.mode = mode
        self.request_id = str(uuid.uuid4())  # Lambda keeps it across async retries of one event
        self.message_id = str(uuid.uuid4())
        self.sent_millis = str(int(time.time() * 1000))
        body = scenario.request
        self.body = body if isinstance(body, str) else json.dumps(body)

    def event(self, copies: int, number: int) -> Any:
        if self.mode == "timer":
            return self.scenario.request
        record = sqs_record(
            self.body,
            message_id=self.message_id,
            receive_count=number + 1,
            sent_millis=self.sent_millis,
            region=REGION,
        )
        return {"Records": [record] * copies}

    def context(self) -> LocalContext:
        request_id = self.request_id if self.mode == "timer" else str(uuid.uuid4())
        return LocalContext(timeout_seconds=self.scenario.timeout, aws_request_id=request_id)

    def deliver(self, copies: int, number: int, *, abandon: bool, errors: list[str]) -> list[str]:
        """Hand the trigger over `copies` times at once; each one's fate: ok, returned, raised or timeout."""
        if abandon:
            child = _Child(self.event(copies, number), self.context())
            return child.fates(self.mode, copies, errors, kill_at_deadline=True)
        if self.mode == "sqs":
            return self._invoke_batch(copies, number, errors)
        if copies == 1:
            return [self._invoke_timer(errors)]
        # Concurrent async invokes of one event run in separate environments: the others in child processes.
        children = [_Child(self.event(1, number), self.context()) for _ in range(copies - 1)]
        time.sleep(0.2)
        fates = [self._invoke_timer(errors)]
        for child in children:
            fates += child.fates(self.mode, 1, errors, kill_at_deadline=True)
        return fates

    def _invoke_timer(self, errors: list[str]) -> str:
        from cbr_checkpointer.handler import lambda_handler

        try:
            lambda_handler(self.scenario.request, self.context())
        except Exception as error:  # Lambda logs it and retries the event
            errors.append("".join(traceback.format_exception(error)))
            return "raised"
        return "ok"

    def _invoke_batch(self, copies: int, number: int, errors: list[str]) -> list[str]:
        from cbr_checkpointer.handler import lambda_handler

        try:
            response = lambda_handler(self.event(copies, number), self.context())
        except Exception as error:  # the whole batch goes back to the queue
            errors.append("".join(traceback.format_exception(error)))
            return ["returned"]
        failed = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
        # Copies of one message in a batch are one message: it goes back to the queue once, or not at all.
        return ["returned" if self.message_id in failed else "ok"]


class _Child:
    """One invocation in its own process (its own execution environment), killed if it outlives its deadline.

    Started inside `Sandbox.configured()`, it inherits the environment; its logs go to the inherited
    stderr, and its result comes back on stdout.
    """

    def __init__(self, event: Any, context: LocalContext) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devtools.faults", "--child"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdin is not None
        spec = {"event": event, "request_id": context.aws_request_id, "timeout": context.timeout_seconds}
        self._process.stdin.write(json.dumps(spec))
        self._process.stdin.close()
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self._next(30.0)
        if started is None or "deadline" not in started:
            self._stop()
            raise RuntimeError(f"the child invocation did not start: {started!r}")
        self.deadline = float(started["deadline"])

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with contextlib.suppress(ValueError):
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def _next(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()  # Lambda ends a timed-out invocation: nothing more runs
        self._process.wait()
        self._reader.join()
        assert self._process.stdout is not None
        self._process.stdout.close()

    def fates(self, mode: Mode, copies: int, errors: list[str], *, kill_at_deadline: bool) -> list[str]:
        wait = self.deadline - time.time() if kill_at_deadline else 300.0
        answer = self._next(wait)
        self._stop()
        count = copies if mode == "timer" else 1  # SQS: copies of one message are one message
        if answer is None:
            return ["timeout"] * count
        if "raised" in answer:
            errors.append(str(answer["raised"]))
            return ["raised" if mode == "timer" else "returned"] * count
        result = answer.get("result") or {}
        failures = result.get("batchItemFailures", []) if isinstance(result, dict) else []
        return ["returned" if failures else "ok"] * count


def _child_main() -> int:
    """`python -m devtools.faults --child`: one invocation; logs to stderr, the result to stdout."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    spec = json.loads(sys.stdin.read())
    from cbr_checkpointer.handler import lambda_handler

    context = LocalContext(timeout_seconds=spec["timeout"], aws_request_id=spec["request_id"])
    protocol.write(
        json.dumps({"deadline": time.time() + context.get_remaining_time_in_millis() / 1000}) + "\n"
    )
    try:
        result = lambda_handler(spec["event"], context)
    except Exception as error:
        traceback.print_exc()  # as the Lambda runtime logs an invocation error
        protocol.write(json.dumps({"raised": "".join(traceback.format_exception_only(error))}) + "\n")
        return 0
    protocol.write(json.dumps({"result": result}, default=str) + "\n")
    return 0


# ------------------------------------------------------------------------------------------- secrets


def signatures_and_tokens(requests: Iterable[RecordedRequest]) -> set[str]:
    """Every `Signature=` value and every token carried by these requests."""
    found: set[str] = set()
    for request in requests:
        authorization = request.headers.get("authorization", "")
        for part in authorization.split(","):
            name, _, value = part.strip().partition("=")
            if name.strip() == "Signature" and value:
                found.add(value.strip())
        for header in ("x-auth-token", "x-security-token"):
            if request.headers.get(header):
                found.add(request.headers[header])
    return found


def static_secrets() -> set[str]:
    """The sandbox's credentials: Huawei SK, IAM password, AWS secret key."""
    return {HUAWEI_SK, IAM_USER[1], AWS_TEST_CREDENTIALS.secret_access_key.get_secret_value()}


_WORD = re.compile(r"[A-Za-z0-9_\-]+")


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """The secrets (shown by their first characters only) that occur in any of the texts.

    A soak test sees thousands of signatures and megabytes of logs, so secrets made of word characters
    (signatures, tokens, the sandbox's keys) are looked up among the words of the texts, each window of a
    secret's length of each word; any other secret is searched for as a plain substring.
    """
    wanted = {secret for secret in secrets if len(secret) >= 8}
    wordy = {secret for secret in wanted if _WORD.fullmatch(secret)}
    lengths = sorted({len(secret) for secret in wordy})
    found: set[str] = set()
    for text in texts:
        found |= {secret for secret in wanted - wordy if secret in text}
        for word in set(_WORD.findall(text)):
            for length in lengths:
                if length > len(word):
                    break
                found |= {word[i : i + length] for i in range(len(word) - length + 1)} & wordy
    return sorted(f"{secret[:6]}… ({len(secret)} chars)" for secret in found)


# --------------------------------------------------------------------------------------------- table


def _events_cell(row: Row) -> str:
    parts = []
    for detail_type, short in (
        ("CBR Checkpoint Created", "Created"),
        ("CBR Checkpoint Failed", "Failed"),
        ("CBR Backup Request Rejected", "Rejected"),
    ):
        details = row.events_of(detail_type)
        if details:
            duplicates = sum(1 for d in details if d.get("duplicate"))
            parts.append(f"{short} {len(details)}" + (f" ({duplicates} dup)" if duplicates else ""))
    return ", ".join(parts) or "-"


def _returns_cell(row: Row) -> str:
    fates = Counter(fate for fates in row.rounds for fate in fates if fate != "ok")
    return ", ".join(f"{count} {fate}" for fate, count in sorted(fates.items())) or "0"


def _outcome_cell(row: Row) -> str:
    cells = []
    for outcome in row.outcomes():
        if outcome == "failed":
            codes = {(d.get("error") or {}).get("code") for d in row.events_of("CBR Checkpoint Failed")}
            cells.append("Failed " + ",".join(sorted(map(str, codes))))
        elif outcome == "rejected":
            cells.append("Rejected")
        else:
            cells.append(outcome.capitalize())
    return " + ".join(cells)


HEADERS = (
    "scenario",
    "mode",
    "checkpoints",
    "events published",
    "returned/raised",
    "outcome",
    "verdict",
    "s",
)


def table_lines(rows: Sequence[Row]) -> list[str]:
    cells = [
        (
            row.scenario.name,
            row.mode,
            str(len(row.created)),
            _events_cell(row),
            _returns_cell(row),
            _outcome_cell(row),
            "PASS" if row.passed else "FAIL",
            f"{row.elapsed:.1f}",
        )
        for row in rows
    ]
    widths = [max(len(text) for text in column) for column in zip(HEADERS, *cells, strict=False)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()

    lines = [line(HEADERS), line(["-" * width for width in widths])]
    lines += [line(values) for values in cells]
    for row in rows:
        lines += [f"FAIL {row.scenario.name} [{row.mode}]: {problem}" for problem in row.problems]
    return lines


def run_matrix(harness: Harness, scenarios: Sequence[Scenario] = SCENARIOS) -> Iterator[Row]:
    for scenario in scenarios:
        for mode in MODES:
            yield harness.run(scenario, mode)


def main(argv: Sequence[str] = ()) -> int:
    if list(argv) == ["--child"]:
        return _child_main()
    out: TextIO = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    # The function's JSON logs (and the emulator's and moto's) go to a file; the table goes to the terminal.
    log = tempfile.NamedTemporaryFile("w+", prefix="faults-", suffix=".log", delete=False)  # noqa: SIM115
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    started = time.monotonic()
    rows: list[Row] = []
    secrets = static_secrets()
    with Sandbox() as sandbox, Harness(sandbox) as harness:
        for row in run_matrix(harness):
            rows.append(row)
            secrets |= signatures_and_tokens(sandbox.emulator.requests) | set(sandbox.emulator.issued_tokens)
            print(f"{row.scenario.name} [{row.mode}] {'PASS' if row.passed else 'FAIL'}", file=sys.stderr)
            out.write(".")
    sys.stdout.flush()
    sys.stderr.flush()
    log.seek(0)
    logged = log.read()
    events = json.dumps([row.events for row in rows]) + "\n".join(e for row in rows for e in row.errors)
    leaked = leaks([logged, events], secrets)
    out.write("\n" + "\n".join(table_lines(rows)) + "\n")
    failed = sum(1 for row in rows if not row.passed)
    out.write(
        f"\n{len(rows)} rows ({len(SCENARIOS)} scenarios x {len(MODES)} modes), {failed} failed, "
        f"no secret in {len(logged) // 1024} KiB of logs, events and errors, "
        f"{time.monotonic() - started:.1f}s\n"
        if not leaked
        else f"\nSECRETS LEAKED into logs, events or errors: {leaked}\n"
    )
    log.close()
    if failed or leaked:
        out.write(f"the function's logs: {log.name}\n")
        return 1
    os.unlink(log.name)
    return 0
