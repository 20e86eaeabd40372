"""One Lambda execution environment for `make bench`: imports a handler, then runs invocations on demand.

    python -m benchmarks.worker MODULE

The parent (bench.py) owns the emulator and moto and passes the configuration in the environment.
Commands come as JSON lines on stdin; answers go as JSON lines to the original stdout. The handler's
own stdout (Powertools logs and EMF metrics) goes to /dev/null, as the container's would go to
CloudWatch. Nothing here imports the function, the emulator or moto, so RSS and imports are the handler's.
"""

from __future__ import annotations

import time

STARTED_WALL = time.perf_counter()
STARTED_CPU = time.process_time()

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402


@dataclass
class Context:
    """The parts of the Lambda context object that the handlers and Powertools read.

    A copy of cbr_checkpointer.local_context.LocalContext on purpose: this process must import nothing
    before the handler under measurement, and the reference handler's path has no cbr_checkpointer.
    """

    timeout_seconds: float = 120.0
    function_name: str = "cbr-checkpointer"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:cbr-checkpointer"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def _invoke(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    error = None
    failures = 0
    try:
        result = handler(event, Context())
        failures = len(result.get("batchItemFailures", [])) if isinstance(result, dict) else 0
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "error": error,
        "failures": failures,
    }


def peak_rss_kib() -> int:
    """This process's peak resident set: VmHWM on Linux.

    Not `ru_maxrss`: on Linux a child created with fork + exec starts with its parent's high-water
    mark (the bench process holds moto and the emulator, ~100 MiB), so ru_maxrss would report the
    parent's size, not the handler's.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    module_name = sys.argv[1]
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    before_wall, before_cpu = time.perf_counter(), time.process_time()
    module = importlib.import_module(module_name)
    handler = module.lambda_handler
    answers.write(
        json.dumps(
            {
                "import_wall": time.perf_counter() - before_wall,
                "import_cpu": time.process_time() - before_cpu,
                "interpreter_wall": before_wall - STARTED_WALL,
            }
        )
        + "\n"
    )
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "invoke":
            answer: Any = [_invoke(handler, event) for event in command["events"]]
        elif command["cmd"] == "stats":
            answer = {
                "peak_rss_kib": peak_rss_kib(),
                "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "boto3": "boto3" in sys.modules,
                "botocore_session": "botocore.session" in sys.modules,
                "modules": len(sys.modules),
            }
        else:
            break
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
