"""The fleet simulation in virtual time: the adaptive limiter meets the fleet targets on a small instance,
today's fixed concurrency does not, and redelivery never creates a vault twice. Counts, not wall clocks."""

from __future__ import annotations

import pytest

from devtools.fleet_sim import FleetConfig, FleetResult, simulate

SMALL = FleetConfig(vaults=5000, environments=10)


@pytest.fixture(scope="module")
def adaptive() -> FleetResult:
    return simulate(SMALL, "adaptive")


@pytest.fixture(scope="module")
def fixed() -> FleetResult:
    return simulate(SMALL, "fixed")


def test_the_adaptive_fleet_creates_each_vault_once_close_to_the_floor_with_few_throttles(
    adaptive: FleetResult,
) -> None:
    assert adaptive.each_vault_once
    assert adaptive.checkpoints == SMALL.vaults
    assert adaptive.handed_back == 0
    assert adaptive.wall <= 1.1 * SMALL.floor
    assert adaptive.throttled <= 0.1 * adaptive.checkpoints


def test_todays_fixed_concurrency_throttles_far_more(adaptive: FleetResult, fixed: FleetResult) -> None:
    assert fixed.throttled > 0.5 * fixed.checkpoints
    assert fixed.throttled > 10 * adaptive.throttled


def test_throttles_spend_no_attempts_so_no_record_is_handed_back_while_time_is_left(
    fixed: FleetResult,
) -> None:
    # Thousands of throttles (under the old rule, records throttled max_attempts times were handed back
    # and waited out the visibility timeout): every record is created in its first delivery.
    assert fixed.throttled > 0.5 * fixed.checkpoints
    assert fixed.handed_back == 0
    assert fixed.deliveries == SMALL.vaults


def test_handed_back_records_come_again_and_each_vault_is_still_created_once() -> None:
    # Invocations too short for their batches: records run out of time and are handed back.
    config = FleetConfig(vaults=2000, environments=10, function_timeout=8.0)
    fixed = simulate(config, "fixed")

    assert fixed.handed_back > 0
    # Every record handed back was delivered again (after the visibility timeout) until created.
    assert fixed.deliveries == config.vaults + fixed.handed_back
    assert fixed.each_vault_once
    assert fixed.unused_capacity["redelivery"] > 0


def test_the_unused_capacity_accounts_for_the_time_beyond_the_floor(adaptive: FleetResult) -> None:
    # Tokens are either used by a create, left unused, or still in the bucket (at most `burst`).
    unused = sum(adaptive.unused_capacity.values())
    assert adaptive.wall * SMALL.rate == pytest.approx(
        adaptive.checkpoints + unused * SMALL.rate, abs=SMALL.burst
    )


def test_a_run_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    config = FleetConfig(vaults=1000, environments=5)
    first, again = simulate(config, "adaptive"), simulate(config, "adaptive")
    other = simulate(FleetConfig(vaults=1000, environments=5, seed=8), "adaptive")

    assert (first.wall, first.throttled, first.creates) == (again.wall, again.throttled, again.creates)
    assert (first.wall, first.throttled) != (other.wall, other.throttled)


@pytest.mark.parametrize(
    ("field", "value"), [("vaults", 0), ("environments", 0), ("rate", 0.0), ("jitter", 1.0)]
)
def test_a_bad_configuration_is_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        FleetConfig(**{field: value})  # type: ignore[arg-type]
