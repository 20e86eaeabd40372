"""The handler's import (Lambda's init) runs without the cyclic garbage collector, and leaves it as found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
# Counts the collections made during the import; reports the collector's state after it. The handler's
# own module is compiled first, as the package ships it: compiling it from source at import would
# collect before its first line could pause anything.
PROBE = """
import gc, importlib.util, json, py_compile, sys
handler = importlib.util.find_spec("cbr_checkpointer.handler").origin
py_compile.compile(handler, cfile=importlib.util.cache_from_source(handler), doraise=True)
{before}
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
import cbr_checkpointer.handler
gc.callbacks.clear()
print(json.dumps({{"collections": collections, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""


def _import_handler(before: str = "") -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before)],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return answer


def test_no_collection_runs_while_the_handler_is_imported_and_the_collector_is_back_after() -> None:
    answer = _import_handler()

    assert answer["collections"] == []
    assert answer["enabled"] is True
    assert isinstance(answer["frozen"], int)
    assert answer["frozen"] > 10_000  # init's objects: out of every later collection


def test_a_collector_disabled_before_the_import_stays_disabled() -> None:
    answer = _import_handler(before="gc.disable()")

    assert answer["collections"] == []
    assert answer["enabled"] is False
