"""The bench's results and how they are shown: the table on the terminal, BENCHMARKS.md and the plot."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.figure import Figure

from benchmarks.lambda_env import (
    BENCH_PYTHON,
)
from benchmarks.workloads import (
    FAN_OUT,
    FULL_VCPU_MB,
    LATENCY,
    NOTES,
    OURS,
    PLOT_SIZES,
    PRICE_PER_GB_SECOND,
    REFERENCE,
    THREADS,
    WARM_SINGLE_RUNS,
)
from devtools.scale import scale_section

ROOT = Path(__file__).resolve().parents[1]


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
    against: str = REFERENCE

    @property
    def ratio(self) -> float | None:
        if not self.compare or self.ours is None or not self.reference:
            return None
        return self.ours / self.reference


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    plot: dict[str, dict[int, float]] = field(default_factory=dict)
    memory: list[dict[str, float]] = field(default_factory=list)
    recommended_memory: int | None = None
    memory_fits: bool = False  # whether the recommended size keeps the batch budget
    read_only: str = ""

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {_format_row(row)}", flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(samples: list[dict[str, float]], key: str) -> str:
    values = [sample[key] * 1000 for sample in samples]
    return f"{min(values):.0f} to {max(values):.0f} ms"


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
        f"{row.figure:<72} {_number(row.ours, row.unit):>11} {_number(row.reference, row.unit):>11}"
        f" {row.against:<18} {_ratio(row):>6}  {row.budget:<28} {row.verdict}"
    )


def print_table(results: Results) -> None:
    print()
    print(
        f"{'figure':<72} {'ours':>11} {'reference':>11} {'which reference':<18} {'ratio':>6}  "
        f"{'budget':<28} verdict"
    )
    print("-" * 160)
    for row in results.rows:
        print(_format_row(row))
    if results.memory:
        print()
        print("memory size guidance (ours):")
        for line in _memory_lines(results)[2:]:
            print(line)
        print(memory_advice(results))
    if results.plot:
        print()
        print(f"wall time (s) vs requests, emulator latency {LATENCY * 1000:.0f} ms:")
        print(f"{'requests':>10} " + " ".join(f"{name:>30}" for name in results.plot))
        for size in PLOT_SIZES:
            print(f"{size:>10} " + " ".join(f"{results.plot[name][size]:>30.2f}" for name in results.plot))


def write_plot(results: Results, path: Path) -> None:
    # A Figure of its own, not pyplot's: no GUI backend is chosen and nothing global is left open.
    figure = Figure(figsize=(8, 5), dpi=110)
    axes = figure.subplots()
    styles = {OURS: "o-", REFERENCE: "s-", THREADS: "d-", FAN_OUT: "^--"}
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


def memory_advice(results: Results, *, bold: bool = False) -> str:
    size = f"**{results.recommended_memory} MB**" if bold else f"{results.recommended_memory} MB"
    if results.memory_fits:
        return f"Smallest size at which a warm SQS batch of 10 stays within 1.5 x one CBR call: {size}."
    return (
        "No size keeps a warm SQS batch of 10 within 1.5 x one CBR call; the largest, one full vCPU "
        f"(all that one Python process can use), comes closest: {size}."
    )


def _memory_lines(results: Results) -> list[str]:
    lines = [
        "| MemorySize | CPU share | timer, 1 request | SQS batch of 10 | first invocation, 1 request "
        "| $ per 1,000 checkpoints, batches of 10 | $ per 1,000 checkpoints, one per timer |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results.memory:
        lines.append(
            f"| {size['memory']:.0f} MB | {size['share']:.2f} vCPU | {size['timer_ms']:,.0f} ms "
            f"| {size['batch_ms']:,.0f} ms | {size['first_ms']:,.0f} ms | {size['cost_batched']:.5f} "
            f"| {size['cost_timers']:.5f} |"
        )
    return lines


def git_commit() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT, check=False).returncode != 0
    return completed.stdout.strip() + (" + uncommitted changes" if dirty else "")


def write_markdown(
    results: Results,
    path: Path,
    *,
    png: Path | None,
    command: str,
    commit: str,
    runs: int,
    plot_runs: int,
    elapsed: float,
) -> None:
    lines = [
        "# Benchmarks",
        "",
        "`cbr_checkpointer` side by side with what a user would write instead, each started the way Lambda "
        "starts a python3.13 function. The reference, `benchmarks/reference_handler.py`, uses the official "
        "`huaweicloudsdkcbr` SDK (AK/SK), boto3 `put_events`, Powertools idempotency (`idempotent_function` "
        "+ `DynamoDBPersistenceLayer`) and makes its clients at init. It comes in two forms: **reference** "
        "(Powertools `BatchProcessor`, records one after another, one PutEvents per request) and "
        "**reference, threads** (the records of a batch in a thread pool of MAX_CONCURRENCY, one PutEvents "
        "per 10 outcomes), the best form a user would write; batch and fleet rows compare ours with it. All "
        "run in the same bench run against the same CBR emulator and moto server, with the same environment "
        "variables and event shapes (`events/`), and keep their idempotency records in DynamoDB tables in "
        "moto. This file is written by `make bench`; edit `benchmarks/notes.md` instead.",
        "",
        f"- command: `{command}` at commit {commit} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"took {elapsed:.0f} s)",
        f"- machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()} {platform.release()}); "
        f"every handler runs on {_bench_python_version()} under awslambdaric against a Runtime API on "
        f"loopback, from {results.read_only} task directories",
        f"- medians of {runs} runs ({max(runs, WARM_SINGLE_RUNS)} for warm single invocations, "
        f"{plot_runs} per point of the plot); the handlers' runs alternate",
        "",
        "| figure | ours | reference | which reference | ours / reference | budget | verdict | note |",
        "|---|---:|---:|---|---:|---|---|---|",
    ]
    for row in results.rows:
        lines.append(
            f"| {row.figure} | {_number(row.ours, row.unit)} | {_number(row.reference, row.unit)} "
            f"| {row.against} | {_ratio(row)} | {row.budget} | {row.verdict} | {row.note} |"
        )
    if results.memory:
        lines += [
            "",
            "## Memory size",
            "",
            f"Ours, from the CPU measured above (warm: per single timer request and per record of an SQS "
            f"batch; cold: the first invocation). Lambda gives a function memory / {FULL_VCPU_MB:,} MB of a "
            f"vCPU; duration = CPU time at that share + one CBR round trip of {LATENCY * 1000:.0f} ms; cost "
            f"= duration x GB x ${PRICE_PER_GB_SECOND} per GB-second + $0.20 per million requests (arm64 "
            "list prices, us-east-1), init not included.",
            "",
            *_memory_lines(results),
            "",
            memory_advice(results, bold=True),
        ]
    if results.plot and png is not None:
        lines += [
            "",
            "## Wall time vs requests",
            "",
            f"![wall time vs requests]({os.path.relpath(png, path.parent)})",
            "",
            f"CBR emulator latency {LATENCY * 1000:.0f} ms per call. Up to 10 requests are one SQS batch; "
            "20, 50 and 100 are 2, 5 and 10 consecutive SQS batches of 10 (the template's `BatchSize: 10`) "
            "handled by one warm environment, wall times summed. The dashed line is ours with all the "
            'requests in one `{"requests": [...]}` timer input instead.',
            "",
            "| requests | " + " | ".join(results.plot) + " |",
            "|---:|" + "---:|" * len(results.plot),
        ]
        for size in PLOT_SIZES:
            walls = " | ".join(f"{results.plot[name][size]:.2f} s" for name in results.plot)
            lines.append(f"| {size} | {walls} |")
    if NOTES.exists():
        lines += ["", NOTES.read_text(encoding="utf-8").rstrip()]
    # The fleet run's section is `make scale`'s: kept as it is.
    kept = scale_section(path.read_text(encoding="utf-8")) if path.exists() else None
    if kept is not None:
        lines += ["", kept]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _bench_python_version() -> str:
    completed = subprocess.run(
        [str(BENCH_PYTHON), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"Python {completed.stdout.strip()}"
