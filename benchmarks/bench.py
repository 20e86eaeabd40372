"""`make bench`: cbr_checkpointer side by side with what a user would write instead (DESIGN §8).

One run, one CBR emulator and one moto server for both handlers:

- ours: `cbr_checkpointer.handler.lambda_handler` (httpx, own SigV4, DynamoDB ledger over the JSON API);
- reference: `benchmarks.reference_handler.lambda_handler` (huaweicloudsdkcbr, boto3, Powertools
  idempotency on DynamoDB, Powertools BatchProcessor).

Each handler runs in its own interpreter (benchmarks/worker.py) that sees only its own packages
(benchmarks/sites.py), so CPU time, RSS and imported modules are the handler's alone; the emulator,
moto and the counting proxies run in this process. Prints a table with ratios (ours / reference) and
PASS/MISS per budget, and writes BENCHMARKS.md and benchmarks/batch-wall.png.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.sites import build_sites  # noqa: E402
from cbr_checkpointer.settings import Settings  # noqa: E402
from devtools.faults import FaultProxy  # noqa: E402
from devtools.sandbox import REGION, Sandbox  # noqa: E402

OURS = "cbr_checkpointer.handler"
REFERENCE = "benchmarks.reference_handler"
HANDLERS = {"ours": OURS, "reference": REFERENCE}
EVENTS = ROOT / "events"
NOTES = ROOT / "benchmarks" / "notes.md"
LATENCY = 0.2
PLOT_SIZES = (1, 2, 5, 10, 20, 50, 100)
SQS_BATCH = 10
WARM_INVOCATIONS = 100
WARM_SINGLE_RUNS = 15
BENCH_BUS = "cbr-bench"  # a bus without rules: moto forwarding thousands of events would dominate
MAX_CONCURRENCY: int = Settings.model_fields["max_concurrency"].default  # not overridden by the bench
FAN_OUT = "ours, one fan-out invocation"


# -- events --------------------------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


SCHEDULE = _load("schedule.json")
SQS_RECORD = _load("sqs-batch.json")["Records"][0]  # a shorthand body with a `{time:...}` name


def schedule_event() -> dict[str, Any]:
    """events/schedule.json with a fresh idempotency key, so that every run really creates a checkpoint."""
    return SCHEDULE | {"idempotency_key": f"bench-{uuid.uuid4()}"}


def sqs_batch(size: int) -> dict[str, Any]:
    """An SQS batch of `size` records shaped as events/sqs-batch.json's first one, fresh message ids."""
    records = []
    for _ in range(size):
        record = copy.deepcopy(SQS_RECORD)
        record["messageId"] = str(uuid.uuid4())
        records.append(record)
    return {"Records": records}


def sqs_batches(total: int) -> list[dict[str, Any]]:
    """`total` requests as consecutive SQS batches of at most 10 (the template's BatchSize)."""
    return [sqs_batch(min(SQS_BATCH, total - start)) for start in range(0, total, SQS_BATCH)]


def fan_out(total: int) -> dict[str, Any]:
    """`total` requests in one `{"requests": [...]}` timer input."""
    item = {k: v for k, v in SCHEDULE.items() if k not in ("schedule_arn", "scheduled_time")}
    return {"idempotency_key": f"bench-{uuid.uuid4()}", "requests": [dict(item) for _ in range(total)]}


# -- workers -------------------------------------------------------------------------------------


