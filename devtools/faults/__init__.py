"""The exactly-once fault matrix: every scripted fault, in both trigger modes, delivered as the platform does.

A scenario scripts the CBR emulator (`Emulator.faults`, `mark_busy`, `expire_tokens`), a faulting proxy in
front of the CBR API and one in front of moto (EventBridge and the DynamoDB ledger), then hands one trigger
to the real handler and keeps handing it over the way Lambda does:

- timer: the Scheduler input invoked like an async invoke; a raise (or a timeout) means Lambda invokes it
  again with the same input and the same request id;
- sqs: a batch; `batchItemFailures` records come back with the same messageId and body.

Up to MAX_REDELIVERIES redeliveries, each in a new execution environment (a fresh runtime) that shares only
the DynamoDB ledger. A delivery that must outlive its deadline runs in a child process that is killed at
the deadline, as Lambda kills a timed-out invocation. A redelivery never comes while a lease taken by an
earlier delivery is still live (SQS' visibility timeout and Lambda's retry delay both outlast the
function's timeout); the driver waits for such a lease instead of the whole platform delay.

Every row is checked against the invariants (at most one checkpoint per idempotency key, every created
checkpoint reported, nothing lost, no Failed for a transient fault, consistent events) and the scenario's
expected verdict.

    python -m devtools.faults        # prints the table; exit status 1 when any row fails

The parts: `proxy` (the faulting proxy), `model` (scenario, world, row), `scenarios` (the matrix),
`verdicts` (invariants and expectations), `harness` (delivering as the platform does), `leaks` (the
secret search), `report` (the table) and `__main__` (the command).
"""

from devtools.faults.harness import Harness
from devtools.faults.leaks import leaks, signatures_and_tokens, static_secrets
from devtools.faults.model import MODES, Mode, Scenario
from devtools.faults.proxy import FaultProxy, Rule
from devtools.faults.report import table_lines
from devtools.faults.scenarios import SCENARIOS, cbr_error, gateway_error, throttle_put_events

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
