"""Lambda-like package directories for the bench: each handler sees only what it would ship.

The dev venv holds every tool (moto, Flask, click, pygments, ...), and some libraries import optional
extras when they find them (httpx imports its click/pygments command line when click is installed),
so importing from the venv would measure neither deployment. Instead each handler gets a directory of
symlinks to the venv's installed files of exactly its distributions and their dependencies:

- ours: the pinned `requirements/runtime.txt` (what `make package` puts in the zip) + `src/cbr_checkpointer`;
- reference: `huaweicloudsdkcbr`, `boto3`, `aws-lambda-powertools` and their dependencies.

The workers run with `python -S` and `PYTHONPATH=<that directory>:<repo>`, so nothing else is importable
except the standard library (and the repo's `benchmarks` package for the worker and the reference).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SITES = ROOT / "build" / "bench"
REFERENCE_DISTRIBUTIONS = ("huaweicloudsdkcbr", "boto3", "aws-lambda-powertools")


def runtime_distributions() -> list[str]:
    text = (ROOT / "requirements" / "runtime.txt").read_text(encoding="utf-8")
    return [
        re.split(r"[=<>!~;\[ ]", line.strip(), maxsplit=1)[0] for line in text.splitlines() if line.strip()
    ]


def closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The distributions named and everything they require (no extras), as installed in this venv."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        distribution = importlib.metadata.distribution(name)
        seen[name] = distribution
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(seen.values())


def build_site(
    name: str, distributions: list[importlib.metadata.Distribution], packages: dict[str, Path] | None = None
) -> Path:
    """build/bench/<name>/: a symlink per top-level file or directory of those distributions."""
    site = SITES / name
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    for distribution in distributions:
        base = Path(str(distribution.locate_file("")))
        tops = {
            Path(str(file)).parts[0] for file in distribution.files or () if not str(file).startswith("..")
        }
        for top in sorted(tops):
            if top == "__pycache__" or not (base / top).exists():
                continue
            link = site / top
            if not link.exists():
                link.symlink_to(base / top)
    for package, path in (packages or {}).items():
        (site / package).symlink_to(path)
    return site


def build_sites() -> dict[str, Path]:
    return {
        "ours": build_site(
            "ours",
            closure(runtime_distributions()),
            {"cbr_checkpointer": ROOT / "src" / "cbr_checkpointer"},
        ),
        "reference": build_site("reference", closure(list(REFERENCE_DISTRIBUTIONS))),
    }


if __name__ == "__main__":
    for handler, site in build_sites().items():
        print(handler, site, sorted(path.name for path in site.iterdir()))
