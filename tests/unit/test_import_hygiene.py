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


INIT_PROBE = """
import json, sys
import cbr_checkpointer.handler
from cbr_checkpointer import runtime, tls
from cbr_checkpointer.models import CheckpointCreate, CreateCheckpointResponse, VaultBackupReq
built = runtime._runtime
print(json.dumps({
    "runtime_built": built is not None,
    "clients": sorted(getattr(c, "service", "cbr") for c in built.clients) if built else None,
    "tls_context_loaded": tls.verified_tls_context.cache_info().currsize,
    "http_stack_imported": "httpcore2" in sys.modules,
    "validators_built": [
        model.__pydantic_complete__ for model in (VaultBackupReq, CheckpointCreate, CreateCheckpointResponse)
    ],
    "boto3": "boto3" in sys.modules,
}))
"""

# What Lambda sets, plus the function's own variables; the endpoints are never contacted.
LAMBDA_ENVIRONMENT = {
    "AWS_LAMBDA_FUNCTION_NAME": "cbr-checkpointer",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "never-used",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "CBR_ENDPOINT": "http://127.0.0.1:9",
    "HUAWEICLOUD_SDK_PROJECT_ID": "4229d7a4e1b64c4f9e7a2b1c3d5e6f70",
    "HUAWEICLOUD_SDK_AK": "AKEXAMPLE",
    "HUAWEICLOUD_SDK_SK": "never-used",
    "IDEMPOTENCY_TABLE": "ledger",
    "EVENT_BUS_NAME": "bus",
}


def test_in_a_complete_environment_the_import_builds_the_runtime_for_init() -> None:
    # Given the environment Lambda gives the function
    completed = subprocess.run(
        [sys.executable, "-c", INIT_PROBE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"} | LAMBDA_ENVIRONMENT,
        timeout=60,
        check=False,
    )

    # Then importing the handler (Lambda's init) built the runtime, its HTTP stack and TLS context and
    # the body validators, so the first invocation does not; still without boto3
    assert completed.returncode == 0, completed.stderr
    facts = json.loads(completed.stdout.strip().splitlines()[-1])
    assert facts == {
        "runtime_built": True,
        "clients": ["cbr", "dynamodb", "events"],
        "tls_context_loaded": 1,
        "http_stack_imported": True,
        "validators_built": [True, True, True],
        "boto3": False,
    }
