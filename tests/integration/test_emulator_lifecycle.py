"""The emulator's backup lifecycle over HTTP: protecting -> available/error, backups, operation logs (tasks).

The official Huawei SDK reads the operation logs, so their shape is the SDK's, not only ours.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from huaweicloudsdkcbr.v1 import CbrClient, ListOpLogsRequest
from huaweicloudsdkcore.auth.credentials import BasicCredentials

from cbr_emulator import Emulator

pytestmark = pytest.mark.integration

PROJECT_ID = "0b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
AK, SK = "AKEXAMPLE", "SKEXAMPLE"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SERVER_ID = "94eba8b2-acc9-4d82-badc-127144cc5526"
VOLUME_ID = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
CHECKPOINTS = f"/v3/{PROJECT_ID}/checkpoints"
BACKUPS = f"/v3/{PROJECT_ID}/backups"
OPERATION_LOGS = f"/v3/{PROJECT_ID}/operation-logs"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(project_id=PROJECT_ID, ak=AK, sk=SK) as emulator:
        emulator.add_vault(
            VAULT_ID,
            [
                {"id": SERVER_ID, "type": "OS::Nova::Server", "name": "ecs-1"},
                {"id": VOLUME_ID, "type": "OS::Cinder::Volume", "name": "evs-1"},
            ],
            name="vault-main",
        )
        yield emulator


def token_client(emulator: Emulator) -> httpx.Client:
    """A client with an IAM token (the emulator's default user ops/pw in domain acme)."""
    identity = {
        "methods": ["password"],
        "password": {"user": {"name": "ops", "password": "pw", "domain": {"name": "acme"}}},
    }
    body = {"auth": {"identity": identity, "scope": {"project": {"id": PROJECT_ID}}}}
    token = httpx.post(f"{emulator.base_url}/v3/auth/tokens", json=body, timeout=5).headers["X-Subject-Token"]
    return httpx.Client(base_url=emulator.base_url, headers={"X-Auth-Token": token}, timeout=5)


@pytest.fixture
def cbr(emulator: Emulator) -> Iterator[httpx.Client]:
    with token_client(emulator) as client:
        yield client


def create_body(**parameters: Any) -> dict[str, Any]:
    return {"checkpoint": {"vault_id": VAULT_ID, "parameters": parameters}}


def create(cbr: httpx.Client, **parameters: Any) -> dict[str, Any]:
    answer = cbr.post(CHECKPOINTS, json=create_body(**parameters))
    assert answer.status_code == 200, answer.text
    checkpoint: dict[str, Any] = answer.json()["checkpoint"]
    return checkpoint


def status_of(cbr: httpx.Client, checkpoint_id: str) -> str:
    status: str = cbr.get(f"{CHECKPOINTS}/{checkpoint_id}").json()["checkpoint"]["status"]
    return status


def backups_of(cbr: httpx.Client, checkpoint_id: str) -> dict[str, str]:
    backups = cbr.get(BACKUPS, params={"checkpoint_id": checkpoint_id}).json()["backups"]
    return {backup["resource_id"]: backup["status"] for backup in backups}


def logs(cbr: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = cbr.get(OPERATION_LOGS, params=params)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def test_without_a_backup_duration_a_checkpoint_stays_protecting(
    emulator: Emulator, cbr: httpx.Client
) -> None:
    checkpoint = create(cbr)

    assert status_of(cbr, checkpoint["id"]) == "protecting"
    assert set(backups_of(cbr, checkpoint["id"]).values()) == {"protecting"}
    assert {log["status"] for log in logs(cbr)["operation_logs"]} == {"running"}


def test_after_the_backup_duration_the_checkpoint_and_its_backups_are_available(
    emulator: Emulator, cbr: httpx.Client
) -> None:
    # Given a checkpoint whose backup takes a minute: it is protecting
    emulator.backup_duration = 60
    checkpoint = create(cbr)
    assert status_of(cbr, checkpoint["id"]) == "protecting"

    # When the duration is shortened to 0.2 s and more than that has passed since the create (the
    # duration is read when the checkpoint is looked at; a sleep lasts at least its time)
    emulator.backup_duration = 0.2
    time.sleep(0.25)
    shown = cbr.get(f"{CHECKPOINTS}/{checkpoint['id']}").json()["checkpoint"]

    assert shown["status"] == "available"
    assert {r["protect_status"] for r in shown["vault"]["resources"]} == {"available"}
    assert backups_of(cbr, checkpoint["id"]) == {SERVER_ID: "available", VOLUME_ID: "available"}
    tasks = logs(cbr, vault_id=VAULT_ID, operation_type="backup")["operation_logs"]
    assert {(t["extra_info"]["resource"]["id"], t["status"]) for t in tasks} == {
        (SERVER_ID, "success"),
        (VOLUME_ID, "success"),
    }
    assert all(t["ended_at"].endswith("Z") for t in tasks)


def test_a_failing_resource_ends_in_error_with_its_reason_in_the_operation_logs(
    emulator: Emulator, cbr: httpx.Client
) -> None:
    emulator.fail_resources(VOLUME_ID, "BackupService.7003", "The disk status does not allow backup.")
    emulator.backup_duration = 0.0
    checkpoint = create(cbr)

    assert status_of(cbr, checkpoint["id"]) == "error"
    assert backups_of(cbr, checkpoint["id"]) == {SERVER_ID: "available", VOLUME_ID: "error"}
    failed = logs(cbr, status="failed")["operation_logs"]
    assert len(failed) == 1
    assert failed[0]["checkpoint_id"] == checkpoint["id"]
    assert failed[0]["error_info"] == {
        "code": "BackupService.7003",
        "message": "The disk status does not allow backup.",
    }
    assert failed[0]["extra_info"]["resource"] == {
        "id": VOLUME_ID,
        "type": "OS::Cinder::Volume",
        "name": "evs-1",
        "extra_info": None,
    }
    backup_ids = {b["resource_id"]: b["id"] for b in cbr.get(BACKUPS).json()["backups"]}
    assert failed[0]["extra_info"]["backup"]["backup_id"] == backup_ids[VOLUME_ID]


def test_complete_checkpoint_uses_the_registered_reason(emulator: Emulator, cbr: httpx.Client) -> None:
    emulator.fail_resources([SERVER_ID], code="BackupService.7101", message="The server is stopped.")
    checkpoint = create(cbr, resources=[SERVER_ID])

    emulator.complete_checkpoint(checkpoint["id"])

    (task,) = logs(cbr)["operation_logs"]
    assert (task["status"], task["error_info"]["code"]) == ("failed", "BackupService.7101")


def test_operation_logs_filter_page_and_show(emulator: Emulator, cbr: httpx.Client) -> None:
    first = create(cbr, resources=[SERVER_ID], name="first")
    second = create(cbr, name="second")

    everything = logs(cbr)
    page = logs(cbr, limit=2, offset=1)
    by_resource = logs(cbr, resource_id=VOLUME_ID)
    other_vault = logs(cbr, vault_id="7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12")
    one = everything["operation_logs"][0]
    shown = cbr.get(f"{OPERATION_LOGS}/{one['id']}")

    assert everything["count"] == 3
    # newest first, and no checkpoint_id filter exists: a client matches it itself
    assert [log["checkpoint_id"] for log in everything["operation_logs"]] == [second["id"]] * 2 + [
        first["id"]
    ]
    assert logs(cbr, checkpoint_id=first["id"])["count"] == 3
    assert [log["id"] for log in page["operation_logs"]] == [
        log["id"] for log in everything["operation_logs"][1:3]
    ]
    assert (page["offset"], page["limit"]) == (1, 2)
    assert by_resource["count"] == 1
    assert other_vault["count"] == 0
    assert shown.status_code == 200
    assert shown.json()["operation_log"] == one


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"operation_type": "snapshot"}, "operation_type"),
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_operation_log_filters_are_refused(cbr: httpx.Client, params: dict[str, str], field: str) -> None:
    answer = cbr.get(OPERATION_LOGS, params=params)

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "BackupService.9900"
    assert field in answer.json()["error_msg"]


