"""The fleet run's checks and its BENCHMARKS.md section, on figures made up here (no servers)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from devtools.esm import Invocation, MappingReport
from devtools.scale import (
    CREATED,
    SECTION_BEGIN,
    SECTION_END,
    ScaleConfig,
    ScaleResult,
    scale_section,
    vault_id,
    with_scale_section,
)

VAULTS = 3


def _event(
    message_id: str, vault: str, checkpoint: str, kind: str = CREATED, duplicate: bool = False
) -> dict[str, Any]:
    detail = {
        "trigger": {"kind": "sqs", "id": message_id},
        "vault_id": vault,
        "checkpoint": {"id": checkpoint},
        "duplicate": duplicate,
    }
    return {"detail-type": kind, "detail": detail}


def _result(**changes: Any) -> ScaleResult:
    """A run of three vaults in which everything went right, with `changes` applied."""
    vaults = [vault_id(index) for index in range(VAULTS)]
    fields: dict[str, Any] = {
        "config": ScaleConfig(vaults=VAULTS, rate=1.0, environments=1),
        "mapping": MappingReport(
            drained=True,
            seconds=3.5,
            invocations=[
                Invocation(
                    environment=0,
                    started=0.0,
                    seconds=1.0,
                    message_ids=("m1", "m2", "m3"),
                    receive_counts=(1, 1, 1),
                    handed_back=0,
                )
            ],
        ),
        "enqueue_seconds": 0.1,
        "samples": [],
        "checkpoints_per_vault": Counter(vaults),
        "creates_sent": 5,
        "throttled": 2,
        "events": [_event(f"m{index}", vault, f"c{index}") for index, vault in enumerate(vaults)],
        "request_vaults": {f"m{index}": vault for index, vault in enumerate(vaults)},
        "dead_letters": 0,
        "load_average": (0.5, 0.5, 0.5),
        "load_average_end": (0.7, 0.6, 0.5),
    }
    return ScaleResult(**(fields | changes))


def test_a_clean_run_has_no_problems_and_its_ratios() -> None:
    result = _result()
    assert result.check() == []
    assert result.wall_over_floor == pytest.approx(3.5 / 3)
    assert result.throttled_per_checkpoint == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"checkpoints_per_vault": Counter([vault_id(0), vault_id(1)])}, "1 vault(s) got no checkpoint"),
        (
            {"checkpoints_per_vault": Counter([vault_id(0), vault_id(0), vault_id(1), vault_id(2)])},
            "1 vault(s) got more than one checkpoint",
        ),
        (
            {"checkpoints_per_vault": Counter([vault_id(0), vault_id(1), vault_id(2), vault_id(9)])},
            "1 checkpoint(s) in vaults no request named",
        ),
        ({"dead_letters": 2}, "2 request(s) ended in the dead-letter queue"),
        ({"mapping": MappingReport(drained=False, seconds=99.0)}, "was not drained"),
    ],
)
def test_each_broken_invariant_is_a_problem(changes: dict[str, Any], problem: str) -> None:
    assert any(problem in found for found in _result(**changes).check())


def test_a_request_without_a_created_event_is_lost() -> None:
    result = _result()
    result.events = result.events[1:]
    assert result.check() == ["1 request(s) ended with no Created event, e.g. m0"]


def test_a_request_reporting_two_checkpoints_or_another_vault_is_a_problem() -> None:
    result = _result()
    result.events = [
        *result.events,
        _event("m0", vault_id(0), "c-other", duplicate=True),
        _event("m1", vault_id(2), "c1", duplicate=True),
    ]
    assert result.check() == [
        "1 request(s) reported more than one checkpoint, e.g. m0",
        "1 Created event(s) name another vault, e.g. m1",
    ]


def test_an_event_other_than_created_is_a_problem() -> None:
    result = _result()
    result.events = [*result.events, _event("m2", vault_id(2), "c2", kind="CBR Checkpoint Failed")]
    assert result.check() == ["1 CBR Checkpoint Failed event(s)"]


def test_failed_invocations_and_undeleted_records_are_problems() -> None:
    invocation = Invocation(
        environment=0,
        started=0.0,
        seconds=1.0,
        message_ids=("m1", "m2", "m3"),
        receive_counts=(1, 1, 1),
        handed_back=3,
        error="boom",
    )
    leftover = Invocation(
        environment=1,
        started=0.0,
        seconds=1.0,
        message_ids=("m1",),
        receive_counts=(2,),
        handed_back=0,
        not_deleted=1,
    )
    result = _result(mapping=MappingReport(drained=True, seconds=3.0, invocations=[invocation, leftover]))
    assert result.check() == [
        "1 invocation(s) failed: boom",
        "1 finished record(s) could not be deleted",
    ]
    assert (result.mapping.records, result.mapping.handed_back, result.mapping.redelivered) == (4, 3, 1)
    assert result.mapping.messages == {"m1", "m2", "m3"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vaults", 0),
        ("rate", 0.0),
        ("rate", float("nan")),
        ("environments", 0),
        ("visibility_timeout", -1),
        ("backlog", 5),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        ScaleConfig(**{field: value})


def test_the_section_replaces_the_old_one_and_keeps_the_rest() -> None:
    old = f"{SECTION_BEGIN}\nold figures\n{SECTION_END}"
    document = f"# Benchmarks\n\nbefore\n\n{old}\n\nafter\n"
    new = f"{SECTION_BEGIN}\nnew figures\n{SECTION_END}"

    assert scale_section(document) == old
    assert with_scale_section(document, new) == f"# Benchmarks\n\nbefore\n\n{new}\n\nafter\n"


def test_without_a_section_it_is_appended() -> None:
    new = f"{SECTION_BEGIN}\nfigures\n{SECTION_END}"
    assert scale_section("# Benchmarks\n") is None
    assert with_scale_section("# Benchmarks\n\ntext\n\n", new) == f"# Benchmarks\n\ntext\n\n{new}\n"
