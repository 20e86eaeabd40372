"""The command lines, driven as a person drives them: the operators' `python -m cbr_checkpointer ...`
(also the `cbr-checkpointer` console script) and the checkout's `python -m devtools.cli ...`."""

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


def run(
    command: list[str], *arguments: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run a command line from the repository root, with none of the caller's configuration."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CONFIGURATION_PREFIXES) and name not in CONFIGURATION_NAMES
    }
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    environment |= env or {}
    return subprocess.run(
        [*command, *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The operators' command line, as `python -m cbr_checkpointer`."""
    return run([sys.executable, "-m", "cbr_checkpointer"], *arguments, env=env)


def dev(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The checkout's command line, as `make run` starts it."""
    return run([sys.executable, "-m", "devtools.cli"], *arguments, env=env)


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


# -- invoke against the local sandbox (devtools) ------------------------------------------------------


def test_invoke_runs_the_handler_against_the_sandbox_and_prints_the_published_event() -> None:
    # When the sample schedule is invoked locally, as `make run` does
    completed = dev("invoke", "events/schedule.json")

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
    # And, quiet by default, none of the function's own JSON log lines or EMF metrics
    assert not [line for line in completed.stderr.splitlines() if line.startswith("{")]
    assert '"message":' not in completed.stderr
    assert '"_aws":' not in completed.stderr


def test_invoke_verbose_also_shows_the_functions_logs_and_metrics_on_stderr() -> None:
    completed = dev("invoke", "events/schedule.json", "--verbose")

    assert completed.returncode == 0, completed.stderr
    json_lines = [json.loads(line) for line in completed.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("message") == "request finished" for line in json_lines)
    assert any("_aws" in line and "CloudWatchMetrics" in line["_aws"] for line in json_lines)
    # And stdout is still only the events
    assert [event["detail-type"] for event in json.loads(completed.stdout)] == [
        "CBR Checkpoint Created",
        "CBR Checkpoint Completed",
    ]


def test_invoke_json_is_one_document_with_each_request_and_the_events() -> None:
    completed = dev("invoke", "events/schedule.json", "--json")

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
    # What the invocation asked of CBR: one create (the completion checks after it are not counted)
    assert document["emulator"]["requests"] == 1
    assert document["emulator"]["checkpoints_created"] == 1


def test_invoke_dry_run_publishes_the_exact_body_and_calls_nothing() -> None:
    completed = dev("invoke", "events/schedule.json", "--dry-run", "--json")

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
    person = dev("invoke", "events/fanout.json")
    machine = dev("invoke", "events/fanout.json", "--json")

    assert person.returncode == 0, person.stderr
    assert "[1/2] created" in person.stderr
    assert "[2/2] created" in person.stderr
    assert machine.returncode == 0, machine.stderr
    assert "[1/2]" not in machine.stderr
    types = sorted(event["detail-type"] for event in json.loads(machine.stdout)["events"])
    assert types == ["CBR Checkpoint Completed"] * 2 + ["CBR Checkpoint Created"] * 2


def test_invoke_of_an_invalid_sqs_batch_exits_1_and_shows_each_rejection() -> None:
    completed = dev("invoke", "events/invalid-sqs-batch.json")

    assert completed.returncode == 1
    events = json.loads(completed.stdout)
    assert [event["detail-type"] for event in events] == ["CBR Backup Request Rejected"] * 2
    rejection = r"rejected   key=d:[0-9a-f]{64}  InvalidRequest: body: is not valid JSON"
    assert re.search(rejection, completed.stderr)
    assert "the emulator received 0 request(s)" in completed.stderr
    assert "invalid on purpose" not in completed.stderr


def test_an_invalid_sample_is_a_success_only_when_every_request_was_rejected() -> None:
    # `make run EVENT=events/invalid-...` passes --expect-rejected
    rejected = dev("invoke", "events/invalid-unknown-field.json", "--expect-rejected")
    accepted = dev("invoke", "events/schedule.json", "--expect-rejected")

    assert rejected.returncode == 0, rejected.stderr
    assert [event["detail-type"] for event in json.loads(rejected.stdout)] == ["CBR Backup Request Rejected"]
    assert rejected.stderr.rstrip().endswith(
        "events/invalid-unknown-field.json is invalid on purpose: 1 request(s) rejected, each with a "
        "Rejected event naming its fields, as expected"
    )
    assert accepted.returncode == 1
    assert "events/schedule.json should have been rejected, but ended: created" in accepted.stderr


def test_sandbox_runs_a_command_with_the_functions_configuration_and_returns_its_exit_code() -> None:
    probe = (
        "import json, os, sys; "
        "print(json.dumps({name: os.environ.get(name) for name in "
        "('CBR_ENDPOINT', 'AWS_ENDPOINT_URL', 'EVENT_BUS_NAME', 'REQUEST_QUEUE_URL')})); sys.exit(3)"
    )

    completed = dev("sandbox", "--", sys.executable, "-c", probe)
    nothing = dev("sandbox")

    assert completed.returncode == 3, completed.stderr
    seen = json.loads(completed.stdout)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", seen["CBR_ENDPOINT"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", seen["AWS_ENDPOINT_URL"])
    assert seen["EVENT_BUS_NAME"] == "cbr-checkpointer"
    assert seen["REQUEST_QUEUE_URL"].startswith(seen["AWS_ENDPOINT_URL"])
    assert seen["REQUEST_QUEUE_URL"].endswith("/cbr-checkpointer-requests")
    assert nothing.returncode == 2
    assert "sandbox needs a command to run" in nothing.stderr


# -- invoke against the configured endpoints (the package) ------------------------------------------


def test_invoke_without_real_points_at_the_local_command_and_exits_2() -> None:
    completed = cli("invoke", "events/schedule.json")

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "add --real" in completed.stderr
    assert "`python -m devtools.cli invoke events/schedule.json`" in completed.stderr


def test_invoke_real_without_configuration_exits_2_naming_what_is_missing() -> None:
    completed = cli("invoke", "events/schedule.json", "--real")

    assert completed.returncode == 2
    assert "CBR_REGION (or CBR_ENDPOINT)" in completed.stderr
    assert completed.stdout == ""


def test_invoke_real_runs_the_handler_against_the_endpoints_in_the_environment() -> None:
    # Given the emulator and moto as "the real endpoints", configured as the deployed function is
    from devtools.sandbox import Sandbox

    with Sandbox() as sandbox:
        completed = cli("invoke", "--real", "events/fanout.json", env=sandbox.environment)

        # Then both requests were created in the emulator and their events shown as they were sent
        assert completed.returncode == 0, completed.stderr
        assert len(sandbox.emulator.created) == 2
        events = json.loads(completed.stdout)
        assert [event["detail-type"] for event in events] == ["CBR Checkpoint Created"] * 2
        assert {event["event-bus-name"] for event in events} == {"cbr-checkpointer"}
        assert f"CBR: {sandbox.emulator.base_url}" in completed.stderr
        assert "events put on bus 'cbr-checkpointer' (as sent): 2" in completed.stderr
        assert '"message":' not in completed.stderr


def test_the_package_alone_validates_and_sends_the_person_to_the_checkout_for_a_local_run(
    tmp_path: Path,
) -> None:
    # Given the function's package alone, as installed from a wheel (no devtools/ or emulator beside it)
    shutil.copytree(ROOT / "src" / "cbr_checkpointer", tmp_path / "site" / "cbr_checkpointer")

    def installed(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cbr_checkpointer", *arguments],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    validated = installed("validate", str(EVENTS / "schedule.json"))
    local = installed("invoke", str(EVENTS / "schedule.json"))
    usage = installed("--help")

    assert validated.returncode == 0, validated.stderr
    assert "valid (Scheduler input, 1 request)" in validated.stdout
    assert local.returncode == 2
    assert "python -m devtools.cli invoke" in local.stderr
    assert "Traceback" not in local.stderr
    commands = [line.split()[0] for line in usage.stdout.splitlines() if re.match(r"    \S", line)]
    assert commands == ["validate", "invoke", "send"]


# -- how each command line names itself ----------------------------------------------------------------


def test_usage_names_the_command_the_person_typed() -> None:
    console_script = Path(sys.executable).with_name("cbr-checkpointer")

    as_module = cli("validate")
    as_script = run([str(console_script)], "validate")
    as_dev = dev("invoke")

    assert as_module.returncode == as_script.returncode == as_dev.returncode == 2
    assert as_module.stderr.startswith("usage: python -m cbr_checkpointer validate ")
    assert as_script.stderr.startswith("usage: cbr-checkpointer validate ")
    assert as_dev.stderr.startswith("usage: python -m devtools.cli invoke ")
    assert run([str(console_script)], "invoke", "x.json").stderr.startswith("cbr-checkpointer: invoke runs")


# -- size limits of the transports -----------------------------------------------------------------------


def padded_request(size: int) -> str:
    """A valid request whose JSON text is exactly `size` bytes (whitespace makes up the rest)."""
    request = '{"vault_id": "3b5816b5-f29c-4172-9d9a-76c719a659ce", "idempotency_key": "big-1"}'
    return request[:-1] + " " * (size - len(request)) + "}"


def test_validate_warns_when_a_file_is_more_than_its_transport_can_carry(tmp_path: Path) -> None:
    fits = tmp_path / "fits.json"
    fits.write_text(padded_request(262_144), encoding="utf-8")
    too_large = tmp_path / "too-large.json"
    too_large.write_text(padded_request(262_145), encoding="utf-8")

    completed = cli("validate", str(fits), str(too_large), "--project-id", "p1")

    assert f"{fits}: valid (direct invoke, 1 request)" in completed.stdout
    warnings = [line for line in completed.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {too_large} is 262,145 bytes, more than an asynchronous Lambda invoke payload or an "
        "SQS message body can carry (262,144 bytes): it would be refused before it reached the function"
    ]


def test_validate_measures_each_body_of_an_sqs_batch(tmp_path: Path) -> None:
    batch = json.loads((EVENTS / "sqs-batch.json").read_text(encoding="utf-8"))
    batch["Records"][1]["body"] = padded_request(300_000)
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch), encoding="utf-8")

    completed = cli("validate", str(path), "--project-id", "p1")

    warnings = [line for line in completed.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: {path}: Records[1] (messageId ")
    assert "body is 300,000 bytes, more than an SQS message body can carry (262,144 bytes)" in warnings[0]


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


def test_send_refuses_a_body_larger_than_an_sqs_message(tmp_path: Path, queue: tuple[Any, str]) -> None:
    sqs, url = queue
    request = tmp_path / "request.json"
    request.write_text(padded_request(262_145), encoding="utf-8")

    completed = cli("send", str(request), "--queue-url", url, env=AWS_ENV)

    assert completed.returncode == 1
    assert "is 262,145 bytes, more than an SQS message body can carry (262,144 bytes)" in completed.stderr
    assert completed.stderr.rstrip().endswith("nothing sent")
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


# -- emulator ---------------------------------------------------------------------------------------


def test_emulator_serves_on_a_free_port_and_accepts_what_it_prints() -> None:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "emulator", "--port", "0", "--project-id", "p0123"],
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
