"""`cbr-checkpointer` (also `python -m cbr_checkpointer`): a command line for the people who run the function.

    validate FILE...          check request or trigger files against the contract, as the function would
    invoke FILE               run the real handler on a trigger file, against the local emulator + moto
                              (default) or the endpoints configured in the environment (--real)
    send FILE --queue-url U   validate a request, then put it on the request queue (SQS SendMessage)
    emulator                  serve the local Huawei IAM + CBR emulator for your own tools

Exit codes: 0 all good; 1 a request is invalid, failed or was not published; 2 the command could not do
its job (unreadable or non-JSON file, bad configuration, local sandbox not available).

Only the standard library is imported up front: each command imports what it needs when it runs, and
the Lambda handler never imports this module.
"""

# ruff: noqa: PLC0415 - the function's modules are imported by the commands that use them (see above)

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from cbr_checkpointer.local_context import LocalContext

if TYPE_CHECKING:
    from cbr_checkpointer.aws import AwsJsonClient
    from cbr_checkpointer.domain import BackupRequest, ErrorInfo, Outcome, WorkItem
    from cbr_checkpointer.runtime import Runtime
    from cbr_checkpointer.triggers import RequestDefaults, RequestItem

PROG = "cbr-checkpointer"
EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2

# Stand-ins for what only the deployed function's configuration knows. Defaults are not validated
# by `triggers`, so a request that leaves these to the configuration passes, and is shown as such.
DEPLOYMENT_PROJECT_ID = "$HUAWEICLOUD_SDK_PROJECT_ID"
DEPLOYMENT_VAULT_ID = "00000000-0000-4000-8000-000000000000"
LAMBDA_REQUEST_ID = "<lambda-request-id>"
SQS_MESSAGE_ID = "<MessageId>"
# template.yaml: Timeout 120, MemorySize 256.
LAMBDA_TIMEOUT_SECONDS = 120.0
LAMBDA_MEMORY_MB = 256
GOOD_OUTCOMES = frozenset({"created", "validated"})
TRIGGER_NAMES = {
    "schedule": "Scheduler input",
    "direct": "direct invoke",
    "rule": "scheduled rule",
    "eventbridge": "EventBridge event",
    "sqs": "SQS batch",
}
# The envelope's rule for project_id (triggers), applied to --project-id too.
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SQS_HOST = re.compile(r"(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?")


class CommandError(Exception):
    """The command cannot do its job (exit 2); the message says why and what to do."""


def _project_id(value: str) -> str:
    if not _PROJECT_ID.fullmatch(value):
        raise argparse.ArgumentTypeError("must be a project id: 1-64 letters, digits, '_' or '-'")
    return value


# -- reading files ---------------------------------------------------------------------------------


