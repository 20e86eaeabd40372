"""README.md says only what is true: its samples are fresh output, and what it names exists."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cbr_checkpointer.domain import BackupRequest, Rejected, Selection
from cbr_checkpointer.triggers import RequestDefaults, parse_invocation
from devtools import readme

ROOT = Path(__file__).resolve().parents[2]
README_TEXT = readme.README.read_text(encoding="utf-8")
SAMPLES = readme.samples_in(README_TEXT)
# Each command runs once for the whole module.
fresh = functools.cache(readme.render)


def _block_of(sample: readme.Sample) -> str:
    for match in re.finditer(r"<!-- sample: (\{.*?\}) -->\n(.*?)<!-- /sample -->", README_TEXT, re.DOTALL):
        if readme.Sample.parse(match.group(1)) == sample:
            return match.group(2)
    raise AssertionError(f"sample {sample.run!r} not found")


def test_the_readme_has_samples() -> None:
    assert len(SAMPLES) >= 1


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.shown or sample.run for sample in SAMPLES])
def test_sample_is_what_its_command_prints_today(sample: readme.Sample) -> None:
    assert fresh(sample) == _block_of(sample), "README is stale: run `make readme`"


def test_normalise_keeps_known_ids_and_numbers_run_ids_in_order() -> None:
    text = (
        "vault=3b5816b5-f29c-4172-9d9a-76c719a659ce checkpoint=0f0e0d0c-0b0a-4909-8807-060504030201 "
        "again=0f0e0d0c-0b0a-4909-8807-060504030201 other=11111111-2222-4333-8444-555555555555 "
        "at http://127.0.0.1:41234/v3"
    )
    assert readme.normalise(text) == (
        "vault=3b5816b5-f29c-4172-9d9a-76c719a659ce checkpoint=<id-1> again=<id-1> other=<id-2> "
        "at http://127.0.0.1:<port>/v3"
    )


def test_normalise_replaces_the_times_of_the_run_and_keeps_the_samples_own() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    text = (
        '"time": "2026-11-29T11:58:17Z", "trigger": {"time": "2024-05-01T02:00:00+00:00"}, '
        "at 2026-11-28T23:00:01"
    )

    assert readme.normalise(text, now) == (
        '"time": "<time>", "trigger": {"time": "2024-05-01T02:00:00+00:00"}, at <time>'
    )


def test_regenerating_restores_an_edited_sample() -> None:
    stale = README_TEXT.replace("$ echo $?\n1\n", "$ echo $?\n0\n", 1)
    assert stale != README_TEXT
    assert readme.regenerate(stale, fresh) == readme.regenerate(README_TEXT, fresh)


def test_a_command_that_ends_otherwise_than_the_readme_says_fails() -> None:
    with pytest.raises(RuntimeError, match="exited 1, the README says 0"):
        readme.render(readme.Sample(run="exit 1"))


def test_a_server_sample_is_stopped_with_ctrl_c_once_it_printed_the_awaited_line() -> None:
    # A server that would otherwise run for longer than the test may take; it says it serves from inside
    # its Ctrl-C handling, as a sample's server must
    server = (
        'python -c "import time\n'
        "try:\n    print('serving on http://127.0.0.1:8080', flush=True)\n    time.sleep(1000)\n"
        "except KeyboardInterrupt:\n    print('stopped', flush=True)\n\""
    )

    block = readme.render(readme.Sample(run=server, until="^serving on", shown="server"))

    assert block == "```console\n$ server\nserving on http://127.0.0.1:<port>\nstopped\n```\n"


def test_a_server_sample_that_never_prints_the_awaited_line_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readme, "TIMEOUT_SECONDS", 2)

    with pytest.raises(RuntimeError, match="printed no line matching '\\^ready'"):
        readme.render(readme.Sample(run="echo starting; sleep 1000", until="^ready"))


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README_TEXT))
    assert named, "README names no make target"
    assert named <= targets, named - targets


def test_every_file_the_readme_links_or_names_exists() -> None:
    linked = set(re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", README_TEXT))
    named = set(
        re.findall(r"`((?:events|src|tests|devtools|benchmarks|requirements)/[^`\s*]+)`", README_TEXT)
    )
    missing = sorted(path for path in linked | named if not (ROOT / path).exists())
    assert missing == []


def test_schedule_inputs_the_readme_shows_are_requests_the_function_accepts() -> None:
    snippets = re.findall(r"```yaml\n(.*?)```", README_TEXT, re.DOTALL)
    inputs = [
        json.loads(match)
        for snippet in snippets
        for match in re.findall(r"Input: >-\n((?:\s+.*\n)+?)\s+RetryPolicy", snippet)
    ]
    assert inputs, "README shows no schedule input"
    filled = json.loads(
        json.dumps(inputs)
        .replace(
            "<aws.scheduler.schedule-arn>", "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/n"
        )
        .replace("<aws.scheduler.scheduled-time>", "2026-11-29T01:30:00Z")
    )
    defaults = RequestDefaults(
        project_id="4229d7a4e1b64c4f9e7a2b1c3d5e6f70", default_vault_id=None, dry_run=False
    )
    for schedule_input in filled:
        items = parse_invocation(schedule_input, request_id="r", now=datetime.now(UTC), defaults=defaults)
        assert items
        assert all(isinstance(item, BackupRequest | Selection) for item in items), items
        names = [
            item.name if isinstance(item, BackupRequest) else str(item.parameters["name"])
            for item in items
            if not isinstance(item, Rejected)
        ]
        assert all(name.endswith("-20261129") for name in names if "{time:" in json.dumps(schedule_input))
