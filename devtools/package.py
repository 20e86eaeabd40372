"""`make package`: zip a staged Lambda tree into a reproducible deployment package.

The same tree always gives the same bytes: entries are sorted, every timestamp is 1980-01-01, file
modes are normalised, and console scripts (`bin/`) and bytecode are left out, except bytecode for
the Lambda runtime (`*.cpython-313.pyc`, hash-checked, so as reproducible as the sources). The zip
must not contain boto3 or botocore (the function never imports them; the Lambda runtime ships its
own copy anyway), nor the local emulator.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FORBIDDEN = ("boto3", "botocore", "cbr_emulator")
BYTECODE_DIRECTORY = "__pycache__"
LAMBDA_BYTECODE_SUFFIX = ".cpython-313.pyc"
UNIX_FILE_MODE = 0o100644  # regular file, rw-r--r--; Lambda only needs to read


class PackagingError(Exception):
    """The staged tree cannot be shipped as it is."""


def forbidden_part(relative: str) -> str | None:
    """The forbidden package a zip path belongs to, if any.

    Catches the package itself at any depth (`boto3/...`, `vendor/botocore/...`), a top-level module
    (`boto3.py`) and its distribution metadata (`botocore-1.2.3.dist-info/...`).
    """
    parts = relative.split("/")
    for name in FORBIDDEN:
        if name in parts[:-1] or parts[0] in (f"{name}.py", f"{name}.pth"):
            return name
        if parts[0].startswith(f"{name}-") and parts[0].endswith((".dist-info", ".egg-info", ".data")):
            return name
    return None


def iter_entries(root: Path) -> Iterator[tuple[str, Path]]:
    """(zip path, file) for every file to ship, in sorted order."""
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if not path.is_file():
            continue
        is_bytecode = BYTECODE_DIRECTORY in relative.parts[:-1] or path.suffix in (".pyc", ".pyo")
        if is_bytecode and not path.name.endswith(LAMBDA_BYTECODE_SUFFIX):
            continue
        if relative.parts[0] == "bin":  # console scripts with this machine's interpreter path
            continue
        files.append((relative.as_posix(), path))
    yield from sorted(files)


def build_zip(root: Path, output: Path) -> list[str]:
    """Write `output` from the tree at `root` and return its zip paths; PackagingError on a forbidden path."""
    entries = list(iter_entries(root))
    if not entries:
        raise PackagingError(f"{root} holds no files")
    forbidden = sorted({name for relative, _ in entries if (name := forbidden_part(relative))})
    if forbidden:
        raise PackagingError(f"{root} contains {', '.join(forbidden)}; it must not be shipped")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for relative, path in entries:
            info = zipfile.ZipInfo(relative, date_time=FIXED_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = UNIX_FILE_MODE << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    partial.replace(output)
    return [relative for relative, _ in entries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="staged tree: dependencies plus the function package")
    parser.add_argument("output", type=Path, help="zip file to write, e.g. dist/function.zip")
    parser.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="PATH",
        help="a zip path that must be present, e.g. cbr_checkpointer/handler.py (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        names = build_zip(args.root, args.output)
    except PackagingError as error:
        print(f"package: {error}", file=sys.stderr)
        return 1
    missing = [path for path in args.require if path not in names]
    if missing:
        args.output.unlink()
        print(f"package: {', '.join(missing)} missing from {args.root}", file=sys.stderr)
        return 1
    size = args.output.stat().st_size
    unpacked = sum(path.stat().st_size for _, path in iter_entries(args.root))
    print(
        f"{args.output}: {len(names)} files, {size / 1024 / 1024:.2f} MiB zipped "
        f"({unpacked / 1024 / 1024:.2f} MiB unpacked; Lambda's limit is 250 MiB); no boto3/botocore inside"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
