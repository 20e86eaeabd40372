"""A stand-in for the Lambda context object, for running the handler outside Lambda.

The command line, the local sandbox, the tests and the benchmarks all invoke the real handler with it.
"""

from __future__ import annotations

import time
import uuid

from cbr_checkpointer.values import field, value

FUNCTION_NAME = "cbr-checkpointer"


@value(frozen=False)
class LocalContext:
    """The parts of the Lambda context object that the function and Powertools read."""

    timeout_seconds: float = 120.0  # the template's function timeout
    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))
