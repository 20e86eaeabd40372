"""The libraries alone: what `cbr_checkpointer` does with its libraries at init, and none of its own code.

It imports pydantic and builds one model (as the first of ours does: the schema machinery and
pydantic's plugin scan), imports h11 with the socket modules and makes a TLS context without
authorities (as ours does for a plain-http endpoint), and wraps its handler in Powertools' Logger and
Metrics (as ours does), with the garbage collector paused meanwhile (as ours pauses it). The
bench starts it from the libraries of ours' task directory, so its init is the floor of ours: what no
change to our own code can take away.
"""

from __future__ import annotations

import gc

gc.disable()

import select  # noqa: E402, F401
import socket  # noqa: E402, F401
import ssl  # noqa: E402
from typing import Any  # noqa: E402

import h11  # noqa: E402
from aws_lambda_powertools import Logger, Metrics  # noqa: E402
from aws_lambda_powertools.logging import correlation_paths  # noqa: E402
from pydantic import BaseModel  # noqa: E402

logger = Logger(service="libraries-only")
metrics = Metrics(namespace="libraries-only", service="libraries-only")


class Request(BaseModel):
    vault_id: str
    retention_days: int | None = None


Request.model_validate({"vault_id": "v"})
tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
connection = h11.Connection(our_role=h11.CLIENT)
gc.freeze()
gc.enable()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"outcomes": []}
