"""The operators' command line, driven as a person drives it: `python -m cbr_checkpointer ...`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx2 as httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EVENT_FILES = sorted(path.name for path in EVENTS.glob("*.json"))
# What each invalid sample must name in its errors.
INVALID_FIELDS = {
    "invalid-name-template.json": ["name: has the placeholder '{time.__class__}'"],
    "invalid-unknown-field.json": ["incremntal: is not a known field (did you mean 'incremental'?)"],
    "invalid-surrogate.json": ["schedule_arn: must be text: it holds a lone surrogate"],
    "invalid-sqs-batch.json": [
        "Records[0] (messageId 7b3e2f10-1c4d-4e5f-8a9b-0c1d2e3f4a5b)",
        "body: is not valid JSON",
        "Records[1] (messageId 8c4f3a21-2d5e-4f60-9bac-1d2e3f4a5b6c)",
        "vault_id: must be a UUID",
    ],
}
CONFIGURATION_PREFIXES = ("AWS_", "HUAWEICLOUD_", "CBR_", "EVENT_", "IDEMPOTENCY_", "POWERTOOLS_")
CONFIGURATION_NAMES = {"DRY_RUN", "DEFAULT_VAULT_ID", "WATCH_QUEUE_URL", "MAX_CONCURRENCY"}
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
REQUEST = (
    '{"vault_id": "3b5816b5-f29c-4172-9d9a-76c719a659ce", "name": "manual-{time:%Y%m%d-%H%M}",\n'
    ' "idempotency_key": "cli-send-1", "dry_run": true}\n'
)


def cli(
    *arguments: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run the command line from the repository root, with none of the caller's configuration."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CONFIGURATION_PREFIXES) and name not in CONFIGURATION_NAMES
    }
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    environment |= env or {}
    return subprocess.run(
        [sys.executable, "-m", "cbr_checkpointer", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- validate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EVENT_FILES)
def test_validate_accepts_every_valid_sample_and_names_the_fields_of_every_invalid_one(name: str) -> None:
    # When a sample trigger is validated without any configuration
    completed = cli("validate", f"events/{name}")

    # Then valid samples pass and invalid ones fail, naming the fields at fault
    if name.startswith("invalid-"):
        assert completed.returncode == 1, completed.stderr
        assert f"events/{name}: INVALID" in completed.stdout
        for expected in INVALID_FIELDS[name]:
            assert expected in completed.stdout
    else:
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert f"events/{name}: valid" in completed.stdout
        assert "rejected" not in completed.stdout


def test_validate_of_several_files_fails_when_one_is_invalid_and_reports_each() -> None:
    completed = cli(
        "validate", "events/schedule.json", "events/fanout.json", "events/invalid-unknown-field.json"
    )

    assert completed.returncode == 1
    assert "events/schedule.json: valid (Scheduler input, 1 request)" in completed.stdout
    assert "events/fanout.json: valid (Scheduler input, 2 requests)" in completed.stdout
    assert "events/invalid-unknown-field.json: INVALID" in completed.stdout


def test_validate_requires_a_project_id_only_when_one_is_configured_nowhere(tmp_path: Path) -> None:
    # Given a request without project_id
    request = tmp_path / "request.json"
    request.write_text('{"vault_id": "3b5816b5-f29c-4172-9d9a-76c719a659ce"}', encoding="utf-8")

    # Then without configuration it is left to the function's own HUAWEICLOUD_SDK_PROJECT_ID
    unconfigured = cli("validate", str(request))
    assert unconfigured.returncode == 0
    assert "project=$HUAWEICLOUD_SDK_PROJECT_ID" in unconfigured.stdout
    assert "HUAWEICLOUD_SDK_PROJECT_ID" in unconfigured.stderr

    # And a project id from the option or the environment is the one shown
    given = cli("validate", str(request), "--project-id", "0123abcd")
    assert given.returncode == 0
    assert "project=0123abcd" in given.stdout
    from_env = cli("validate", str(request), env={"HUAWEICLOUD_SDK_PROJECT_ID": "fromenv42"})
    assert "project=fromenv42" in from_env.stdout

    # And a malformed --project-id is a usage error
    assert cli("validate", str(request), "--project-id", "not a project").returncode == 2


def test_validate_exits_2_on_a_file_that_is_not_json_or_cannot_be_read(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("vault_id=3b5816b5-f29c-4172-9d9a-76c719a659ce\n", encoding="utf-8")

    completed = cli("validate", str(broken), str(tmp_path / "missing.json"), "events/schedule.json")

    assert completed.returncode == 2
    assert f"{broken}: not JSON: Expecting value at line 1 column 1" in completed.stderr
    assert "missing.json: cannot read" in completed.stderr
    assert "events/schedule.json: valid" in completed.stdout


# -- invoke -----------------------------------------------------------------------------------------


def test_invoke_runs_the_handler_against_the_sandbox_and_prints_the_published_event() -> None:
    # When the sample schedule is invoked locally, as `make run` does
    completed = cli("invoke", "events/schedule.json")

    # Then it succeeded: stdout is exactly the published events, the whole life of the checkpoint,
    # and stderr tells a person what happened
    assert completed.returncode == 0, completed.stderr
    events = json.loads(completed.stdout)
    assert [event["detail-type"] for event in events] == [
        "CBR Checkpoint Created",
        "CBR Checkpoint Completed",
    ]
    checkpoint_id = events[0]["detail"]["checkpoint"]["id"]
    assert events[1]["detail"]["checkpoint"]["id"] == checkpoint_id
    assert f"checkpoint={checkpoint_id} (protecting)" in completed.stderr
    assert re.search(r"created    key=d:[0-9a-f]{64}", completed.stderr)
    assert "and created 1 checkpoint(s)" in completed.stderr
    # And the function's own JSON logs went to stderr too
    assert '"message":"request finished"' in completed.stderr


def test_invoke_json_is_one_document_with_each_request_and_the_events() -> None:
    completed = cli("invoke", "events/schedule.json", "--json")

    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["ok"] is True
    assert document["mode"] == "sandbox"
    [request] = document["requests"]
    assert request["outcome"] == "created"
    assert request["vault_id"] == "3b5816b5-f29c-4172-9d9a-76c719a659ce"
    assert request["published"] is True
    created, completed_event = document["events"]
    assert created["detail-type"] == "CBR Checkpoint Created"
    assert completed_event["detail-type"] == "CBR Checkpoint Completed"
    assert created["detail"]["checkpoint"]["id"] == request["checkpoint_id"]
    assert completed_event["detail"]["checkpoint"]["id"] == request["checkpoint_id"]
    assert document["emulator"]["checkpoints_created"] == 1


def test_invoke_dry_run_publishes_the_exact_body_and_calls_nothing() -> None:
    completed = cli("invoke", "events/schedule.json", "--dry-run", "--json")

    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["dry_run"] is True
    assert document["emulator"]["requests"] == 0
    assert document["emulator"]["checkpoints_created"] == 0
    assert [request["outcome"] for request in document["requests"]] == ["validated"]
    [event] = document["events"]
    assert event["detail-type"] == "CBR Backup Request Validated"
    assert "checkpoint" not in event["detail"]
    assert event["detail"]["request"]["checkpoint"]["parameters"]["name"] == "nightly-20240501-0200"


def test_invoke_shows_progress_on_a_fan_out_and_none_with_json() -> None:
    person = cli("invoke", "events/fanout.json")
    machine = cli("invoke", "events/fanout.json", "--json")

    assert person.returncode == 0, person.stderr
    assert "[1/2] created" in person.stderr
    assert "[2/2] created" in person.stderr
    assert machine.returncode == 0, machine.stderr
    assert "[1/2]" not in machine.stderr
    types = sorted(event["detail-type"] for event in json.loads(machine.stdout)["events"])
    assert types == ["CBR Checkpoint Completed"] * 2 + ["CBR Checkpoint Created"] * 2


def test_invoke_of_an_invalid_sqs_batch_exits_1_and_shows_each_rejection() -> None:
    completed = cli("invoke", "events/invalid-sqs-batch.json")

    assert completed.returncode == 1
    events = json.loads(completed.stdout)
    assert [event["detail-type"] for event in events] == ["CBR Backup Request Rejected"] * 2
    rejection = r"rejected   key=d:[0-9a-f]{64}  InvalidRequest: body: is not valid JSON"
    assert re.search(rejection, completed.stderr)
    assert "the emulator received 0 request(s)" in completed.stderr


def test_invoke_real_without_configuration_exits_2_naming_what_is_missing() -> None:
    completed = cli("invoke", "events/schedule.json", "--real")

    assert completed.returncode == 2
    assert "CBR_REGION (or CBR_ENDPOINT)" in completed.stderr
    assert completed.stdout == ""


def test_invoke_outside_a_checkout_says_the_sandbox_is_missing_and_exits_2(tmp_path: Path) -> None:
    # Given the function's package alone, as installed from a wheel (no devtools/ beside it)
    shutil.copytree(ROOT / "src" / "cbr_checkpointer", tmp_path / "site" / "cbr_checkpointer")

    completed = subprocess.run(
        [sys.executable, "-m", "cbr_checkpointer", "invoke", str(EVENTS / "schedule.json")],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2
    assert "only exists in a checkout of the repository" in completed.stderr
    assert "--real" in completed.stderr


# -- send -------------------------------------------------------------------------------------------


@pytest.fixture
def queue(moto_server: str) -> Iterator[tuple[Any, str]]:
    """An empty SQS queue in moto, and a boto3 client to read it (the oracle)."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    url = sqs.create_queue(QueueName="cbr-checkpointer-requests")["QueueUrl"]
    try:
        yield sqs, url
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_send_validates_then_puts_the_file_on_the_queue_unchanged(
    tmp_path: Path, moto_server: str, queue: tuple[Any, str]
) -> None:
    sqs, url = queue
    request = tmp_path / "request.json"
    request.write_text(REQUEST, encoding="utf-8")

    completed = cli("send", str(request), "--queue-url", url, env=AWS_ENV | {"AWS_ENDPOINT_URL": moto_server})

    assert completed.returncode == 0, completed.stderr
    message_id = completed.stdout.strip()
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    assert message["MessageId"] == message_id
    assert message["Body"] == REQUEST
    assert "key=u:cli-send-1" in completed.stderr


