"""`invoke --real FILE`: run the real handler on a trigger file, against the endpoints configured in the
environment, and show how each request ended.

What a person sees of an invocation (`Run`, `Recorder`) is shared with the local sandbox's invoke of
the development tools, which runs the same handler against a CBR emulator and moto.
"""

# ruff: noqa: PLC0415 - the function's modules are imported by the commands that use them, when they run

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, cast

from cbr_checkpointer.cli.common import EXIT_OK, EXIT_PROBLEM, CommandError, read_json, work_items
from cbr_checkpointer.local_context import LocalContext
from cbr_checkpointer.values import field, value

if TYPE_CHECKING:
    from cbr_checkpointer.domain import BackupRequest, ErrorInfo, Outcome, WorkItem
    from cbr_checkpointer.runtime import Runtime

# template.yaml: Timeout 120.
LAMBDA_TIMEOUT_SECONDS = 120.0
GOOD_OUTCOMES = frozenset({"created", "validated"})
SANDBOX_COMMAND = "python -m devtools.cli invoke"


def add_invoke_options(invoke: argparse.ArgumentParser) -> None:
    """The options of every invoke: the file, what is printed, and what the handler sees."""
    invoke.add_argument("file", metavar="FILE", help="trigger payload (JSON file; - reads stdin)")
    invoke.add_argument("--json", action="store_true", help="one machine-readable JSON document on stdout")
    invoke.add_argument(
        "--dry-run",
        action="store_true",
        help="set DRY_RUN=true: validate and publish 'CBR Backup Request Validated'; call CBR for nothing",
    )
    invoke.add_argument(
        "--verbose",
        action="store_true",
        help="also show the function's own JSON log lines and EMF metrics on stderr",
    )
    invoke.add_argument(
        "--timeout",
        type=float,
        default=LAMBDA_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"the Lambda timeout the handler sees (default {LAMBDA_TIMEOUT_SECONDS:g}, as template.yaml)",
    )


def add_parser(commands: Any) -> None:
    invoke = commands.add_parser(
        "invoke",
        help="run the real handler on a trigger file, against the configured endpoints (--real)",
        description="Run the real Lambda handler on a trigger file against the endpoints configured in "
        "the environment (CBR_ENDPOINT or CBR_REGION, Huawei credentials, EVENT_BUS_NAME, AWS_* ...: "
        "see README, Configuration); --real says so on purpose. A local run against a CBR emulator "
        f"and moto is `{SANDBOX_COMMAND} FILE` in a checkout of the repository (`make run`). stderr "
        "gets one line per request and a summary (with --verbose also the function's logs); stdout "
        "gets the published events as a JSON array, or with --json one JSON document with every "
        "request's outcome and the events.",
    )
    add_invoke_options(invoke)
    invoke.add_argument(
        "--real", action="store_true", help="required: use the real endpoints configured in the environment"
    )
    invoke.set_defaults(command=command)


@contextlib.contextmanager
def function_output(*, verbose: bool) -> Iterator[None]:
    """Where the function's own output goes while it runs here: its JSON logs and EMF metrics print to
    stdout, as in Lambda, and stdout is kept for the result. With `verbose` they go to stderr, else
    nowhere. Powertools' Logger binds its stream when it is first imported, so the function's modules
    must first be imported inside this block."""
    with contextlib.ExitStack() as stack:
        sink: TextIO = sys.stderr if verbose else stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(contextlib.redirect_stdout(sink))
        yield


@value(frozen=False)
class Result:
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


def result_of(finished: Outcome | BaseException, item: WorkItem) -> Result:
    from cbr_checkpointer.domain import Outcome, TransientFailure

    result = Result("error", item.idempotency_key, project_id=item.project_id, vault_id=item.vault_id)
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


class Recorder:
    """Watches one invocation from inside, as the runtime's observer: each request as it finishes, and
    what was published."""

    def __init__(self, *, order: Mapping[str, int], total: int, progress: bool) -> None:
        self._order = order
        self._total = total
        self._progress = progress and self._total > 1
        self._lock = threading.Lock()
        self._results: list[Result] = []
        self._by_outcome: dict[int, Result] = {}
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
        result = result_of(finished, item)
        with self._lock:
            self._results.append(result)
            if outcome is not None:
                self._by_outcome[id(outcome)] = result
            done = len(self._results)
            if self._progress:
                print(f"[{done}/{max(done, self._total)}] {result.line()}", file=sys.stderr, flush=True)

    @property
    def results(self) -> list[Result]:
        with self._lock:
            results = list(self._results)
        return sorted(results, key=lambda result: self._order.get(result.idempotency_key, self._total))


@value(frozen=False)
class Run:
    """One invocation of the handler and what came of it."""

    file: str
    mode: str
    dry_run: bool
    results: list[Result] = field(default_factory=list)
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


def _expected_order(runtime: Runtime, event: Any, request_id: str) -> tuple[dict[str, int], int]:
    """Each request's idempotency key -> its place in the trigger, as the handler will parse it; and
    how many requests there are."""
    groups = work_items(event, runtime.defaults, request_id=request_id, now=datetime.now(UTC))
    items = [item for group in groups for item in group.items]
    order: dict[str, int] = {}
    for index, item in enumerate(items):
        order.setdefault(item.idempotency_key, index)
    return order, len(items)


def invoke_handler(run: Run, event: Any, context: LocalContext, *, progress: bool) -> Recorder:
    """Call the real handler with the runtime of the current environment. Call with stdout redirected."""
    from cbr_checkpointer.handler import lambda_handler
    from cbr_checkpointer.runtime import get_runtime, observing

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    runtime = get_runtime()
    order, total = _expected_order(runtime, event, context.aws_request_id)
    recorder = Recorder(order=order, total=total, progress=progress)
    with observing(recorder):
        try:
            run.returned = lambda_handler(event, cast("LambdaContext", context))
        except Exception as error:
            run.raised = error
    run.results = recorder.results
    return recorder


def invoke_for_real(run: Run, event: Any, context: LocalContext, *, progress: bool) -> None:
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
    recorder = invoke_handler(run, event, context, progress=progress)
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


def show(run: Run, *, as_json: bool) -> int:
    """Print what came of the invocation (the person's summary on stderr, the events on stdout; or one
    JSON document) and return the exit code."""
    if as_json:
        print(json.dumps(run.to_json(), indent=2, default=str))
    else:
        run.report(sys.stderr)
        print(json.dumps(run.events, indent=2, default=str))
    return EXIT_OK if run.ok else EXIT_PROBLEM


def command(arguments: argparse.Namespace, prog: str) -> int:
    if not arguments.real:
        raise CommandError(
            "invoke runs the function against the endpoints configured in your environment: add "
            f"--real to do so. For a local run against a CBR emulator and moto, use `{SANDBOX_COMMAND} "
            f"{arguments.file}` (or `make run EVENT={arguments.file}`) in a checkout of the repository."
        )
    _, event = read_json(arguments.file)
    invocation = Run(file=arguments.file, mode="real", dry_run=arguments.dry_run)
    context = LocalContext(timeout_seconds=arguments.timeout)
    with function_output(verbose=arguments.verbose):
        invoke_for_real(invocation, event, context, progress=not arguments.json)
    return show(invocation, as_json=arguments.json)
