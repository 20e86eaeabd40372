"""`make bench`: cbr_checkpointer side by side with what a user would write instead, run as Lambda runs it.

One run, one CBR emulator and one moto server for all handlers:

- ours: `cbr_checkpointer.handler.lambda_handler` from dist/function-x86_64.zip (HTTP over h11, own SigV4,
  DynamoDB ledger over the JSON API);
- reference: `reference_handler.lambda_handler` (huaweicloudsdkcbr, boto3, Powertools idempotency on
  DynamoDB, Powertools BatchProcessor: records one after another, one PutEvents per request);
- reference, threads: `reference_handler.threaded_handler`, the best form a user would write for
  batches (records in a thread pool, one PutEvents per 10 outcomes). Batch and fleet rows compare
  ours with it.

Every execution environment is a python3.13 process started by AWS's runtime interface client against
a Runtime API on loopback, from a read-only task directory (benchmarks/lambda_env.py); times are taken
on the server side (benchmarks/runtime_api.py). Prints a table with ratios (ours / reference) and
PASS/MISS per budget, and writes BENCHMARKS.md and benchmarks/batch-wall.png.

This module measures; the handlers and workloads are in benchmarks/workloads.py, the table, BENCHMARKS.md
and the plot in benchmarks/report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.lambda_env import (  # noqa: E402
    BENCH_PYTHON,
    ColdStart,
    ExecutionEnvironment,
    make_read_only,
    prepare_tasks,
    release,
)
from benchmarks.report import (  # noqa: E402
    Results,
    Row,
    git_commit,
    median,
    print_table,
    spread,
    verdict,
    write_markdown,
    write_plot,
)
from benchmarks.workloads import (  # noqa: E402
    BENCH_BUS,
    FAN_OUT,
    FULL_VCPU_MB,
    HANDLERS,
    LATENCY,
    LIBRARIES,
    LIBRARIES_ONLY,
    MAX_CONCURRENCY,
    MEMORY_SIZES_MB,
    MODULES,
    OURS,
    PLOT_SIZES,
    PRICE_PER_GB_SECOND,
    PRICE_PER_REQUEST,
    REFERENCE,
    SQS_BATCH,
    THREADS,
    WARM_INVOCATIONS,
    WARM_SINGLE_RUNS,
    fan_out,
    schedule_event,
    sqs_batch,
    sqs_batches,
)
from devtools.faults import FaultProxy  # noqa: E402
from devtools.sandbox import REGION, Sandbox  # noqa: E402


def interleaved(runs: int, measure: Callable[[str], Any], names: Sequence[str]) -> dict[str, list[Any]]:
    """`runs` measurements per handler, alternating between them so that drift hits all alike."""
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


# -- the bench -------------------------------------------------------------------------------------


class Bench:
    def __init__(
        self, sandbox: Sandbox, proxy: FaultProxy, tasks: dict[str, Path], runs: int, plot_runs: int
    ) -> None:
        self.sandbox = sandbox
        self.emulator = sandbox.emulator
        self.proxy = proxy
        self.tasks = tasks
        self.runs = runs
        self.plot_runs = plot_runs
        self.results = Results()
        self.cpu: dict[str, dict[str, float]] = {}  # for the memory-size guidance
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
        self.env = {name: self._environment(tables[name]) for name in HANDLERS}
        sandbox.auth = "token"
        self.token_env = self._environment(tables[OURS])
        sandbox.auth = "aksk"

    def _environment(self, table: str) -> dict[str, str]:
        """The function's own variables (the handlers read the same ones); lambda_env adds Lambda's."""
        return self.sandbox.environment | {
            "IDEMPOTENCY_TABLE": table,
            "EVENT_BUS_NAME": BENCH_BUS,
            "AWS_DEFAULT_REGION": REGION,
        }

    @contextmanager
    def environments(
        self, envs: dict[str, dict[str, str]], tag: str
    ) -> Iterator[dict[str, ExecutionEnvironment]]:
        started: dict[str, ExecutionEnvironment] = {}
        try:
            for name, env in envs.items():
                task, handler = (HANDLERS | {LIBRARIES: LIBRARIES_ONLY})[name]
                started[name] = ExecutionEnvironment(
                    self.tasks[task], handler, env, f"{tag}-{name.replace(', ', '-')}"
                )
            yield started
        finally:
            for environment in started.values():
                environment.close()

    def check_all_work(self) -> None:
        """Every handler creates the checkpoints (signatures accepted) and publishes one event per request."""
        for name in HANDLERS:
            self.emulator.reset()
            self.sandbox.published_events()
            captured = {"EVENT_BUS_NAME": self.sandbox.environment["EVENT_BUS_NAME"]}
            with self.environments({name: self.env[name] | captured}, "check") as started:
                started[name].invoke([schedule_event(), sqs_batch(3)])
            creates = [r for r in self.emulator.requests if r.method == "POST" and "checkpoints" in r.path]
            kinds = sorted(event["detail-type"] for event in self.sandbox.published_events())
            if len(creates) != 4 or not all(r.status == 200 and r.authenticated for r in creates):
                raise RuntimeError(f"{name}: expected 4 authenticated creates, got {creates}")
            if kinds != ["CBR Checkpoint Created"] * 4:
                raise RuntimeError(f"{name}: expected 4 Created events, got {kinds}")
        # The emulator really checks the SDK's SDK-HMAC-SHA256 signatures: a wrong SK is refused.
        self.emulator.reset()
        wrong = {REFERENCE: self.env[REFERENCE] | {"HUAWEICLOUD_SDK_SK": "not-the-sk"}}
        with self.environments(wrong, "check-wrong-sk") as started:
            started[REFERENCE].invoke([schedule_event()])
        answers = [(r.authenticated, r.status) for r in self.emulator.requests]
        if answers != [(False, 401)]:
            raise RuntimeError(f"a wrong SK must be refused with 401, got {answers}")
        self.emulator.reset()

    # -- figures ---------------------------------------------------------------------------------

    def cold_starts(self) -> None:
        """Fresh environments: init, the first and the second invocation (1 schedule request each); and
        one more whose first invocation is an SQS batch of 1 record, the fleet's cold start."""
        self.emulator.latency = 0.0
        names = (OURS, REFERENCE)

        def once(name: str) -> dict[str, float]:
            # The libraries alone start with ours' variables: its handler reads none of them.
            with self.environments({name: self.env[OURS if name == LIBRARIES else name]}, "cold") as started:
                environment = started[name]
                cold: ColdStart = environment.cold_start(schedule_event())
                second = environment.invoke([schedule_event()])[0]
                return {
                    "init": cold.init,
                    "init_cpu": cold.init_cpu,
                    "cold_start": cold.first_response,
                    "cold_start_cpu": cold.init_cpu + cold.first.cpu,
                    # The first invocation's CPU at the template's 256 MB share instead of a whole core.
                    "cold_start_at_256": cold.first_response + cold.first.cpu * (FULL_VCPU_MB / 256 - 1),
                    "first_wall": cold.first.wall,
                    "first_cpu": cold.first.cpu,
                    "second_wall": second.wall,
                    "second_cpu": second.cpu,
                    "rss": environment.peak_rss_mib(),
                }

        def once_by_sqs(name: str) -> dict[str, float]:
            with self.environments({name: self.env[name]}, "cold-sqs") as started:
                cold: ColdStart = started[name].cold_start(sqs_batch(1))
                return {"sqs_cold_start": cold.first_response, "sqs_first_cpu": cold.first.cpu}

        once(OURS), once(REFERENCE), once(LIBRARIES)  # unmeasured: the page cache holds the trees from now on
        samples = interleaved(self.runs, once, (*names, LIBRARIES))
        by_sqs = interleaved(self.runs, once_by_sqs, names)  # a series of its own, interleaved as the first
        for name in names:
            samples[name] = [
                sample | other for sample, other in zip(samples[name], by_sqs[name], strict=True)
            ]
        figure = {
            name: {key: median([sample[key] for sample in samples[name]]) for key in samples[name][0]}
            for name in samples
        }
        ours, reference, libraries = figure[OURS], figure[REFERENCE], figure[LIBRARIES]
        self.cpu["init"] = {name: figure[name]["init_cpu"] for name in names}
        self.cpu["first"] = {name: figure[name]["first_cpu"] for name in names}
        half = "≤ 0.5 x reference"
        ms = 1000.0
        self.results.add(
            Row(
                "init: process start → first /next, wall",
                "ms",
                ours["init"] * ms,
                reference["init"] * ms,
                half,
                verdict(ours["init"] <= 0.5 * reference["init"]),
                f"range ours {spread(samples[OURS], 'init')}, reference {spread(samples[REFERENCE], 'init')}",
            )
        )
        self.results.add(
            Row(
                "cold start: process start → first response (1 schedule request), wall",
                "ms",
                ours["cold_start"] * ms,
                reference["cold_start"] * ms,
                half,
                verdict(ours["cold_start"] <= 0.5 * reference["cold_start"]),
                f"range ours {spread(samples[OURS], 'cold_start')}, "
                f"reference {spread(samples[REFERENCE], 'cold_start')}; zero emulator latency",
            )
        )
        self.results.add(
            Row(
                "init of ours' libraries alone (no code of ours), wall",
                "ms",
                libraries["init"] * ms,
                reference["init"] * ms,
                note="informative: the floor of the init row; pydantic with one model built, h11 with a "
                f"TLS context, Powertools' Logger and Metrics (benchmarks/libraries_handler.py); ours adds "
                f"{(ours['init'] - libraries['init']) * ms:.0f} ms to it",
            )
        )
        self.results.add(
            Row(
                "cold start: process start → first response (1 SQS batch of 1 record), wall",
                "ms",
                ours["sqs_cold_start"] * ms,
                reference["sqs_cold_start"] * ms,
                note=f"informative; range ours {spread(samples[OURS], 'sqs_cold_start')}, "
                f"reference {spread(samples[REFERENCE], 'sqs_cold_start')}; zero emulator latency",
            )
        )
        self.results.add(
            Row(
                "first invocation (1 SQS batch of 1 record), CPU",
                "ms",
                ours["sqs_first_cpu"] * ms,
                reference["sqs_first_cpu"] * ms,
                note="informative: what an environment started by the request queue does after its init",
            )
        )
        self.results.add(Row("init, CPU", "ms", ours["init_cpu"] * ms, reference["init_cpu"] * ms))
        self.results.add(
            Row(
                "cold start, CPU (init + first invocation)",
                "ms",
                ours["cold_start_cpu"] * ms,
                reference["cold_start_cpu"] * ms,
                note="CPU time of the process (every thread); less sensitive to a busy machine than wall",
            )
        )
        self.results.add(
            Row(
                "cold start at 256 MB, modelled",
                "ms",
                ours["cold_start_at_256"] * ms,
                reference["cold_start_at_256"] * ms,
                note=f"informative: the row above with the first invocation's CPU at 256/{FULL_VCPU_MB:,} "
                "of a vCPU, as Lambda runs invocations (init is not held to that share)",
            )
        )
        for key, label in (("first", "first"), ("second", "second")):
            self.results.add(
                Row(
                    f"{label} invocation (1 schedule request), wall",
                    "ms",
                    ours[f"{key}_wall"] * ms,
                    reference[f"{key}_wall"] * ms,
                    note="/next answered → /response; zero emulator latency",
                )
            )
            self.results.add(
                Row(
                    f"{label} invocation (1 schedule request), CPU",
                    "ms",
                    ours[f"{key}_cpu"] * ms,
                    reference[f"{key}_cpu"] * ms,
                )
            )
        self.results.add(
            Row(
                "peak RSS after two invocations",
                "MiB",
                ours["rss"],
                reference["rss"],
                "≤ 0.7 x reference",
                verdict(ours["rss"] <= 0.7 * reference["rss"]),
                "VmHWM of the process: interpreter, runtime client, import, invocations",
            )
        )

    def cold_batch(self) -> None:
        """A fresh environment whose first invocation is an SQS batch of 10 (vs the threaded reference)."""
        names = (OURS, THREADS)

        def once(name: str) -> float:
            with self.environments({name: self.env[name]}, "cold-batch") as started:
                return started[name].cold_start(sqs_batch(SQS_BATCH)).first_response

        samples = interleaved(self.runs, once, names)
        self.results.add(
            Row(
                "cold start: process start → first response (SQS batch of 10), wall",
                "ms",
                median(samples[OURS]) * 1000,
                median(samples[THREADS]) * 1000,
                note="informative; zero emulator latency",
                against=THREADS,
            )
        )

    def cold_imports(self) -> None:
        """The import of the handler module alone, python3.13 in the read-only task directory."""

        def once(task: str) -> dict[str, Any]:
            completed = subprocess.run(
                [str(BENCH_PYTHON), "-c", IMPORT_PROBE.format(module=MODULES[task])],
                cwd=self.tasks[task],
                env=self.env[OURS if task == "ours" else REFERENCE] | {"PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if completed.returncode != 0:
                raise RuntimeError(f"importing {MODULES[task]} failed:\n{completed.stderr[-4000:]}")
            facts: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
            return facts

        samples = interleaved(self.runs, once, ("ours", "reference"))
        wall = {task: median([s["wall"] for s in samples[task]]) * 1000 for task in samples}
        boto = [s["boto3"] or s["botocore_session"] for s in samples["ours"]]
        self.results.add(
            Row(
                "import of the handler module only, wall",
                "ms",
                wall["ours"],
                wall["reference"],
                note=f"informative (ours builds its clients at import too); modules loaded: "
                f"{samples['ours'][0]['modules']} vs {samples['reference'][0]['modules']}",
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

    def warm_invocations(self) -> None:
        self.emulator.latency = 0.0
        names = (OURS, REFERENCE, THREADS)
        walls: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        batch_cpu: dict[str, list[float]] = {name: [] for name in names}
        with self.environments({name: self.env[name] for name in names}, "warm") as started:
            for environment in started.values():
                environment.invoke([schedule_event() for _ in range(3)] + [sqs_batch(SQS_BATCH)])
            for _ in range(max(self.runs, WARM_SINGLE_RUNS)):
                for name, environment in started.items():
                    invocation = environment.invoke([schedule_event()])[0]
                    walls[name].append(invocation.wall)
                    cpus[name].append(invocation.cpu)
            for _ in range(self.runs):
                for name, environment in started.items():
                    batch_cpu[name].append(environment.invoke([sqs_batch(SQS_BATCH)])[0].cpu / SQS_BATCH)
        note = "zero emulator latency; includes the DynamoDB and PutEvents calls to moto"
        for figure, samples, against in (
            ("warm invocation, 1 request (schedule), wall", walls, REFERENCE),
            ("warm invocation, 1 request (schedule), CPU", cpus, REFERENCE),
            ("warm SQS batch of 10, CPU per record", batch_cpu, THREADS),
        ):
            self.results.add(
                Row(
                    figure,
                    "ms",
                    median(samples[OURS]) * 1000,
                    median(samples[against]) * 1000,
                    note=note,
                    against=against,
                )
            )
        self.cpu["warm_single"] = {name: median(cpus[name]) for name in names}
        self.cpu["warm_record"] = {name: median(batch_cpu[name]) for name in names}

    def batch_of_ten(self) -> None:
        walls = self._batch_walls({name: self.env[name] for name in (OURS, THREADS, REFERENCE)})
        ours, threads, sequential = (median(walls[name]) for name in (OURS, THREADS, REFERENCE))
        self.results.add(
            Row(
                f"SQS batch of 10, emulator latency {LATENCY * 1000:.0f} ms, wall",
                "ms",
                ours * 1000,
                threads * 1000,
                f"ours ≤ 1.5 x one call ({1.5 * LATENCY * 1000:.0f} ms)",
                verdict(ours <= 1.5 * LATENCY),
                f"wall / one call: ours {ours / LATENCY:.2f}, reference, threads {threads / LATENCY:.2f}, "
                f"reference {sequential / LATENCY:.2f}; MAX_CONCURRENCY={MAX_CONCURRENCY} (default)",
                against=THREADS,
            )
        )

    def _batch_walls(self, envs: dict[str, dict[str, str]]) -> dict[str, list[float]]:
        walls: dict[str, list[float]] = {name: [] for name in envs}
        with self.environments(envs, "batch") as started:
            self.emulator.latency = 0.0
            for environment in started.values():
                environment.invoke([sqs_batch(SQS_BATCH), sqs_batch(SQS_BATCH)])
            self.emulator.latency = LATENCY
            try:
                for _ in range(self.runs):
                    for name, environment in started.items():
                        walls[name].append(environment.invoke([sqs_batch(SQS_BATCH)])[0].wall)
            finally:
                self.emulator.latency = 0.0
        return walls

    def hundred_invocations(self) -> None:
        """100 invocations (SQS batches of 10) of one environment from its cold start, counted on the wire.

        AWS calls go through a recording proxy in front of moto (moto keeps no request log); the emulator
        tells connections that carried CBR requests from IAM-only ones (IAM and CBR share its port). Ours
        runs in token mode (IAM password auth from a Secrets Manager secret).
        """
        counts: dict[str, dict[str, int]] = {}
        envs = {OURS: self.token_env, THREADS: self.env[THREADS]}
        for name, env in envs.items():
            self.emulator.reset()
            self.proxy.reset()
            with self.environments({name: env | {"AWS_ENDPOINT_URL": self.proxy.url}}, "fleet") as started:
                for _ in range(WARM_INVOCATIONS // 10):
                    started[name].invoke([sqs_batch(SQS_BATCH) for _ in range(10)])
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
        ours, ref = counts[OURS], counts[THREADS]
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
                f"ours also opened {ours['iam_connections']} to IAM",
                compare=False,
                against=THREADS,
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
                against=THREADS,
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
                f"{ours['put_events']} vs {ref['put_events']} requests for {results} results "
                "(the sequential reference sends 10)",
                against=THREADS,
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
                against=THREADS,
            )
        )

    def plot_series(self) -> None:
        """Wall time vs requests at 200 ms: > 10 requests are consecutive SQS batches of 10; and a fan-out."""
        names = (OURS, THREADS, REFERENCE)
        series: dict[str, dict[int, list[float]]] = {name: {} for name in (*names, FAN_OUT)}
        with self.environments({name: self.env[name] for name in names}, "plot") as started:
            self.emulator.latency = 0.0
            for environment in started.values():
                environment.invoke([sqs_batch(SQS_BATCH), fan_out(2)])
            try:
                for _ in range(self.plot_runs):
                    for size in PLOT_SIZES:
                        self.emulator.reset()  # keeps its bookkeeping small; sets latency back to 0
                        self.emulator.latency = LATENCY
                        for name, environment in started.items():
                            invocations = environment.invoke(sqs_batches(size))
                            series[name].setdefault(size, []).append(sum(i.wall for i in invocations))
                        wall = started[OURS].invoke([fan_out(size)])[0].wall
                        series[FAN_OUT].setdefault(size, []).append(wall)
            finally:
                self.emulator.latency = 0.0
        self.results.plot = {
            name: {size: median(walls) for size, walls in by_size.items()} for name, by_size in series.items()
        }

    def memory_guidance(self) -> None:
        """Duration and cost per 1,000 checkpoints by memory size, from the CPU measured above.

        Lambda's CPU share is memory / 1,769 MB of one vCPU; an invocation's duration is modelled as its
        CPU time at that share plus one CBR round trip (LATENCY) of waiting. Init is left out of the cost
        (it runs once per environment and, unlike invocations, with the CPU boosted).
        """
        record = self.cpu["warm_record"][OURS]
        single = self.cpu["warm_single"][OURS]
        first = self.cpu["first"][OURS]
        for memory in MEMORY_SIZES_MB:
            share = min(1.0, memory / FULL_VCPU_MB)
            batch = SQS_BATCH * record / share + LATENCY
            timer = single / share + LATENCY
            gb = memory / 1024
            per_thousand_batched = 100 * (batch * gb * PRICE_PER_GB_SECOND + PRICE_PER_REQUEST)
            per_thousand_timers = 1000 * (timer * gb * PRICE_PER_GB_SECOND + PRICE_PER_REQUEST)
            self.results.memory.append(
                {
                    "memory": memory,
                    "share": share,
                    "timer_ms": timer * 1000,
                    "batch_ms": batch * 1000,
                    "first_ms": first / share * 1000 + LATENCY * 1000,
                    "cost_batched": per_thousand_batched,
                    "cost_timers": per_thousand_timers,
                }
            )
        # The smallest size at which a warm batch of 10 keeps the batch budget (1.5 x one CBR call):
        # the costs differ by fractions of a cent per 1,000 checkpoints, the waits do not. When none
        # does, the largest comes closest: one full vCPU, all that one Python process can use.
        fitting = [size for size in self.results.memory if size["batch_ms"] <= 1.5 * LATENCY * 1000]
        self.results.memory_fits = bool(fitting)
        self.results.recommended_memory = int((fitting[0] if fitting else self.results.memory[-1])["memory"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="cbr_checkpointer vs a reference handler, as Lambda runs them"
    )
    parser.add_argument("--runs", type=int, default=9, help="runs per figure, medians reported (default 9)")
    parser.add_argument("--plot-runs", type=int, default=3, help="runs per point of the plot (default 3)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks" / "batch-wall.png")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot (the slowest part)")
    parser.add_argument(
        "--only-cold", action="store_true", help="only the checks and the cold-start rows (quick A/B runs)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    command = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else "python -m benchmarks.bench " + " ".join(sys.argv[1:])
    )
    started = time.perf_counter()
    commit = git_commit()  # before this run writes its own outputs
    tasks = prepare_tasks()
    read_only = make_read_only(tasks)  # before any thread starts
    try:
        with Sandbox() as sandbox, contextlib.ExitStack() as cleanup:
            proxy = FaultProxy("moto-proxy").start(sandbox.moto_url)
            cleanup.callback(proxy.stop)
            bench = Bench(sandbox, proxy, tasks, runs=args.runs, plot_runs=args.plot_runs)
            bench.results.read_only = read_only
            steps: list[tuple[str, Callable[[], None]]] = [
                ("every handler creates checkpoints and publishes events", bench.check_all_work),
                ("cold starts", bench.cold_starts),
            ]
            if not args.only_cold:
                steps += [
                    ("cold start with an SQS batch", bench.cold_batch),
                    ("import only", bench.cold_imports),
                    ("warm invocations", bench.warm_invocations),
                    (f"SQS batch of 10 at {LATENCY * 1000:.0f} ms", bench.batch_of_ten),
                    (f"{WARM_INVOCATIONS} invocations", bench.hundred_invocations),
                    ("memory size guidance", bench.memory_guidance),
                ]
                if not args.no_plot:
                    steps.append(("wall time vs requests (plot)", bench.plot_series))
            for title, step in steps:
                print(f"{title} ...", flush=True)
                step()
    finally:
        release(tasks)
    results = bench.results
    elapsed = time.perf_counter() - started
    print_table(results)
    png = None if args.no_plot or args.only_cold else args.png
    if png is not None:
        write_plot(results, png)
    if not args.only_cold:
        write_markdown(
            results,
            args.output,
            png=png,
            command=command,
            commit=commit,
            runs=args.runs,
            plot_runs=args.plot_runs,
            elapsed=elapsed,
        )
        print(f"\nwrote {args.output}" + ("" if png is None else f" and {png}") + f" in {elapsed:.0f} s")
    misses = [row.figure for row in results.rows if row.verdict == "MISS"]
    print("all budgets PASS" if not misses else "MISS: " + "; ".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
