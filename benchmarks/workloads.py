"""What `make bench` runs: the handlers compared, the workloads (events/ samples with fresh keys, SQS
batches, a fan-out input) and the fixed figures they are measured against."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from cbr_checkpointer.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

OURS, REFERENCE, THREADS = "ours", "reference", "reference, threads"
HANDLERS = {
    OURS: ("ours", "cbr_checkpointer.handler.lambda_handler"),
    REFERENCE: ("reference", "reference_handler.lambda_handler"),
    THREADS: ("reference", "reference_handler.threaded_handler"),
}
MODULES = {"ours": "cbr_checkpointer.handler", "reference": "reference_handler"}
# Informative, beside the cold-start rows only: ours' libraries without ours (its task and handler).
LIBRARIES = "ours' libraries alone"
LIBRARIES_ONLY = ("libraries", "libraries_handler.lambda_handler")
EVENTS = ROOT / "events"
NOTES = ROOT / "benchmarks" / "notes.md"
LATENCY = 0.2
PLOT_SIZES = (1, 2, 5, 10, 20, 50, 100)
SQS_BATCH = 10
WARM_INVOCATIONS = 100
WARM_SINGLE_RUNS = 15
BENCH_BUS = "cbr-bench"  # a bus without rules: moto forwarding thousands of events would dominate
# MAX_CONCURRENCY's default: the bench does not set it.
MAX_CONCURRENCY: int = Settings.from_env({"CBR_REGION": "cn-north-4"}).max_concurrency
FAN_OUT = "ours, one fan-out invocation"
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769
MEMORY_SIZES_MB = (128, 256, 512, 1024, 1769)
# arm64 list prices in us-east-1: per GB-second of duration, and per request.
PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_REQUEST = 0.20 / 1_000_000


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
