"""Runs one scenario in one mode: the first delivery, then redeliveries the way the platform makes
them, each in a fresh execution environment (or a child process killed at its deadline).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from cbr_checkpointer.local_context import LocalContext
from devtools.faults.model import MAX_REDELIVERIES, Mode, Row, Scenario, World
from devtools.faults.proxy import FaultProxy
from devtools.faults.verdicts import bypassed_problems, expectation_problems, invariant_problems
from devtools.records import sqs_record
from devtools.sandbox import REGION, Sandbox

ROOT = Path(__file__).resolve().parents[2]


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
        row.problems = bypassed_problems(row) + invariant_problems(row) + expectation_problems(row)
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


def child_main() -> int:
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
