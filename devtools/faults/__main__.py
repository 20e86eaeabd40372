"""`python -m devtools.faults`: the whole matrix, its table, and a search of the logs for secrets.

`python -m devtools.faults --child` is one invocation in its own process, for a delivery that must be
killed at its deadline.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import TextIO

from devtools.faults.harness import Harness, child_main
from devtools.faults.leaks import leaks, signatures_and_tokens, static_secrets
from devtools.faults.model import MODES, Row, Scenario
from devtools.faults.report import table_lines
from devtools.faults.scenarios import SCENARIOS
from devtools.sandbox import Sandbox


def run_matrix(harness: Harness, scenarios: Sequence[Scenario] = SCENARIOS) -> Iterator[Row]:
    for scenario in scenarios:
        for mode in MODES:
            yield harness.run(scenario, mode)


def main(argv: Sequence[str] = ()) -> int:
    if list(argv) == ["--child"]:
        return child_main()
    out: TextIO = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    # The function's JSON logs (and the emulator's and moto's) go to a file; the table goes to the terminal.
    log = tempfile.NamedTemporaryFile("w+", prefix="faults-", suffix=".log", delete=False)  # noqa: SIM115
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    started = time.monotonic()
    rows: list[Row] = []
    secrets = static_secrets()
    with Sandbox() as sandbox, Harness(sandbox) as harness:
        for row in run_matrix(harness):
            rows.append(row)
            secrets |= signatures_and_tokens(sandbox.emulator.requests) | set(sandbox.emulator.issued_tokens)
            print(f"{row.scenario.name} [{row.mode}] {'PASS' if row.passed else 'FAIL'}", file=sys.stderr)
            out.write(".")
    sys.stdout.flush()
    sys.stderr.flush()
    log.seek(0)
    logged = log.read()
    events = json.dumps([row.events for row in rows]) + "\n".join(e for row in rows for e in row.errors)
    leaked = leaks([logged, events], secrets)
    out.write("\n" + "\n".join(table_lines(rows)) + "\n")
    failed = sum(1 for row in rows if not row.passed)
    out.write(
        f"\n{len(rows)} rows ({len(SCENARIOS)} scenarios x {len(MODES)} modes), {failed} failed, "
        f"no secret in {len(logged) // 1024} KiB of logs, events and errors, "
        f"{time.monotonic() - started:.1f}s\n"
        if not leaked
        else f"\nSECRETS LEAKED into logs, events or errors: {leaked}\n"
    )
    log.close()
    if failed or leaked:
        out.write(f"the function's logs: {log.name}\n")
        return 1
    os.unlink(log.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
