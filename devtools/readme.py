"""README samples that cannot go stale: each is the output of its command, regenerated and compared.

A sample in README.md is a fenced block between two markers:

    <!-- sample: {"run": "cbr-checkpointer validate events/schedule.json", "show": "stdout"} -->
    ```console
    $ cbr-checkpointer validate events/schedule.json
    ...what the command printed...
    ```
    <!-- /sample -->

`run` is a shell command run from the repository root with `.venv/bin` first on PATH and a clean
environment (no AWS or Huawei credentials of the person running it); `show` picks `stdout` (the
default) or `stderr` (`2>&1` in `run` shows both, in the order they were written); `exit` (default 0)
is the exit status it must end with, and an `$ echo $?` line shows it when it is not 0; `until` (a
regular expression) is for one command that runs until stopped, a server: once a line of the shown
output matches, it gets Ctrl-C (SIGINT), and what it printed until it ended is the sample (the interrupt
follows that line at once, so the server must print it from inside its Ctrl-C handling, its `try:`,
never just before); `shown` replaces the command in the `$` line when the command run differs from what
a reader types (a redirection, say). What changes from run to run (loopback ports, checkpoint and
message ids, the clock) is replaced by stable placeholders.

    python -m devtools.readme --check   # exit 1 and a diff when README.md differs from fresh output
    python -m devtools.readme --write   # rewrite the samples in README.md (make readme)
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT_SECONDS = 120
# Variables passed through to the commands; everything else (credentials above all) is left out.
PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

_SAMPLE = re.compile(
    r"(?P<open><!-- sample: (?P<spec>\{.*?\}) -->\n)(?P<body>.*?)(?P<close><!-- /sample -->)", re.DOTALL
)
# Ids the samples use on purpose (events/ and the local sandbox) stay as they are; other UUIDs are
# made by the run (checkpoints, SQS messages, request ids) and become placeholders.
_KNOWN_IDS = frozenset(
    {
        "3b5816b5-f29c-4172-9d9a-76c719a659ce",
        "7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12",
        "94eba8b2-acc9-4d82-badc-127144cc5526",
        "7b3e2f10-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "8c4f3a21-2d5e-4f60-9bac-1d2e3f4a5b6c",
    }
)
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_LOOPBACK_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):\d{2,5}\b")
_TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
# A timestamp this close to the clock was made by the run (an event's time); the samples' own are older.
_RUN_TIME_WINDOW = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Sample:
    run: str
    show: Literal["stdout", "stderr"] = "stdout"
    exit: int = 0
    shown: str | None = None
    until: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Sample:
        fields = json.loads(spec)
        unknown = set(fields) - {"run", "show", "exit", "shown", "until"}
        if unknown:
            raise ValueError(f"unknown sample field(s) {sorted(unknown)} in {spec}")
        return cls(**fields)


def normalise(text: str, now: datetime | None = None) -> str:
    """The output with what differs between runs replaced by placeholders."""
    now = now or datetime.now(UTC)
    names: dict[str, str] = {}

    def stable_id(match: re.Match[str]) -> str:
        value = match.group(0)
        if value in _KNOWN_IDS:
            return value
        return names.setdefault(value, f"<id-{len(names) + 1}>")

    def run_time(match: re.Match[str]) -> str:
        value = match.group(0)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return "<time>" if abs(now - moment) <= _RUN_TIME_WINDOW else value

    text = _UUID.sub(stable_id, text)
    text = _TIMESTAMP.sub(run_time, text)
    return _LOOPBACK_PORT.sub(lambda match: f"{match.group(1)}:<port>", text)


def command_environment() -> dict[str, str]:
    environ = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    environ["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    environ["PYTHONUNBUFFERED"] = "1"
    return environ


def _run_until_interrupted(sample: Sample, pattern: str) -> subprocess.CompletedProcess[str]:
    """Run a command that serves until stopped: Ctrl-C (SIGINT, to its whole process group) once a line
    of the shown output matches `pattern`, then everything it printed until it ended.

    The line is the command's word that Ctrl-C now stops it cleanly; one printed before the command
    handles Ctrl-C races the interrupt, and the command then ends as an interrupted one (130, say)."""
    process = subprocess.Popen(
        # exec: the shell becomes the command, so that Ctrl-C reaches the command alone, as in a terminal
        f"exec {sample.run}",
        shell=True,
        cwd=ROOT,
        env=command_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    matched = threading.Event()
    captured: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def pump(name: str, stream: IO[str]) -> None:
        for line in stream:
            captured[name].append(line)
            if name == sample.show and re.search(pattern, line):
                matched.set()

    pumps = [
        threading.Thread(target=pump, args=(name, stream), daemon=True)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
        if stream is not None
    ]
    for thread in pumps:
        thread.start()
    found = matched.wait(TIMEOUT_SECONDS)
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for thread in pumps:
        thread.join(timeout=10)
    if not found:
        raise RuntimeError(f"`{sample.run}` printed no line matching {pattern!r} in {TIMEOUT_SECONDS} s")
    return subprocess.CompletedProcess(
        sample.run, process.returncode, "".join(captured["stdout"]), "".join(captured["stderr"])
    )


def render(sample: Sample) -> str:
    """The fenced console block for one sample, from a fresh run of its command."""
    if sample.until is not None:
        done = _run_until_interrupted(sample, sample.until)
    else:
        done = subprocess.run(
            sample.run,
            shell=True,
            cwd=ROOT,
            env=command_environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    if done.returncode != sample.exit:
        raise RuntimeError(
            f"`{sample.run}` exited {done.returncode}, the README says {sample.exit}:\n{done.stderr[-2000:]}"
        )
    shown = done.stdout if sample.show == "stdout" else done.stderr
    lines = [f"$ {sample.shown or sample.run}", *normalise(shown).rstrip("\n").splitlines()]
    if sample.exit:
        lines += ["$ echo $?", str(sample.exit)]
    return "```console\n" + "\n".join(lines) + "\n```\n"


def regenerate(readme: str, renderer: Callable[[Sample], str] = render) -> str:
    def fresh(match: re.Match[str]) -> str:
        return match.group("open") + renderer(Sample.parse(match.group("spec"))) + match.group("close")

    return _SAMPLE.sub(fresh, readme)


def samples_in(readme: str) -> list[Sample]:
    return [Sample.parse(match.group("spec")) for match in _SAMPLE.finditer(readme)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.readme", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 when README.md's samples are stale")
    mode.add_argument("--write", action="store_true", help="rewrite README.md's samples from fresh runs")
    arguments = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    updated = regenerate(current)
    if arguments.write:
        README.write_text(updated, encoding="utf-8")
        print(f"{len(samples_in(current))} sample(s) written to {README.name}", file=sys.stderr)
        return 0
    if updated == current:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            current.splitlines(keepends=True), updated.splitlines(keepends=True), "README.md", "fresh"
        )
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
