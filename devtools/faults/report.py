"""The fault matrix as a table: one line per scenario and mode, then every problem found."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from devtools.faults.model import Row


def _events_cell(row: Row) -> str:
    parts = []
    for detail_type, short in (
        ("CBR Checkpoint Created", "Created"),
        ("CBR Checkpoint Failed", "Failed"),
        ("CBR Backup Request Rejected", "Rejected"),
    ):
        details = row.events_of(detail_type)
        if details:
            duplicates = sum(1 for d in details if d.get("duplicate"))
            parts.append(f"{short} {len(details)}" + (f" ({duplicates} dup)" if duplicates else ""))
    return ", ".join(parts) or "-"


def _returns_cell(row: Row) -> str:
    fates = Counter(fate for fates in row.rounds for fate in fates if fate != "ok")
    return ", ".join(f"{count} {fate}" for fate, count in sorted(fates.items())) or "0"


def _outcome_cell(row: Row) -> str:
    cells = []
    for outcome in row.outcomes():
        if outcome == "failed":
            codes = {(d.get("error") or {}).get("code") for d in row.events_of("CBR Checkpoint Failed")}
            cells.append("Failed " + ",".join(sorted(map(str, codes))))
        elif outcome == "rejected":
            cells.append("Rejected")
        else:
            cells.append(outcome.capitalize())
    return " + ".join(cells)


HEADERS = (
    "scenario",
    "mode",
    "checkpoints",
    "events published",
    "returned/raised",
    "outcome",
    "verdict",
    "s",
)


def table_lines(rows: Sequence[Row]) -> list[str]:
    cells = [
        (
            row.scenario.name,
            row.mode,
            str(len(row.created)),
            _events_cell(row),
            _returns_cell(row),
            _outcome_cell(row),
            "PASS" if row.passed else "FAIL",
            f"{row.elapsed:.1f}",
        )
        for row in rows
    ]
    widths = [max(len(text) for text in column) for column in zip(HEADERS, *cells, strict=False)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()

    lines = [line(HEADERS), line(["-" * width for width in widths])]
    lines += [line(values) for values in cells]
    for row in rows:
        lines += [f"FAIL {row.scenario.name} [{row.mode}]: {problem}" for problem in row.problems]
    return lines