class Worker:
    """One handler in a fresh interpreter: the import happens at start, invocations on demand."""

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.module = module
        self._process = subprocess.Popen(
            [sys.executable, "-S", "-m", "benchmarks.worker", module],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started: dict[str, Any] = self._read()

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=30)
            assert self._process.stderr is not None
            raise RuntimeError(f"{self.module} worker died:\n{self._process.stderr.read()[-4000:]}")
        return json.loads(line)

    def _ask(self, command: dict[str, Any]) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        return self._read()

    def invoke(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self._ask({"cmd": "invoke", "events": list(events)})
        for result in results:
            if result["error"] or result["failures"]:
                raise RuntimeError(f"{self.module}: invocation failed: {result}")
        return results

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._ask({"cmd": "stats"})
        return stats

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def workers(envs: dict[str, dict[str, str]]) -> Iterator[dict[str, Worker]]:
    started: dict[str, Worker] = {}
    try:
        for name, env in envs.items():
            started[name] = Worker(HANDLERS[name], env)
        yield started
    finally:
        for handler in started.values():
            handler.close()


# -- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    unit: str
    ours: float | None
    reference: float | None
    budget: str = ""
    verdict: str = ""  # PASS / MISS, or "" for an informative figure
    note: str = ""
    compare: bool = True

    @property
    def ratio(self) -> float | None:
        if not self.compare or self.ours is None or not self.reference:
            return None
        return self.ours / self.reference


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    plot: dict[str, dict[int, float]] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {_format_row(row)}", flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def interleaved(runs: int, measure: Callable[[str], Any], names: Sequence[str] = tuple(HANDLERS)) -> Any:
    """`runs` measurements per handler, alternating ours / reference so that drift hits both alike."""
    samples: dict[str, list[Any]] = {name: [] for name in names}
    for _ in range(runs):
        for name in names:
            samples[name].append(measure(name))
    return samples


IMPORT_PROBE = """
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
import {module}
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({{"wall": wall, "cpu": cpu, "boto3": "boto3" in sys.modules,
                  "botocore_session": "botocore.session" in sys.modules, "modules": len(sys.modules)}}))
"""


def cold_import(module: str, env: dict[str, str], *, isolated: bool = True) -> dict[str, Any]:
    """Import `module` in a fresh interpreter: wall and CPU seconds, and whether boto3 came along."""
    flags = ["-S"] if isolated else []
    completed = subprocess.run(
        [sys.executable, *flags, "-c", IMPORT_PROBE.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{completed.stderr[-4000:]}")
    facts: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return facts


# -- the bench -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, sandbox: Sandbox, proxy: FaultProxy, runs: int, plot_runs: int) -> None:
        self.sandbox = sandbox
        self.emulator = sandbox.emulator
        self.proxy = proxy
        self.runs = runs
        self.plot_runs = plot_runs
        self.results = Results()
        tables = {name: sandbox.create_ledger_table() for name in HANDLERS}
        for table in tables.values():
            sandbox.aws("dynamodb").call(
                "UpdateTimeToLive",
                {
                    "TableName": table,
                    "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expiration"},
                },
            )
        sandbox.aws("events").call("CreateEventBus", {"Name": BENCH_BUS})
        sites = build_sites()
        self.env = {name: self._environment(tables[name], sites[name]) for name in HANDLERS}
        # The dev venv as it is (every tool installed), for the informative import figure.
        self.venv_env = {
            name: env | {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"} for name, env in self.env.items()
        }
        sandbox.auth = "token"
        self.token_env = self._environment(tables["ours"], sites["ours"])
        sandbox.auth = "aksk"

    def _environment(self, table: str, site: Path) -> dict[str, str]:
        """The function's environment as Lambda would set it (both handlers read the same variables).

        Python runs with -S and sees only the handler's own packages (benchmarks/sites.py) and this repo.
        """
        return self.sandbox.environment | {
            "IDEMPOTENCY_TABLE": table,
            "EVENT_BUS_NAME": BENCH_BUS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": "cbr-checkpointer",
            "PYTHONPATH": f"{site}{os.pathsep}{ROOT}",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
        }

    def check_both_work(self) -> None:
        """Both handlers create the checkpoints (signatures accepted) and publish one event per request."""
        for name in HANDLERS:
            self.emulator.reset()
            self.sandbox.published_events()
            captured = {"EVENT_BUS_NAME": self.sandbox.environment["EVENT_BUS_NAME"]}
            with workers({name: self.env[name] | captured}) as handler:
                handler[name].invoke([schedule_event(), sqs_batch(3)])
            creates = [r for r in self.emulator.requests if r.method == "POST" and "checkpoints" in r.path]
            kinds = sorted(event["detail-type"] for event in self.sandbox.published_events())
            if len(creates) != 4 or not all(r.status == 200 and r.authenticated for r in creates):
                raise RuntimeError(f"{name}: expected 4 authenticated creates, got {creates}")
            if kinds != ["CBR Checkpoint Created"] * 4:
                raise RuntimeError(f"{name}: expected 4 Created events, got {kinds}")
        # The emulator really checks the SDK's SDK-HMAC-SHA256 signatures: a wrong SK is refused.
        self.emulator.reset()
        with workers({"reference": self.env["reference"] | {"HUAWEICLOUD_SDK_SK": "not-the-sk"}}) as handler:
            handler["reference"].invoke([schedule_event()])
        answers = [(r.authenticated, r.status) for r in self.emulator.requests]
        if answers != [(False, 401)]:
            raise RuntimeError(f"a wrong SK must be refused with 401, got {answers}")
        self.emulator.reset()

    # -- figures ---------------------------------------------------------------------------------

    def cold_imports(self) -> None:
        for name, module in HANDLERS.items():  # fill the bytecode caches, unmeasured
            cold_import(module, self.env[name])
            cold_import(module, self.venv_env[name], isolated=False)
        samples = interleaved(self.runs, lambda name: cold_import(HANDLERS[name], self.env[name]))
        wall = {name: median([s["wall"] for s in samples[name]]) * 1000 for name in HANDLERS}
        cpu = {name: median([s["cpu"] for s in samples[name]]) * 1000 for name in HANDLERS}
        boto = [s["boto3"] or s["botocore_session"] for s in samples["ours"]]
        modules = {name: samples[name][0]["modules"] for name in HANDLERS}
        budget = "≤ 0.5 x reference"
        self.results.add(
            Row(
                "cold import of the handler module, wall",
                "ms",
                wall["ours"],
                wall["reference"],
                budget,
                verdict(wall["ours"] <= 0.5 * wall["reference"]),
                f"modules loaded: {modules['ours']} vs {modules['reference']}",
            )
        )
        self.results.add(
            Row(
                "cold import of the handler module, CPU",
                "ms",
                cpu["ours"],
                cpu["reference"],
                budget,
                verdict(cpu["ours"] <= 0.5 * cpu["reference"]),
            )
        )
        self.results.add(
            Row(
                "boto3 or botocore.session imported",
                "",
                float(any(boto)),
                float(samples["reference"][0]["boto3"]),
                "never (ours)",
                verdict(not any(boto)),
                "1 = imported, 0 = not",
                compare=False,
            )
        )
        venv = interleaved(
            self.runs,
            lambda name: cold_import(HANDLERS[name], self.venv_env[name], isolated=False)["wall"],
        )
        self.results.add(
            Row(
                "... the same from the dev venv (all dev tools installed), wall",
                "ms",
                median(venv["ours"]) * 1000,
                median(venv["reference"]) * 1000,
                note="informative: with click installed, httpx also imports its command line (~15 ms)",
            )
        )

    def cold_invocations(self) -> None:
        """A fresh interpreter: import, one invocation, then its peak RSS (schedule, and SQS batch of 10)."""
        self.emulator.latency = 0.0
        for trigger, make_event in (("1 schedule request", schedule_event), ("SQS batch of 10", None)):

            def once(
                name: str, make_event: Callable[[], dict[str, Any]] | None = make_event
            ) -> dict[str, Any]:
                event = make_event() if make_event else sqs_batch(SQS_BATCH)
                with workers({name: self.env[name]}) as started:
                    handler = started[name]
                    result = handler.invoke([event])[0]
                    return {
                        "rss": handler.stats()["peak_rss_kib"] / 1024,
                        "cold_start": handler.started["import_wall"] + result["wall"],
                    }

            samples = interleaved(self.runs, once)
            rss = {name: median([s["rss"] for s in samples[name]]) for name in HANDLERS}
            start = {name: median([s["cold_start"] for s in samples[name]]) * 1000 for name in HANDLERS}
            budgeted = make_event is not None
            self.results.add(
                Row(
                    f"peak RSS of one cold invocation ({trigger})",
                    "MiB",
                    rss["ours"],
                    rss["reference"],
                    "≤ 0.7 x reference" if budgeted else "",
                    verdict(rss["ours"] <= 0.7 * rss["reference"]) if budgeted else "",
                    "interpreter + import + invocation (VmHWM)" if budgeted else "informative",
                )
            )
            self.results.add(
                Row(
                    f"cold start: import + first invocation ({trigger}), wall",
                    "ms",
                    start["ours"],
                    start["reference"],
                    note="informative; zero emulator latency",
                )
            )

    def warm_invocations(self) -> None:
        self.emulator.latency = 0.0
        walls: dict[str, list[float]] = {name: [] for name in HANDLERS}
        cpus: dict[str, list[float]] = {name: [] for name in HANDLERS}
        batch_cpu: dict[str, list[float]] = {name: [] for name in HANDLERS}
        with workers(self.env) as handlers:
            for handler in handlers.values():
                handler.invoke([schedule_event() for _ in range(3)] + [sqs_batch(SQS_BATCH)])
            for _ in range(max(self.runs, WARM_SINGLE_RUNS)):
                for name, handler in handlers.items():
                    result = handler.invoke([schedule_event()])[0]
                    walls[name].append(result["wall"])
                    cpus[name].append(result["cpu"])
            for _ in range(self.runs):
                for name, handler in handlers.items():
                    batch_cpu[name].append(handler.invoke([sqs_batch(SQS_BATCH)])[0]["cpu"] / SQS_BATCH)
        for figure, samples in (
            ("warm invocation, 1 request (schedule), wall", walls),
            ("warm invocation, 1 request (schedule), CPU", cpus),
            ("warm SQS batch of 10, CPU per record", batch_cpu),
        ):
            self.results.add(
                Row(
                    figure,
                    "ms",
                    median(samples["ours"]) * 1000,
                    median(samples["reference"]) * 1000,
                    note="zero emulator latency; includes the DynamoDB and PutEvents calls to moto",
                )
            )

    def batch_of_ten(self) -> None:
        walls = self._batch_walls(self.env)
        ours, reference = median(walls["ours"]), median(walls["reference"])
        self.results.add(
            Row(
                f"SQS batch of 10, emulator latency {LATENCY * 1000:.0f} ms, wall",
                "ms",
                ours * 1000,
                reference * 1000,
                f"ours ≤ 1.5 x one call ({1.5 * LATENCY * 1000:.0f} ms)",
                verdict(ours <= 1.5 * LATENCY),
                f"wall / one call: ours {ours / LATENCY:.2f}, reference {reference / LATENCY:.2f}; "
                f"MAX_CONCURRENCY={MAX_CONCURRENCY} (default)",
            )
        )

    def _batch_walls(self, envs: dict[str, dict[str, str]]) -> dict[str, list[float]]:
        walls: dict[str, list[float]] = {name: [] for name in envs}
        with workers(envs) as handlers:
            self.emulator.latency = 0.0
            for handler in handlers.values():
                handler.invoke([sqs_batch(SQS_BATCH), sqs_batch(SQS_BATCH)])
            self.emulator.latency = LATENCY
            try:
                for _ in range(self.runs):
                    for name, handler in handlers.items():
                        walls[name].append(handler.invoke([sqs_batch(SQS_BATCH)])[0]["wall"])
            finally:
                self.emulator.latency = 0.0
        return walls

    def hundred_invocations(self) -> None:
        """100 invocations (SQS batches of 10) of one container from its cold start, counted on the wire.

        AWS calls go through a recording proxy in front of moto (moto keeps no request log); the emulator
        tells connections that carried CBR requests from IAM-only ones (IAM and CBR share its port). Ours
        runs in token mode (IAM password auth from a Secrets Manager secret).
        """
        counts: dict[str, dict[str, int]] = {}
        envs = {"ours": self.token_env, "reference": self.env["reference"]}
        for name in HANDLERS:
            self.emulator.reset()
            self.proxy.reset()
            env = envs[name] | {"AWS_ENDPOINT_URL": self.proxy.url}
            with workers({name: env}) as handler:
                for _ in range(WARM_INVOCATIONS // 10):
                    handler[name].invoke([sqs_batch(SQS_BATCH) for _ in range(10)])
            targets = Counter(call.target for call in self.proxy.calls)
            counts[name] = {
                "cbr_connections": self.emulator.cbr_connections,
                "iam_connections": self.emulator.connections_opened - self.emulator.cbr_connections,
                "tokens": self.emulator.token_requests,
                "creates": len(self.emulator.created),
                "put_events": targets.get("AWSEvents.PutEvents", 0),
                "dynamodb": sum(n for t, n in targets.items() if t.startswith("DynamoDB_")),
                "aws_connections": self.proxy.connections_opened,
            }
        self.emulator.reset()
        results = WARM_INVOCATIONS * SQS_BATCH
        ours, ref = counts["ours"], counts["reference"]
        if ours["creates"] != results or ref["creates"] != results:
            raise RuntimeError(f"expected {results} checkpoints per handler, got {counts}")
        self.results.add(
            Row(
                "100 invocations x 10 records: TCP connections to CBR",
                "",
                ours["cbr_connections"],
                ref["cbr_connections"],
                f"≤ MAX_CONCURRENCY ({MAX_CONCURRENCY})",
                verdict(ours["cbr_connections"] <= MAX_CONCURRENCY),
                f"ours also opened {ours['iam_connections']} to IAM; the reference sends one call at a time",
                compare=False,
            )
        )
        self.results.add(
            Row(
                "100 invocations x 10 records: IAM token requests",
                "",
                ours["tokens"],
                None,
                "1 per container",
                verdict(ours["tokens"] == 1),
                "ours in token mode; the SDK has no password auth (AK/SK only)",
            )
        )
        self.results.add(
            Row(
                "PutEvents HTTP requests per 10 results",
                "",
                ours["put_events"] / (results / 10),
                ref["put_events"] / (results / 10),
                "1",
                verdict(ours["put_events"] == results // 10),
                f"{ours['put_events']} vs {ref['put_events']} requests for {results} results",
            )
        )
        self.results.add(
            Row(
                "DynamoDB HTTP requests per record",
                "",
                ours["dynamodb"] / results,
                ref["dynamodb"] / results,
                note=f"informative; TCP connections to AWS: {ours['aws_connections']} vs "
                f"{ref['aws_connections']}",
            )
        )

    def plot_series(self) -> None:
        """Wall time vs requests at 200 ms: > 10 requests are consecutive SQS batches of 10; and a fan-out."""
        series: dict[str, dict[int, list[float]]] = {"ours": {}, "reference": {}, FAN_OUT: {}}
        with workers(self.env) as handlers:
            self.emulator.latency = 0.0
            for handler in handlers.values():
                handler.invoke([sqs_batch(SQS_BATCH), fan_out(2)])
            try:
                for _ in range(self.plot_runs):
                    for size in PLOT_SIZES:
                        self.emulator.reset()  # keeps its bookkeeping small; sets latency back to 0
                        self.emulator.latency = LATENCY
                        for name, handler in handlers.items():
                            wall = sum(result["wall"] for result in handler.invoke(sqs_batches(size)))
                            series[name].setdefault(size, []).append(wall)
                        wall = handlers["ours"].invoke([fan_out(size)])[0]["wall"]
                        series[FAN_OUT].setdefault(size, []).append(wall)
            finally:
                self.emulator.latency = 0.0
        self.results.plot = {
            name: {size: median(walls) for size, walls in by_size.items()} for name, by_size in series.items()
        }


# -- output --------------------------------------------------------------------------------------


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("ms", "MiB"):
        return f"{value:,.1f} {unit}"
    return f"{value:g}"


def _ratio(row: Row) -> str:
    return "" if row.ratio is None else f"{row.ratio:.2f}"


def _format_row(row: Row) -> str:
    return (
        f"{row.figure:<62} {_number(row.ours, row.unit):>11} {_number(row.reference, row.unit):>11}"
        f" {_ratio(row):>6}  {row.budget:<28} {row.verdict}"
    )


def print_table(results: Results) -> None:
    print()
    print(f"{'figure':<62} {'ours':>11} {'reference':>11} {'ratio':>6}  {'budget':<28} verdict")
    print("-" * 130)
    for row in results.rows:
        print(_format_row(row))
    if results.plot:
        print()
        print(f"wall time (s) vs requests, emulator latency {LATENCY * 1000:.0f} ms:")
        print(f"{'requests':>10} " + " ".join(f"{name:>30}" for name in results.plot))
        for size in PLOT_SIZES:
            print(f"{size:>10} " + " ".join(f"{results.plot[name][size]:>30.2f}" for name in results.plot))


def write_plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"ours": "o-", "reference": "s-", FAN_OUT: "^--"}
    for name, by_size in results.plot.items():
        sizes = sorted(by_size)
        axes.plot(sizes, [by_size[s] for s in sizes], styles.get(name, "o-"), label=name)
    sizes = list(PLOT_SIZES)
    axes.plot(sizes, [LATENCY * s for s in sizes], ":", color="grey", label="n calls one after another")
    axes.plot(sizes, [LATENCY] * len(sizes), ":", color="black", label="one call (200 ms)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(sizes, [str(s) for s in sizes])
    ticks = [0.2, 0.5, 1, 2, 5, 10, 20]
    axes.set_yticks(ticks, [f"{t:g}" for t in ticks])
    axes.set_xlabel("requests (consecutive SQS batches of at most 10, one warm container)")
    axes.set_ylabel("wall time (s)")
    axes.set_title(f"Wall time vs requests, CBR emulator latency {LATENCY * 1000:.0f} ms")
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_markdown(
    results: Results, path: Path, png: Path | None, command: str, runs: int, plot_runs: int, elapsed: float
) -> None:
    lines = [
        "# Benchmarks",
        "",
        "`cbr_checkpointer` side by side with what a user would write instead (DESIGN §8). The reference, "
        "`benchmarks/reference_handler.py`, uses the official `huaweicloudsdkcbr` SDK (AK/SK), boto3 "
        "`put_events` (one call per request), Powertools idempotency (`idempotent_function` + "
        "`DynamoDBPersistenceLayer`) and Powertools `BatchProcessor` (records one after another). Both "
        "handlers run in the same bench run against the same CBR emulator and moto server, with the same "
        "environment variables and event shapes (`events/`), and both keep their idempotency records in a "
        "DynamoDB table in moto. This file is written by `make bench`; edit `benchmarks/notes.md` instead.",
        "",
        f"- command: `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, took {elapsed:.0f} s)",
        f"- machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()} {platform.release()}), "
        f"Python {platform.python_version()}",
        f"- medians of {runs} runs ({max(runs, WARM_SINGLE_RUNS)} for warm single invocations, "
        f"{plot_runs} per point of the plot); ours and reference runs alternate",
        "",
        "| figure | ours | reference | ours / reference | budget | verdict | note |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for row in results.rows:
        lines.append(
            f"| {row.figure} | {_number(row.ours, row.unit)} | {_number(row.reference, row.unit)} "
            f"| {_ratio(row)} | {row.budget} | {row.verdict} | {row.note} |"
        )
    if results.plot and png is not None:
        lines += [
            "",
            "## Wall time vs requests",
            "",
            f"![wall time vs requests]({os.path.relpath(png, path.parent)})",
            "",
            f"CBR emulator latency {LATENCY * 1000:.0f} ms per call. Up to 10 requests are one SQS batch; "
            "20, 50 and 100 are 2, 5 and 10 consecutive SQS batches of 10 (the template's `BatchSize: 10`) "
            "handled by one warm container, wall times summed. The dashed line is ours with all the requests "
            'in one `{"requests": [...]}` timer input instead.',
            "",
            "| requests | " + " | ".join(results.plot) + " |",
            "|---:|" + "---:|" * len(results.plot),
        ]
        for size in PLOT_SIZES:
            walls = " | ".join(f"{results.plot[name][size]:.2f} s" for name in results.plot)
            lines.append(f"| {size} | {walls} |")
    if NOTES.exists():
        lines += ["", NOTES.read_text(encoding="utf-8").rstrip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cbr_checkpointer vs a reference handler (DESIGN §8)")
    parser.add_argument("--runs", type=int, default=7, help="runs per figure, medians reported (default 7)")
    parser.add_argument("--plot-runs", type=int, default=3, help="runs per point of the plot (default 3)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks" / "batch-wall.png")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot (the slowest part)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    command = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else "python -m benchmarks.bench " + " ".join(sys.argv[1:])
    )
    started = time.perf_counter()
    with Sandbox() as sandbox, contextlib.ExitStack() as cleanup:
        proxy = FaultProxy("moto-proxy").start(sandbox.moto_url)
        cleanup.callback(proxy.stop)
        bench = Bench(sandbox, proxy, runs=args.runs, plot_runs=args.plot_runs)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("both handlers create checkpoints and publish events", bench.check_both_work),
            ("cold import", bench.cold_imports),
            ("cold invocations", bench.cold_invocations),
            ("warm invocations", bench.warm_invocations),
            (f"SQS batch of 10 at {LATENCY * 1000:.0f} ms", bench.batch_of_ten),
            (f"{WARM_INVOCATIONS} invocations", bench.hundred_invocations),
        ]
        if not args.no_plot:
            steps.append(("wall time vs requests (plot)", bench.plot_series))
        for title, step in steps:
            print(f"{title} ...", flush=True)
            step()
    results = bench.results
    elapsed = time.perf_counter() - started
    print_table(results)
    png = None if args.no_plot else args.png
    if png is not None:
        write_plot(results, png)
    write_markdown(results, args.output, png, command, args.runs, args.plot_runs, elapsed)
    print(f"\nwrote {args.output}" + ("" if png is None else f" and {png}") + f" in {elapsed:.0f} s")
    misses = [row.figure for row in results.rows if row.verdict == "MISS"]
    print("all budgets PASS" if not misses else "MISS: " + "; ".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
