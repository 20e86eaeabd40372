"""Execution environments for `make bench`, started the way Lambda's python3.13 runtime starts a function.

- The code: a task directory per handler, read-only as /var/task is. Ours is dist/function-x86_64.zip
  unzipped (`make package ARCH=x86_64`: the deployment recipe for this machine's architecture); the
  reference's is its pinned packages plus benchmarks/reference_handler.py, with bytecode compiled the
  same way (`make bench-environments` builds both).
- The process: python3.13 from a bench-only venv that holds AWS's runtime interface client and nothing
  else (`python -m awslambdaric <module>.<function>`, working directory = the task directory, as in
  AWS's container images), against a Runtime API on loopback (benchmarks/runtime_api.py).
- Read-only: the bench process moves into a mount namespace of its own and bind-mounts each task
  directory read-only over itself, so the handlers cannot write bytecode caches (as on Lambda). Where
  that is not allowed (not root), the directories are made read-only by their mode bits instead.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.runtime_api import Invocation, RuntimeApi

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "bench"
BENCH_PYTHON = BENCH / "python3.13" / "bin" / "python"
OURS_ZIP = ROOT / "dist" / "function-x86_64.zip"
REFERENCE_TASK = BENCH / "reference-task"
OURS_TASK = BENCH / "ours-task"
# Ours' libraries without ours, plus benchmarks/libraries_handler.py: the floor of ours' init.
LIBRARIES_TASK = BENCH / "libraries-task"
LIBRARIES_HANDLER = ROOT / "benchmarks" / "libraries_handler.py"
LOGS = BENCH / "logs"
CLONE_NEWNS = 0x00020000
# The template's MemorySize, as AWS_LAMBDA_FUNCTION_MEMORY_SIZE says it; the bench does not limit memory.
MEMORY_SIZE_MB = 1769
INIT_TIMEOUT = 60.0
INVOCATION_TIMEOUT = 120.0


class BenchEnvironmentError(RuntimeError):
    """An execution environment failed to start or to answer."""


def prepare_tasks() -> dict[str, Path]:
    """The task directories (ours, the reference, ours' libraries alone), checked; raises with the make target
    to run if missing."""
    if not BENCH_PYTHON.exists() or not OURS_ZIP.exists() or not (REFERENCE_TASK / ".built").exists():
        raise BenchEnvironmentError("the bench environments are missing: run `make bench-environments`")
    if OURS_TASK.exists():
        _writable(OURS_TASK)
        shutil.rmtree(OURS_TASK)
    with zipfile.ZipFile(OURS_ZIP) as archive:
        archive.extractall(OURS_TASK)
    if LIBRARIES_TASK.exists():
        _writable(LIBRARIES_TASK)
        shutil.rmtree(LIBRARIES_TASK)
    shutil.copytree(OURS_TASK, LIBRARIES_TASK, ignore=shutil.ignore_patterns("cbr_checkpointer"))
    shutil.copy2(LIBRARIES_HANDLER, LIBRARIES_TASK)
    handler = LIBRARIES_TASK / LIBRARIES_HANDLER.name
    compile_handler = [str(BENCH_PYTHON), "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([*compile_handler, str(handler)], check=True)
    tasks = {"ours": OURS_TASK, "reference": REFERENCE_TASK, "libraries": LIBRARIES_TASK}
    for task in tasks.values():
        if not any(task.rglob("*.cpython-313.pyc")):
            raise BenchEnvironmentError(f"{task} holds no python3.13 bytecode")
    return tasks


def _writable(tree: Path) -> None:
    for path in (tree, *tree.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def make_read_only(tasks: dict[str, Path]) -> str:
    """Read-only task directories for every process started from now on; says how it was done.

    Call it before any thread is started: unshare(2) moves only the calling thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0 and libc.unshare(CLONE_NEWNS) == 0:
        commands = [["mount", "--make-rprivate", "/"]]
        for task in tasks.values():
            commands += [["mount", "--bind", str(task), str(task)]]
            commands += [["mount", "-o", "remount,bind,ro", str(task)]]
        if all(subprocess.run(command, check=False).returncode == 0 for command in commands):
            return "read-only (bind-mounted read-only in a mount namespace of the bench's own)"
    for task in tasks.values():
        for path in (task, *task.rglob("*")):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return "read-only by mode bits only (no mount namespace here)"


def release(tasks: dict[str, Path]) -> None:
    """Give back the write bits taken by `make_read_only` (the read-only mounts end with the bench)."""
    for task in tasks.values():
        if not os.statvfs(task).f_flag & os.ST_RDONLY:
            _writable(task)


def function_environment(base: dict[str, str], runtime_api: str, task: Path) -> dict[str, str]:
    """What Lambda's python3.13 runtime puts in a function's environment, plus the function's own."""
    return base | {
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": "cbr-checkpointer",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_SIZE_MB),
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/cbr-checkpointer",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": str(task),
        "LAMBDA_RUNTIME_DIR": str(BENCH_PYTHON.parent),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }


@dataclass
class ColdStart:
    """Server-side times of one execution environment's start, in seconds from process start."""

    init: float  # process start -> first /next
    init_cpu: float
    first: Invocation
    first_response: float  # process start -> first /response


class ExecutionEnvironment:
    """One Lambda execution environment: a python3.13 process under awslambdaric and its Runtime API."""

    def __init__(self, task: Path, handler: str, env: dict[str, str], log_name: str) -> None:
        self.handler = handler
        self.api = RuntimeApi().start()
        LOGS.mkdir(parents=True, exist_ok=True)
        self._log = (LOGS / f"{log_name}.log").open("ab")
        self.started = time.monotonic()
        self._process = subprocess.Popen(
            [str(BENCH_PYTHON), "-m", "awslambdaric", handler],
            cwd=task,
            env=function_environment(env, self.api.address, task),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        self.api.pid = self._process.pid

    def invoke(self, events: list[dict[str, Any]]) -> list[Invocation]:
        """Each event as one invocation, one after another, as Lambda sends them to one environment."""
        done = []
        for event in events:
            invocation = self.api.submit(event)
            try:
                self.api.wait(invocation, INVOCATION_TIMEOUT)
            except (RuntimeError, TimeoutError) as error:
                raise BenchEnvironmentError(f"{self.handler}: {error}; see {self._log.name}") from error
            if invocation.error is not None:
                raise BenchEnvironmentError(f"{self.handler}: invocation failed: {invocation.error}")
            response = invocation.response
            failures = response.get("batchItemFailures") if isinstance(response, dict) else None
            if failures:
                raise BenchEnvironmentError(f"{self.handler}: records failed: {failures}")
            done.append(invocation)
        return done

    def cold_start(self, event: dict[str, Any]) -> ColdStart:
        """The first invocation of a fresh environment, timed from process start."""
        first = self.invoke([event])[0]
        assert self.api.first_next is not None
        assert self.api.first_next_cpu is not None
        assert first.answered is not None
        return ColdStart(
            init=self.api.first_next - self.started,
            init_cpu=self.api.first_next_cpu,
            first=first,
            first_response=first.answered - self.started,
        )

    def cpu_seconds(self) -> float:
        return float(time.clock_gettime((~self._process.pid << 3) | 2))

    def peak_rss_mib(self) -> float:
        """VmHWM of the process: interpreter + import + invocations so far."""
        with open(f"/proc/{self._process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise BenchEnvironmentError("no VmHWM in /proc")

    def close(self) -> None:
        """Ends the environment as Lambda does: the process is stopped, whatever it was doing."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=30)
        self.api.close()
        self._log.close()
