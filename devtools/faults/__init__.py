"""The exactly-once fault matrix (`python -m devtools.faults`), being split out of `scenarios`."""

from devtools.faults.scenarios import (
    MODES,
    SCENARIOS,
    FaultProxy,
    Harness,
    Mode,
    Rule,
    Scenario,
    cbr_error,
    gateway_error,
    leaks,
    signatures_and_tokens,
    static_secrets,
    table_lines,
    throttle_put_events,
)

__all__ = [
    "MODES",
    "SCENARIOS",
    "FaultProxy",
    "Harness",
    "Mode",
    "Rule",
    "Scenario",
    "cbr_error",
    "gateway_error",
    "leaks",
    "signatures_and_tokens",
    "static_secrets",
    "table_lines",
    "throttle_put_events",
]
