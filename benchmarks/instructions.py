"""Instructions executed by a cold start, ours vs the reference: steadier than CPU time on a busy machine.

Each handler runs from its task directory (`make bench-environments`) in the bench's python3.13, with the
environment Lambda and the bench give it, under valgrind's cachegrind, which counts the instructions the
process executes whatever else runs on the machine. Three processes per handler: one only imports the
handler (Lambda's init), one also runs one schedule request through `lambda_handler` against the
emulator and moto on loopback, one runs two; the differences are the first and the second invocation.
The runtime interface client's module is imported first, as Lambda's python3.13 runtime imports it before
the handler: its share is the same for both handlers, but it counts in every ratio the bench's clock
reads. The bytecode is read, never written (`-B`), as from Lambda's read-only /var/task.

    .venv/bin/python -m benchmarks.instructions            # about 2 minutes on 2 idle cores
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.lambda_env import BENCH_PYTHON, REFERENCE_TASK, function_environment  # noqa: E402
from benchmarks.workloads import BENCH_BUS, HANDLERS, OURS, REFERENCE, SCHEDULE  # noqa: E402
from devtools.sandbox import REGION, Sandbox  # noqa: E402

OURS_TASK = ROOT / "build" / "package-x86_64"  # what `make package ARCH=x86_64` zips
# Run in the task directory: import the handler, then invoke it `count` times with fresh idempotency keys.
CHILD = """
import json, os, sys, uuid
import awslambdaric.bootstrap
sys.path.insert(0, os.getcwd())
module_name, function_name = sys.argv[1].rsplit(".", 1)
count = int(sys.argv[2])
schedule = json.loads(sys.argv[3])
module = __import__(module_name, fromlist=[function_name])
handler = getattr(module, function_name)


class Context:
    function_name = "cbr-checkpointer"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cbr-checkpointer"
    log_group_name = "/aws/lambda/cbr-checkpointer"
    log_stream_name = "instructions"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self):
        return 60_000


for _ in range(count):
    answer = handler(schedule | {"idempotency_key": f"instructions-{uuid.uuid4()}"}, Context())
    # Ours lists each request's outcome; the reference counts its requests (it raises on a failure).
    outcomes = answer["outcomes"]
    if outcomes != 1 and [outcome.get("outcome") for outcome in outcomes] != ["created"]:
        sys.exit(f"not created: {answer}")
"""
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(task: Path, handler: str, count: int, env: dict[str, str], child: Path) -> int:
    """Instructions executed by a process that imports `handler` and invokes it `count` times."""
    completed = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            str(BENCH_PYTHON),
            "-B",
            str(child),
            handler,
            str(count),
            json.dumps(SCHEDULE),
        ],
        cwd=task,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    found = REFS.search(completed.stderr)
    if completed.returncode != 0 or found is None:
        raise SystemExit(f"{handler} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    if not BENCH_PYTHON.exists() or not (OURS_TASK / "cbr_checkpointer").exists():
        raise SystemExit("run `make bench-environments` first")
    tasks = {OURS: OURS_TASK, REFERENCE: REFERENCE_TASK}
    counts: dict[str, list[int]] = {}
    with Sandbox() as sandbox, tempfile.TemporaryDirectory() as scratch:
        child = Path(scratch) / "child.py"
        child.write_text(CHILD, encoding="utf-8")
        sandbox.aws("events").call("CreateEventBus", {"Name": BENCH_BUS})
        for name in (OURS, REFERENCE):
            own = sandbox.environment | {
                "IDEMPOTENCY_TABLE": sandbox.create_ledger_table(),
                "EVENT_BUS_NAME": BENCH_BUS,
                "AWS_DEFAULT_REGION": REGION,
                "PYTHONHASHSEED": "0",  # the same set and dict layouts in every run
            }
            env = function_environment(own, "127.0.0.1:9", tasks[name])  # the Runtime API is never called
            handler = HANDLERS[name][1]
            counts[name] = [instructions(tasks[name], handler, count, env, child) for count in (0, 1, 2)]
    # runs: the counts of the processes that invoked 0, 1 and 2 times.
    rows: dict[str, Callable[[list[int]], int]] = {
        "init (import of the handler)": lambda runs: runs[0],
        "first invocation": lambda runs: runs[1] - runs[0],
        "second invocation": lambda runs: runs[2] - runs[1],
        "cold start (init + first invocation)": lambda runs: runs[1],
    }
    print(f"| million instructions | {OURS} | {REFERENCE} | {OURS} / {REFERENCE} |")
    print("|---|---:|---:|---:|")
    for label, pick in rows.items():
        ours, reference = pick(counts[OURS]), pick(counts[REFERENCE])
        print(f"| {label} | {ours / 1e6:,.0f} | {reference / 1e6:,.0f} | {ours / reference:.2f} |")


if __name__ == "__main__":
    main()