def _read(path: str) -> tuple[str, Any]:
    """The text of a JSON file (`-` is stdin) and the document it holds."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: cannot read: {error}") from None
    try:
        return text, json.loads(text)
    except RecursionError:
        raise CommandError(f"{path}: not usable: the JSON is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise CommandError(
            f"{path}: not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


# -- what a trigger holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """The work items of one invocation, or of one record of an SQS batch (`label` names the record)."""

    label: str | None
    items: list[RequestItem]


def _work_items(document: Any, defaults: RequestDefaults, *, request_id: str, now: datetime) -> list[_Group]:
    """The work items the function would make of this trigger, with the real `triggers` module."""
    from cbr_checkpointer.triggers import is_sqs_batch, parse_invocation, parse_sqs_record

    if isinstance(document, Mapping) and is_sqs_batch(document):
        groups = []
        for index, record in enumerate(document["Records"]):
            message_id = record.get("messageId")
            label = f"Records[{index}]" + (
                f" (messageId {message_id})" if isinstance(message_id, str) else ""
            )
            groups.append(_Group(label, parse_sqs_record(record, defaults=defaults)))
        return groups
    return [_Group(None, parse_invocation(document, request_id=request_id, now=now, defaults=defaults))]


def _defaults_for_checking(project_id: str | None, default_vault_id: str | None) -> RequestDefaults:
    from cbr_checkpointer.triggers import RequestDefaults

    allowed = os.environ.get("ALLOWED_PROJECT_IDS")
    return RequestDefaults(
        project_id=project_id or os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID") or DEPLOYMENT_PROJECT_ID,
        default_vault_id=default_vault_id or os.environ.get("DEFAULT_VAULT_ID") or DEPLOYMENT_VAULT_ID,
        # The deployment's own lists are not known here: any project and region unless told.
        allowed_project_ids=frozenset(filter(None, allowed.split(","))) if allowed else None,
        regions=None,
    )


def _shown_vault(vault_id: str | None) -> str | None:
    return "$DEFAULT_VAULT_ID" if vault_id == DEPLOYMENT_VAULT_ID else vault_id


def _item_lines(item: RequestItem, indent: str) -> list[str]:
    from cbr_checkpointer.domain import Rejected, Selection
    from cbr_checkpointer.triggers import derived_name  # the name a request without one gets

    if isinstance(item, Rejected):
        lines = [f"{indent}rejected  key={item.idempotency_key}"]
        lines += [f"{indent}  {error.field}: {error.message}" for error in item.errors]
        return lines
    if isinstance(item, Selection):
        selection = [
            f"{indent}ok        key={item.idempotency_key}",
            f"project={item.project_id}",
            f"select={json.dumps(item.selector, ensure_ascii=False)}",
        ]
        return ["  ".join(selection + (["(dry run)"] if item.dry_run else []))]
    parts = [
        f"{indent}ok        key={item.idempotency_key}",
        f"project={item.project_id}",
        f"vault={_shown_vault(item.vault_id)}",
        f"name={item.name}"
        + (" (derived from the key)" if item.name == derived_name(item.idempotency_key) else ""),
    ]
    if item.dry_run:
        parts.append("(dry run)")
    return ["  ".join(parts)]


# -- validate ----------------------------------------------------------------------------------------


def _cmd_validate(arguments: argparse.Namespace) -> int:
    from cbr_checkpointer.domain import Rejected

    defaults = _defaults_for_checking(arguments.project_id, arguments.default_vault_id)
    worst = EXIT_OK
    left_to_deployment = False
    for path in arguments.files:
        try:
            _, document = _read(path)
        except CommandError as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        groups = _work_items(document, defaults, request_id=LAMBDA_REQUEST_ID, now=datetime.now(UTC))
        items = [item for group in groups for item in group.items]
        rejected = sum(isinstance(item, Rejected) for item in items)
        kind = TRIGGER_NAMES[items[0].trigger.kind] if items else "trigger"
        if groups[0].label is not None:
            kind = f"{kind} of {len(groups)} record{'s' if len(groups) != 1 else ''}"
        count = f"{len(items)} request{'s' if len(items) != 1 else ''}"
        if rejected:
            print(f"{path}: INVALID ({kind}: {rejected} of {count} rejected)")
            worst = max(worst, EXIT_PROBLEM)
        else:
            print(f"{path}: valid ({kind}, {count})")
        left_to_deployment = left_to_deployment or any(
            item.project_id == DEPLOYMENT_PROJECT_ID for item in items if not isinstance(item, Rejected)
        )
        for group in groups:
            indent = "  "
            if group.label is not None:
                print(f"  {group.label}, body:")
                indent = "    "
            for item in group.items:
                for line in _item_lines(item, indent):
                    print(line)
    if left_to_deployment:
        print(
            "note: project=$HUAWEICLOUD_SDK_PROJECT_ID: the request leaves project_id to the function's "
            "configuration; give --project-id or set HUAWEICLOUD_SDK_PROJECT_ID to check against yours",
            file=sys.stderr,
        )
    return worst


# -- invoke ------------------------------------------------------------------------------------------


@dataclass
class _Result:
    """How one request ended, for a person and for `--json`."""

    outcome: str  # created | validated | failed | rejected | transient | error
    idempotency_key: str
    project_id: str | None = None
    vault_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    duplicate: bool = False
    published: bool | None = None  # None: no outcome event applies (transient or error)

    @property
    def ok(self) -> bool:
        return self.outcome in GOOD_OUTCOMES and self.published is not False

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"outcome": self.outcome, "idempotency_key": self.idempotency_key}
        for name in ("project_id", "vault_id", "error"):
            value = getattr(self, name)
            if value is not None:
                shown[name] = value
        if self.checkpoint is not None:
            shown["checkpoint_id"] = self.checkpoint.get("id")
            shown["checkpoint_status"] = self.checkpoint.get("status")
        if self.duplicate:
            shown["duplicate"] = True
        if self.published is not None:
            shown["published"] = self.published
        return shown

    def line(self) -> str:
        parts = [f"{self.outcome:<9}", f"key={self.idempotency_key}"]
        if self.vault_id:
            parts.append(f"vault={self.vault_id}")
        if self.checkpoint is not None:
            parts.append(f"checkpoint={self.checkpoint.get('id')} ({self.checkpoint.get('status')})")
        if self.duplicate:
            parts.append("duplicate: served again from the ledger")
        if self.error is not None:
            parts.append(f"{self.error.get('code') or self.error.get('kind')}: {self.error.get('message')}")
        if self.published is False:
            parts.append("EVENT NOT PUBLISHED")
        return "  ".join(parts)


def _result_of(finished: Outcome | BaseException, item: WorkItem) -> _Result:
    from cbr_checkpointer.domain import Outcome, TransientFailure

    result = _Result("error", item.idempotency_key, project_id=item.project_id, vault_id=item.vault_id)
    if isinstance(finished, Outcome):
        result.outcome = finished.kind
        result.checkpoint = finished.checkpoint
        result.duplicate = finished.duplicate
        result.error = None if finished.error is None else finished.error.to_detail()
    elif isinstance(finished, TransientFailure):
        result.outcome = "transient"
        result.error = finished.info.to_detail()
    else:
        result.error = {"kind": type(finished).__name__, "message": str(finished)}
    return result


class _Recorder:
    """Watches one invocation from inside, as the runtime's observer: each request as it finishes, and
    what was published."""

    def __init__(self, *, order: Mapping[str, int], total: int, progress: bool) -> None:
        self._order = order
        self._total = total
        self._progress = progress and self._total > 1
        self._lock = threading.Lock()
        self._results: list[_Result] = []
        self._by_outcome: dict[int, _Result] = {}
        self.published: list[Outcome] = []

    def request_started(self, item: WorkItem) -> None:
        pass

    def request_retried(
        self, item: BackupRequest, attempt: int, delay_seconds: float, error: ErrorInfo
    ) -> None:
        pass

    def request_finished(self, item: WorkItem, result: Outcome | BaseException) -> None:
        self._finished(item, result, None if isinstance(result, BaseException) else result)

    def events_published(self, published: Sequence[Outcome], unpublished: Sequence[Outcome]) -> None:
        with self._lock:
            self.published.extend(published)
            for outcomes, sent in ((published, True), (unpublished, False)):
                for outcome in outcomes:
                    if id(outcome) in self._by_outcome:
                        self._by_outcome[id(outcome)].published = sent

    def invocation_failed(self, error: BaseException) -> None:
        pass

    def _finished(self, item: WorkItem, finished: Any, outcome: Outcome | None) -> None:
        result = _result_of(finished, item)
        with self._lock:
            self._results.append(result)
            if outcome is not None:
                self._by_outcome[id(outcome)] = result
            done = len(self._results)
            if self._progress:
                print(f"[{done}/{max(done, self._total)}] {result.line()}", file=sys.stderr, flush=True)

    @property
    def results(self) -> list[_Result]:
        with self._lock:
            results = list(self._results)
        return sorted(results, key=lambda result: self._order.get(result.idempotency_key, self._total))


@dataclass
class _Run:
    """One invocation of the handler and what came of it."""

    file: str
    mode: str
    dry_run: bool
    results: list[_Result] = field(default_factory=list)
    returned: Any = None
    raised: BaseException | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    events_from: str = ""
    emulator: dict[str, Any] | None = None

    @property
    def batch_item_failures(self) -> list[str]:
        if not isinstance(self.returned, Mapping):
            return []
        failures = self.returned.get("batchItemFailures") or []
        return [str(failure.get("itemIdentifier")) for failure in failures if isinstance(failure, Mapping)]

    @property
    def ok(self) -> bool:
        return (
            self.raised is None
            and bool(self.results)
            and all(result.ok for result in self.results)
            and not self.batch_item_failures
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "file": self.file,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "requests": [result.to_json() for result in self.results],
        }
        if self.raised is not None:
            document["handler"] = {
                "raised": {"type": type(self.raised).__name__, "message": str(self.raised)}
            }
        else:
            document["handler"] = {"returned": self.returned}
        if self.emulator is not None:
            document["emulator"] = self.emulator
        document["events_from"] = self.events_from
        document["events"] = self.events
        return document

    def report(self, stream: Any) -> None:
        """The person's view: one line per request, then what the handler said, then the events."""
        count = len(self.results)
        print(f"\n{count} request{'s' if count != 1 else ''} in {self.file}:", file=stream)
        for result in self.results:
            print(f"  {result.line()}", file=stream)
        if self.raised is not None:
            print(
                f"the handler raised {type(self.raised).__name__}: {self.raised}\n"
                "  (deployed, Lambda would retry the invocation, then send it to its failure destination)",
                file=stream,
            )
        if self.batch_item_failures:
            print(
                f"batchItemFailures: {', '.join(self.batch_item_failures)}\n"
                "  (deployed, these messages would go back to the queue, and after 5 receives to the DLQ)",
                file=stream,
            )
        if self.emulator is not None:
            print(
                f"the emulator received {self.emulator['requests']} request(s) and created "
                f"{self.emulator['checkpoints_created']} checkpoint(s)",
                file=stream,
            )
        kinds = ", ".join(event.get("detail-type", "?") for event in self.events) or "none"
        print(f"events {self.events_from}: {len(self.events)} ({kinds}); on stdout:", file=stream, flush=True)