def test_send_of_an_invalid_request_names_the_field_and_sends_nothing(
    moto_server: str, queue: tuple[Any, str]
) -> None:
    sqs, url = queue

    completed = cli(
        "send",
        "events/invalid-unknown-field.json",
        "--queue-url",
        url,
        env=AWS_ENV | {"AWS_ENDPOINT_URL": moto_server},
    )

    assert completed.returncode == 1
    assert "INVALID, nothing sent" in completed.stderr
    assert "incremntal: is not a known field" in completed.stderr
    assert completed.stdout == ""
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


def test_send_refuses_an_sqs_batch_and_missing_credentials(queue: tuple[Any, str]) -> None:
    sqs, url = queue

    batch = cli("send", "events/sqs-batch.json", "--queue-url", url, env=AWS_ENV)
    no_credentials = cli("send", "events/schedule.json", "--queue-url", url)

    assert batch.returncode == 1
    assert "is an SQS batch" in batch.stderr
    assert no_credentials.returncode == 2
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in no_credentials.stderr
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


# -- emulator ---------------------------------------------------------------------------------------


def test_emulator_serves_on_a_free_port_and_accepts_what_it_prints() -> None:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    process = subprocess.Popen(
        [sys.executable, "-m", "cbr_checkpointer", "emulator", "--port", "0", "--project-id", "p0123"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The base URL is the first line on stdout; read it in a thread so that the wait is bounded.
        stdout = process.stdout
        assert stdout is not None
        first_line: list[str] = []
        reader = threading.Thread(target=lambda: first_line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=30)
        assert first_line, "the emulator printed no URL within 30 s"
        base_url = first_line[0].strip()
        assert base_url.startswith("http://127.0.0.1:")

        token = httpx.post(
            f"{base_url}/v3/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {"user": {"name": "ops", "password": "pw", "domain": {"name": "acme"}}},
                    },
                    "scope": {"project": {"id": "p0123"}},
                }
            },
            timeout=10,
        )
        assert token.status_code == 201
        assert token.headers["X-Subject-Token"]
    finally:
        process.terminate()
        try:
            _, banner = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, banner = process.communicate(timeout=10)
    assert "project id:  p0123" in banner
    assert "IAM user:    ops / pw in domain acme" in banner
    assert "AK/SK:       AKEXAMPLE / SKEXAMPLE" in banner