def test_an_unknown_operation_log_is_a_6500(cbr: httpx.Client) -> None:
    answer = cbr.get(f"{OPERATION_LOGS}/8b0851a8-adf3-4f4c-a914-dead08bf9664")

    assert answer.status_code == 404
    assert answer.json()["error_code"] == "BackupService.6500"


def test_the_official_sdk_reads_the_operation_logs(emulator: Emulator, cbr: httpx.Client) -> None:
    emulator.fail_resources(VOLUME_ID, "BackupService.7003", "The disk status does not allow backup.")
    checkpoint = create(cbr)
    emulator.complete_checkpoint(checkpoint["id"])
    client = (
        CbrClient.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT_ID))
        .with_endpoints([emulator.base_url])
        .build()
    )

    answer = client.list_op_logs(
        ListOpLogsRequest(vault_id=VAULT_ID, operation_type="backup", status="failed")
    )

    assert answer.count == 1
    (task,) = answer.operation_logs
    assert task.checkpoint_id == checkpoint["id"]
    assert task.error_info.code == "BackupService.7003"
    assert task.extra_info.resource.id == VOLUME_ID
    assert task.extra_info.backup.incremental == "true"


def test_reset_forgets_failures_and_restores_the_backup_duration(emulator: Emulator) -> None:
    emulator.fail_resources(VOLUME_ID)
    emulator.backup_duration = 0.0

    emulator.reset()
    with token_client(emulator) as cbr:  # reset forgets the tokens too
        checkpoint = create(cbr)

        assert emulator.backup_duration is None
        assert status_of(cbr, checkpoint["id"]) == "protecting"
        emulator.complete_checkpoint(checkpoint["id"])
        assert set(backups_of(cbr, checkpoint["id"]).values()) == {"available"}
    assert emulator.operation_logs[0]["status"] == "success"