def _import_sandbox() -> ModuleType:
    """devtools.sandbox, which only exists in a checkout of the repository with the dev requirements."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "devtools" / "sandbox.py").is_file() and str(checkout) not in sys.path:
        # The console script runs from anywhere; the editable install points back into the checkout.
        sys.path.append(str(checkout))
    try:
        return importlib.import_module("devtools.sandbox")
    except ModuleNotFoundError as error:
        if error.name in ("devtools", "devtools.sandbox"):
            raise CommandError(
                "invoke needs the local sandbox (CBR emulator + moto, devtools/sandbox.py), which only "
                "exists in a checkout of the repository with the dev requirements installed (`make run` "
                "builds them). Use `invoke --real` to run against the endpoints in your environment."
            ) from None
        raise CommandError(
            f"the local sandbox needs {error.name!r}, one of the dev requirements: run "
            "`pip install -r requirements/dev.txt` in the repository (or use `make run`)"
        ) from None


def _expected_order(runtime: Runtime, event: Any, request_id: str) -> tuple[dict[str, int], int]:
    """Each request's idempotency key -> its place in the trigger, as the handler will parse it; and
    how many requests there are."""
    groups = _work_items(event, runtime.defaults, request_id=request_id, now=datetime.now(UTC))
    items = [item for group in groups for item in group.items]
    order: dict[str, int] = {}
    for index, item in enumerate(items):
        order.setdefault(item.idempotency_key, index)
    return order, len(items)


def _invoke_handler(run: _Run, event: Any, context: LocalContext, *, progress: bool) -> _Recorder:
    """Call the real handler with the runtime of the current environment. Call with stdout redirected."""
    from cbr_checkpointer.handler import lambda_handler
    from cbr_checkpointer.runtime import get_runtime, observing

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    runtime = get_runtime()
    order, total = _expected_order(runtime, event, context.aws_request_id)
    recorder = _Recorder(order=order, total=total, progress=progress)
    with observing(recorder):
        try:
            run.returned = lambda_handler(event, cast("LambdaContext", context))
        except Exception as error:
            run.raised = error
    run.results = recorder.results
    return recorder


def _invoke_in_sandbox(run: _Run, event: Any, context: LocalContext, *, auth: str, progress: bool) -> None:
    import logging

    sandbox_module = _import_sandbox()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    overrides = {"DRY_RUN": "true"} if run.dry_run else {}
    # watch=True: a watch queue in moto and backups that finish in the emulator after half a second,
    # so the run shows the whole life of a checkpoint: Created, then Completed (or Failed).
    with sandbox_module.Sandbox(auth=auth, watch=True) as sandbox, sandbox.configured(**overrides):
        emulator = sandbox.emulator
        print(f"CBR emulator: {emulator.base_url}   moto: {sandbox.moto_url}   auth: {auth}", file=sys.stderr)
        print(f"invoking cbr_checkpointer.handler.lambda_handler with {run.file}", file=sys.stderr)
        _invoke_handler(run, event, context, progress=progress)
        run.events = sandbox.published_events()
        if progress and sandbox.watch_messages():
            print("following the checkpoint(s) to completion through the watch queue ...", file=sys.stderr)
        from cbr_checkpointer.handler import lambda_handler

        run.events += sandbox.follow_completion(
            lambda_handler, lambda: LocalContext(timeout_seconds=context.timeout_seconds)
        )
        run.events_from = f"read back from bus {sandbox_module.BUS_NAME!r} (moto)"
        run.emulator = {
            "base_url": emulator.base_url,
            "requests": len(emulator.requests),
            "checkpoints_created": len(emulator.created),
            "token_requests": emulator.token_requests,
        }


def _invoke_for_real(run: _Run, event: Any, context: LocalContext, *, progress: bool) -> None:
    from cbr_checkpointer.publisher import detail_type, event_detail
    from cbr_checkpointer.runtime import get_runtime, reset_runtime
    from cbr_checkpointer.settings import ConfigurationError

    if run.dry_run:
        os.environ["DRY_RUN"] = "true"
    reset_runtime()
    try:
        settings = get_runtime().settings
    except ConfigurationError as error:
        raise CommandError(f"configuration (see README, Configuration): {error}") from None
    print(
        f"CBR: {settings.cbr_endpoint}   bus: {settings.event_bus_name}   "
        f"ledger: {settings.idempotency_table}   dry run: {str(settings.dry_run).lower()}",
        file=sys.stderr,
    )
    recorder = _invoke_handler(run, event, context, progress=progress)
    run.events = [
        {
            "source": settings.event_source,
            "detail-type": detail_type(outcome),
            "event-bus-name": settings.event_bus_name,
            "detail": event_detail(outcome),
        }
        for outcome in recorder.published
    ]
    run.events_from = f"put on bus {settings.event_bus_name!r} (as sent)"


def _cmd_invoke(arguments: argparse.Namespace) -> int:
    _, event = _read(arguments.file)
    if arguments.real and arguments.auth is not None:
        raise CommandError("--auth picks the sandbox's Huawei auth; with --real the environment decides")
    run = _Run(file=arguments.file, mode="real" if arguments.real else "sandbox", dry_run=arguments.dry_run)
    context = LocalContext(timeout_seconds=arguments.timeout)
    progress = not arguments.json
    # The function's JSON logs and EMF metrics print to stdout, as in Lambda: here they go to stderr,
    # and stdout carries only the result. Powertools' Logger binds its stream on first import, below.
    with contextlib.redirect_stdout(sys.stderr):
        if arguments.real:
            _invoke_for_real(run, event, context, progress=progress)
        else:
            _invoke_in_sandbox(run, event, context, auth=arguments.auth or "aksk", progress=progress)
    if arguments.json:
        print(json.dumps(run.to_json(), indent=2, default=str))
    else:
        run.report(sys.stderr)
        print(json.dumps(run.events, indent=2, default=str))
    return EXIT_OK if run.ok else EXIT_PROBLEM


# -- send --------------------------------------------------------------------------------------------


def _sqs_client(queue_url: str, environ: Mapping[str, str]) -> AwsJsonClient:
    """An SQS client configured as the AWS SDKs are: AWS_* credentials, region and endpoint overrides."""
    from cbr_checkpointer.aws import AwsCredentials, aws_json_client
    from cbr_checkpointer.settings import ConfigurationError, Settings

    parts = urlsplit(queue_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.count("/") < 2:
        raise CommandError(f"--queue-url {queue_url!r} is not a queue URL such as {_QUEUE_URL_EXAMPLE}")
    aws = {name: value for name, value in environ.items() if name.startswith("AWS_")}
    region_in_url = _SQS_HOST.fullmatch(parts.hostname)
    if not (aws.get("AWS_REGION") or aws.get("AWS_DEFAULT_REGION")) and region_in_url:
        aws["AWS_REGION"] = region_in_url[1] or region_in_url[2]
    overridden = aws.get("AWS_ENDPOINT_URL_SQS") or aws.get("AWS_ENDPOINT_URL")
    if not overridden and not region_in_url:
        # A local queue (moto, LocalStack): talk to the server that named it.
        aws["AWS_ENDPOINT_URL_SQS"] = f"{parts.scheme}://{parts.netloc}"
    try:
        # The function's own parsing and checks (https, or http on loopback only); CBR is not used here,
        # any valid region will do.
        settings = Settings.from_env({**aws, "CBR_REGION": "cn-north-4"})
    except ConfigurationError as error:
        raise CommandError(str(error)) from None
    if settings.aws_access_key_id is None or settings.aws_secret_access_key is None:
        raise CommandError(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
            'credentials); for a profile or SSO: eval "$(aws configure export-credentials --format env)"'
        )
    credentials = AwsCredentials(
        access_key_id=settings.aws_access_key_id.get_secret_value(),
        secret_access_key=settings.aws_secret_access_key,
        session_token=settings.aws_session_token,
    )
    return aws_json_client("sqs", settings.aws_endpoint("sqs"), settings.aws_region, credentials)


_QUEUE_URL_EXAMPLE = "https://sqs.eu-west-1.amazonaws.com/123456789012/cbr-checkpointer-requests"


def _cmd_send(arguments: argparse.Namespace) -> int:
    import hashlib

    from cbr_checkpointer.aws import AwsError
    from cbr_checkpointer.domain import Rejected
    from cbr_checkpointer.triggers import is_sqs_batch, parse_sqs_record

    text, document = _read(arguments.file)
    if isinstance(document, Mapping) and is_sqs_batch(document):
        print(
            f"{arguments.file}: is an SQS batch (what Lambda receives), not a message body: send each "
            "record's body as its own file; nothing sent",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    defaults = _defaults_for_checking(arguments.project_id, None)
    record = {"messageId": SQS_MESSAGE_ID, "body": text, "eventSource": "aws:sqs"}
    items = parse_sqs_record(record, defaults=defaults)
    if any(isinstance(item, Rejected) for item in items):
        print(f"{arguments.file}: INVALID, nothing sent:", file=sys.stderr)
        for item in items:
            for line in _item_lines(item, "  "):
                print(line, file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{arguments.file}: valid ({len(items)} request{'s' if len(items) != 1 else ''}):", file=sys.stderr)
    for item in items:
        for line in _item_lines(item, "  "):
            print(line, file=sys.stderr)
    another_message = parse_sqs_record(record | {"messageId": f"{SQS_MESSAGE_ID}-2"}, defaults=defaults)
    if [item.idempotency_key for item in items] != [item.idempotency_key for item in another_message]:
        print(
            "  note: no idempotency_key, so the request is keyed by the message's MessageId: sending this "
            "file again makes another checkpoint",
            file=sys.stderr,
        )
    message: dict[str, Any] = {"QueueUrl": arguments.queue_url, "MessageBody": text}
    if arguments.queue_url.endswith(".fifo"):
        message["MessageGroupId"] = arguments.group_id
        message["MessageDeduplicationId"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    client = _sqs_client(arguments.queue_url, os.environ)
    try:
        answer = client.call("SendMessage", message)
    except AwsError as error:
        print(f"{PROG}: SendMessage to {arguments.queue_url} failed: {error}", file=sys.stderr)
        return EXIT_PROBLEM
    finally:
        client.close()
    digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
    if answer.get("MD5OfMessageBody") not in (None, digest):
        print(f"{PROG}: warning: SQS reports a different MD5 of the body than was sent", file=sys.stderr)
    print(answer.get("MessageId"))
    return EXIT_OK


# -- emulator ----------------------------------------------------------------------------------------


def _cmd_emulator(emulator_arguments: list[str]) -> int:
    """Serve the emulator with `python -m cbr_emulator`'s own arguments and main loop."""
    try:
        emulator_main = importlib.import_module("cbr_emulator.__main__")
    except ModuleNotFoundError:
        raise CommandError(
            "the CBR emulator (src/cbr_emulator) is not installed here: it ships with the repository, "
            "not with the function's package"
        ) from None
    parsed = emulator_main.parse_arguments(emulator_arguments)
    vaults = ", ".join(parsed.vault) or "none (add --vault UUID; any other vault answers 404)"
    print(
        "CBR + IAM emulator; it accepts:\n"
        f"  project id:  {parsed.project_id}\n"
        f"  AK/SK:       {parsed.ak} / {parsed.sk}   (SDK-HMAC-SHA256)\n"
        f"  IAM user:    {parsed.user} / {parsed.password} in domain {parsed.domain}   (token auth)\n"
        f"  vaults:      {vaults}\n"
        "point the function at it with CBR_ENDPOINT and HUAWEICLOUD_SDK_IAM_ENDPOINT = the URL below;\n"
        "Ctrl-C stops it. Base URL:",
        file=sys.stderr,
        flush=True,
    )
    emulator_main.main(emulator_arguments)
    return EXIT_OK


