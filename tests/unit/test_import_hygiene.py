"""Importing the handler is cheap and boto3-free: no boto3, no botocore.session, no environment needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PROBE = """
import json, sys
import cbr_checkpointer.handler
print(json.dumps({
    "boto3": "boto3" in sys.modules,
    "botocore_session": "botocore.session" in sys.modules,
    "httpx_client_built": any(name == "cbr_checkpointer.runtime" and sys.modules[name]._runtime is not None
                              for name in sys.modules),
}))
"""


def test_importing_the_handler_needs_no_environment_and_never_imports_boto3() -> None:
    # Given an interpreter with no configuration at all
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )

    # Then the import succeeds, builds no clients and pulls in no AWS SDK
    assert completed.returncode == 0, completed.stderr
    facts = json.loads(completed.stdout.strip().splitlines()[-1])
    assert facts == {"boto3": False, "botocore_session": False, "httpx_client_built": False}