# -- the parser --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check, run and send backup requests for the cbr-checkpointer function.",
        epilog="Exit codes: 0 all good; 1 a request is invalid, failed or was not published; "
        "2 the command could not do its job.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check request or trigger files against the contract",
        description="Check request or trigger files (Scheduler input, native/shorthand/many requests, "
        "scheduled rule, EventBridge event, SQS batch) exactly as the function parses them, and print "
        "each error with the path of its field. Without --project-id or HUAWEICLOUD_SDK_PROJECT_ID, a "
        "request may leave project_id to the function's configuration; likewise a bare scheduled rule "
        "and DEFAULT_VAULT_ID.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="JSON file; - reads stdin")
    validate.add_argument(
        "--project-id", type=_project_id, help="default project id (else $HUAWEICLOUD_SDK_PROJECT_ID)"
    )
    validate.add_argument(
        "--default-vault-id", help="vault of a bare scheduled rule (else $DEFAULT_VAULT_ID)"
    )

    invoke = commands.add_parser(
        "invoke",
        help="run the real handler on a trigger file",
        description="Run the real Lambda handler on a trigger file. By default against a local CBR "
        "emulator and moto (EventBridge bus with a capture queue, Secrets Manager), as `make run` "
        "does; with --real against the endpoints configured in the environment (CBR_ENDPOINT or "
        "CBR_REGION, Huawei credentials, EVENT_BUS_NAME, AWS_* ...: see README, Configuration). The "
        "function's logs go to stderr; stdout gets the published events as a JSON array, or with "
        "--json one JSON document with every request's outcome and the events.",
    )
    invoke.add_argument("file", metavar="FILE", help="trigger payload (JSON file; - reads stdin)")
    invoke.add_argument("--json", action="store_true", help="one machine-readable JSON document on stdout")
    invoke.add_argument("--real", action="store_true", help="use the real endpoints in the environment")
    invoke.add_argument(
        "--dry-run",
        action="store_true",
        help="set DRY_RUN=true: validate and publish 'CBR Backup Request Validated'; call CBR for nothing",
    )
    invoke.add_argument(
        "--auth",
        choices=["aksk", "token"],
        default=None,
        help="sandbox only: Huawei AK/SK signing (default) or IAM password/token from a moto secret",
    )
    invoke.add_argument(
        "--timeout",
        type=float,
        default=LAMBDA_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"the Lambda timeout the handler sees (default {LAMBDA_TIMEOUT_SECONDS:g}, as template.yaml)",
    )

    send = commands.add_parser(
        "send",
        help="validate a request, then put it on the request queue",
        description="Validate a request file as the function will read the message body, then send "
        "the file's text unchanged with SQS SendMessage (no boto3). Credentials, region and endpoint "
        "come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, "
        "AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL. Prints the MessageId.",
    )
    send.add_argument("file", metavar="FILE", help="request (JSON file; - reads stdin)")
    send.add_argument("--queue-url", required=True, help=f"e.g. {_QUEUE_URL_EXAMPLE}")
    send.add_argument(
        "--project-id", type=_project_id, help="default project id to check against (else as validate)"
    )
    send.add_argument(
        "--group-id", default=PROG, help="MessageGroupId for a FIFO queue (default %(default)s)"
    )

    commands.add_parser(
        "emulator",
        add_help=False,
        help="serve the local Huawei IAM + CBR emulator (emulator --help for its options)",
        description="Serve the local CBR emulator; the options are those of `python -m cbr_emulator`.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    parsed, extra = parser.parse_known_args(arguments)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "validate": _cmd_validate,
        "invoke": _cmd_invoke,
        "send": _cmd_send,
    }
    try:
        if parsed.command == "emulator":
            return _cmd_emulator(extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return handlers[parsed.command](parsed)
    except CommandError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
