"""The CBR/IAM emulator over real HTTP on loopback: auth, validation, shapes, scripted faults, bookkeeping."""

from __future__ import annotations

import ast
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from huaweicloudsdkcbr.v1 import (
    CbrClient,
    CheckpointParam,
    CreateCheckpointRequest,
    ListBackupsRequest,
    Resource,
    ShowCheckpointRequest,
    VaultBackup,
    VaultBackupReq,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

import cbr_emulator.__main__ as emulator_cli
from cbr_emulator import Emulator, Fault

PROJECT_ID = "0b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
AK, SK = "AKEXAMPLE", "SKEXAMPLE"
USER, PASSWORD, DOMAIN = "ops", "pw", "acme"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
EMPTY_VAULT_ID = "7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12"
SERVER_ID = "94eba8b2-acc9-4d82-badc-127144cc5526"
VOLUME_ID = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
UNBOUND_ID = "11111111-2222-4333-8444-555555555555"
CHECKPOINTS = f"/v3/{PROJECT_ID}/checkpoints"
BACKUPS = f"/v3/{PROJECT_ID}/backups"
SRC = Path(__file__).resolve().parents[2] / "src"
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(
        project_id=PROJECT_ID, ak=AK, sk=SK, user_name=USER, password=PASSWORD, domain_name=DOMAIN
    ) as emulator:
        emulator.add_vault(
            VAULT_ID,
            [
                {"id": SERVER_ID, "type": "OS::Nova::Server", "name": "ecs-1"},
                {"id": VOLUME_ID, "type": "OS::Cinder::Volume", "name": "evs-1"},
            ],
            name="vault-main",
        )
        emulator.add_vault(EMPTY_VAULT_ID)
        yield emulator


def password_body(user: str = USER, password: str = PASSWORD, domain: str = DOMAIN) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
            },
            "scope": {"project": {"id": PROJECT_ID}},
        }
    }


def issue_token(emulator: Emulator) -> str:
    answer = httpx.post(f"{emulator.base_url}/v3/auth/tokens", json=password_body(), timeout=5)
    assert answer.status_code == 201
    return answer.headers["X-Subject-Token"]


def sdk_sign(request: httpx.Request, *, sk: str = SK, signed_at: datetime | None = None) -> httpx.Request:
    """Sign an httpx request in place with the official SDK signer (AK/SK, SDK-HMAC-SHA256)."""
    header_params = {"X-Project-Id": PROJECT_ID}
    if "content-type" in request.headers:
        header_params["Content-Type"] = request.headers["content-type"]
    if signed_at is not None:
        header_params["X-Sdk-Date"] = signed_at.strftime("%Y%m%dT%H%M%SZ")
    sdk_request = SdkRequest(
        method=request.method,
        schema=request.url.scheme,
        host=request.url.netloc.decode(),
        resource_path=request.url.path,
        query_params=list(request.url.params.multi_items()),
        header_params=header_params,
        body=request.content,
    )
    signed = Signer(BasicCredentials(AK, sk, PROJECT_ID)).sign(sdk_request)
    request.headers.update(signed.header_params)
    return request


class SdkSignature(httpx.Auth):
    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield sdk_sign(request)


@pytest.fixture
def cbr(emulator: Emulator) -> Iterator[httpx.Client]:
    """A keep-alive client whose every request is signed by the official SDK signer."""
    with httpx.Client(base_url=emulator.base_url, auth=SdkSignature(), timeout=5) as client:
        yield client


def create_body(vault_id: str = VAULT_ID, **parameters: Any) -> dict[str, Any]:
    checkpoint: dict[str, Any] = {"vault_id": vault_id}
    if parameters:
        checkpoint["parameters"] = parameters
    return {"checkpoint": checkpoint}


# -- IAM --------------------------------------------------------------------------------------------


def test_iam_issues_a_token_that_cbr_accepts(emulator: Emulator) -> None:
    before = datetime.now(UTC)

    answer = httpx.post(f"{emulator.base_url}/v3/auth/tokens?nocatalog=true", json=password_body(), timeout=5)

    assert answer.status_code == 201
    token = answer.headers["X-Subject-Token"]
    assert len(token) >= 32
    body = answer.json()["token"]
    assert body["methods"] == ["password"]
    assert body["project"] == {"id": PROJECT_ID, "name": "cn-north-4", "domain": {"name": DOMAIN}}
    assert body["expires_at"].endswith("Z")
    assert body["issued_at"].endswith("Z")
    expires_at = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert timedelta(hours=23, minutes=59) < expires_at - before < timedelta(hours=24, minutes=1)

    created = httpx.post(
        emulator.base_url + CHECKPOINTS, json=create_body(), headers={"X-Auth-Token": token}, timeout=5
    )

    assert created.status_code == 200
    assert emulator.token_requests == 1
    assert [(r.path, r.status, r.authenticated) for r in emulator.requests] == [
        ("/v3/auth/tokens", 201, True),
        (CHECKPOINTS, 200, True),
    ]


@pytest.mark.parametrize(
    "credentials",
    [("intruder", PASSWORD, DOMAIN), (USER, "wrong", DOMAIN), (USER, PASSWORD, "other-account")],
    ids=["user", "password", "domain"],
)
def test_iam_refuses_wrong_credentials(emulator: Emulator, credentials: tuple[str, str, str]) -> None:
    answer = httpx.post(f"{emulator.base_url}/v3/auth/tokens", json=password_body(*credentials), timeout=5)

    assert answer.status_code == 401
    assert answer.json() == {
        "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
    }
    assert "X-Subject-Token" not in answer.headers
    assert emulator.token_requests == 1
    assert emulator.requests[0].authenticated is False


def test_iam_refuses_a_body_without_a_project_scope(emulator: Emulator) -> None:
    body = password_body()
    del body["auth"]["scope"]

    answer = httpx.post(f"{emulator.base_url}/v3/auth/tokens", json=body, timeout=5)

    assert answer.status_code == 400
    assert answer.json()["error"]["title"] == "Bad Request"


def test_expired_tokens_are_answered_with_apigw_0307(emulator: Emulator) -> None:
    token = issue_token(emulator)
    emulator.expire_tokens()

    answer = httpx.post(
        emulator.base_url + CHECKPOINTS, json=create_body(), headers={"X-Auth-Token": token}, timeout=5
    )

    assert answer.status_code == 401
    assert answer.json() == {
        "error_code": "APIGW.0307",
        "error_msg": "The token must be updated.",
        "request_id": answer.headers["X-Request-Id"],
    }
    assert emulator.created == []
    assert emulator.requests[-1].authenticated is False


def test_a_token_is_refused_once_its_ttl_has_passed() -> None:
    with Emulator(project_id=PROJECT_ID, token_ttl_seconds=0) as emulator:
        emulator.add_vault(VAULT_ID)
        token = issue_token(emulator)

        answer = httpx.get(f"{emulator.base_url}{BACKUPS}", headers={"X-Auth-Token": token}, timeout=5)

    assert answer.status_code == 401
    assert answer.json()["error_code"] == "APIGW.0307"


@pytest.mark.parametrize(
    "headers", [{}, {"X-Auth-Token": "never-issued"}], ids=["no-credentials", "unknown-token"]
)
def test_requests_without_valid_credentials_get_apigw_0301(
    emulator: Emulator, headers: dict[str, str]
) -> None:
    answer = httpx.post(emulator.base_url + CHECKPOINTS, json=create_body(), headers=headers, timeout=5)

    assert answer.status_code == 401
    body = answer.json()
    assert body["error_code"] == "APIGW.0301"
    assert body["error_msg"].startswith("Incorrect IAM authentication information")
    assert body["request_id"] == answer.headers["X-Request-Id"]
    assert emulator.created == []


# -- AK/SK with the official SDK signer -------------------------------------------------------------


def test_sdk_signed_requests_are_accepted(emulator: Emulator, cbr: httpx.Client) -> None:
    created = cbr.post(CHECKPOINTS, json=create_body(name="signed"))
    listed = cbr.get(BACKUPS, params={"vault_id": VAULT_ID, "name": "signed"})

    assert created.status_code == 200
    assert listed.status_code == 200
    assert listed.json()["count"] == 2
    assert all(r.authenticated for r in emulator.requests)
    assert emulator.requests[0].headers["authorization"].startswith("SDK-HMAC-SHA256 Access=AKEXAMPLE")


def test_a_tampered_body_is_refused(emulator: Emulator) -> None:
    url = emulator.base_url + CHECKPOINTS
    signed = sdk_sign(httpx.Request("POST", url, json=create_body()))
    headers = {name: value for name, value in signed.headers.items() if name != "content-length"}
    tampered = httpx.Request("POST", url, headers=headers, content=json.dumps(create_body(EMPTY_VAULT_ID)))

    with httpx.Client(timeout=5) as client:
        answer = client.send(tampered)

    assert answer.status_code == 401
    assert answer.json()["error_code"] == "APIGW.0301"
    assert "verify aksk signature fail" in answer.json()["error_msg"]
    assert emulator.created == []


@pytest.mark.parametrize(
    ("signed_at", "sk"),
    [(datetime.now(UTC) - timedelta(minutes=20), SK), (None, "not-the-secret")],
    ids=["stale-date", "wrong-sk"],
)
def test_stale_or_wrongly_keyed_signatures_are_refused(
    emulator: Emulator, signed_at: datetime | None, sk: str
) -> None:
    request = sdk_sign(httpx.Request("GET", emulator.base_url + BACKUPS), sk=sk, signed_at=signed_at)

    with httpx.Client(timeout=5) as client:
        answer = client.send(request)

    assert answer.status_code == 401
    assert answer.json()["error_code"] == "APIGW.0301"
    assert SK not in answer.text
    assert emulator.requests[0].authenticated is False


def test_the_official_cbr_sdk_client_round_trips(emulator: Emulator) -> None:
    client = (
        CbrClient.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT_ID))
        .with_endpoints([emulator.base_url])
        .build()
    )
    parameters = CheckpointParam(
        name="sdk-made", incremental=True, resource_details=[Resource(id=SERVER_ID, type="OS::Nova::Server")]
    )

    created = client.create_checkpoint(
        CreateCheckpointRequest(
            body=VaultBackupReq(checkpoint=VaultBackup(vault_id=VAULT_ID, parameters=parameters))
        )
    ).checkpoint
    shown = client.show_checkpoint(ShowCheckpointRequest(checkpoint_id=created.id)).checkpoint
    listed = client.list_backups(
        ListBackupsRequest(checkpoint_id=created.id, start_time="2020-01-01T00:00:00Z")
    )

    assert created.status == "protecting"
    assert [r.id for r in created.vault.resources] == [SERVER_ID]
    assert created.extra_info.name == "sdk-made"
    assert shown.id == created.id
    assert [(b.resource_id, b.name) for b in listed.backups] == [(SERVER_ID, "sdk-made")]


# -- create: shapes and validation ------------------------------------------------------------------


def test_create_answers_the_documented_shape(emulator: Emulator, cbr: httpx.Client) -> None:
    answer = cbr.post(
        CHECKPOINTS, json=create_body(name="nightly", description="manual", resources=[SERVER_ID])
    )

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])
    checkpoint = answer.json()["checkpoint"]
    assert set(checkpoint) == {"id", "project_id", "status", "created_at", "vault", "extra_info"}
    assert checkpoint["project_id"] == PROJECT_ID
    assert checkpoint["status"] == "protecting"
    assert CREATED_AT.fullmatch(checkpoint["created_at"])
    assert checkpoint["vault"] == {
        "id": VAULT_ID,
        "name": "vault-main",
        "resources": [
            {
                "id": SERVER_ID,
                "name": "ecs-1",
                "type": "OS::Nova::Server",
                "protect_status": "available",
                "resource_size": "40",
                "backup_size": "0",
                "backup_count": "0",
                "extra_info": "{}",
            }
        ],
        "skipped_resources": [],
    }
    assert checkpoint["extra_info"] == {"name": "nightly", "description": "manual", "retention_duration": -1}
    assert emulator.created == [checkpoint]


def test_create_without_resources_backs_up_the_whole_vault(emulator: Emulator, cbr: httpx.Client) -> None:
    checkpoint = cbr.post(CHECKPOINTS, json=create_body(retention_duration_days=7)).json()["checkpoint"]

    assert [r["id"] for r in checkpoint["vault"]["resources"]] == [SERVER_ID, VOLUME_ID]
    assert checkpoint["extra_info"]["retention_duration"] == 7
    assert checkpoint["extra_info"]["name"].startswith("manualbk_")


def test_resources_and_resource_details_are_merged_once_each(cbr: httpx.Client) -> None:
    body = create_body(
        resources=[VOLUME_ID],
        resource_details=[
            {"id": SERVER_ID, "type": "OS::Nova::Server"},
            {"id": VOLUME_ID, "type": "OS::Cinder::Volume"},
        ],
    )

    checkpoint = cbr.post(CHECKPOINTS, json=body).json()["checkpoint"]

    assert [r["id"] for r in checkpoint["vault"]["resources"]] == [VOLUME_ID, SERVER_ID]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"checkpoint": {"vault_id": "not-a-uuid"}}, "checkpoint.vault_id"),
        ({"checkpoint": {}}, "checkpoint.vault_id"),
        ({}, "checkpoint"),
        ({"vault_id": VAULT_ID}, "vault_id"),
        (create_body(name=""), "checkpoint.parameters.name"),
        (create_body(name="x" * 65), "checkpoint.parameters.name"),
        (create_body(name="bad name!"), "checkpoint.parameters.name"),
        (create_body(description="<script>"), "checkpoint.parameters.description"),
        (create_body(description="d" * 256), "checkpoint.parameters.description"),
        (create_body(resources=[SERVER_ID, "nope"]), "checkpoint.parameters.resources[1]"),
        (create_body(resources=SERVER_ID), "checkpoint.parameters.resources"),
        (
            create_body(resource_details=[{"type": "OS::Nova::Server"}]),
            "checkpoint.parameters.resource_details[0].id",
        ),
        (create_body(resource_details=[{"id": SERVER_ID}]), "checkpoint.parameters.resource_details[0].type"),
        (
            create_body(resource_details=[{"id": SERVER_ID, "type": "OS::Nova::Nope"}]),
            "checkpoint.parameters.resource_details[0].type",
        ),
        (
            create_body(resource_details=[{"id": SERVER_ID, "type": "OS::Nova::Server"}] * 257),
            "checkpoint.parameters.resource_details",
        ),
        (create_body(retention_duration_days=0), "checkpoint.parameters.retention_duration_days"),
        (create_body(retention_duration_days=36501), "checkpoint.parameters.retention_duration_days"),
        (create_body(retention_duration_days="7"), "checkpoint.parameters.retention_duration_days"),
        (
            create_body(retention_duration_days=7, auto_trigger=True),
            "checkpoint.parameters.retention_duration_days",
        ),
        (create_body(incremental="true"), "checkpoint.parameters.incremental"),
        (create_body(auto_trigger=1), "checkpoint.parameters.auto_trigger"),
        (create_body(incremntal=False), "checkpoint.parameters.incremntal"),
        ({"checkpoint": {"vault_id": VAULT_ID}, "idempotency_key": "k"}, "idempotency_key"),
    ],
)
def test_invalid_fields_are_refused_with_9900_naming_the_field(
    emulator: Emulator, cbr: httpx.Client, body: dict[str, Any], field: str
) -> None:
    answer = cbr.post(CHECKPOINTS, json=body)

    assert answer.status_code == 400
    error = answer.json()
    assert error["error_code"] == "BackupService.9900"
    assert error["error_msg"].startswith(f"Invalid parameter: {field} ")
    assert emulator.created == []


def test_retention_minus_one_and_the_limits_are_accepted(cbr: httpx.Client) -> None:
    for days in (-1, 1, 36500):
        assert cbr.post(CHECKPOINTS, json=create_body(retention_duration_days=days)).status_code == 200
    assert cbr.post(CHECKPOINTS, json=create_body(name="备份_nightly-1")).status_code == 200


def test_a_body_that_is_not_json_is_a_9900(cbr: httpx.Client) -> None:
    answer = cbr.post(CHECKPOINTS, content=b"{not json", headers={"Content-Type": "application/json"})

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "BackupService.9900"
    assert "body" in answer.json()["error_msg"]


def test_an_unknown_vault_is_a_6105(emulator: Emulator, cbr: httpx.Client) -> None:
    missing = "00000000-0000-4000-8000-000000000000"

    answer = cbr.post(CHECKPOINTS, json=create_body(missing))

    assert answer.status_code == 404
    assert answer.json() == {
        "error_code": "BackupService.6105",
        "error_msg": f"Vault {missing} does not exist.",
    }
    assert emulator.created == []


def test_a_resource_not_bound_to_the_vault_is_a_6135(emulator: Emulator, cbr: httpx.Client) -> None:
    answer = cbr.post(CHECKPOINTS, json=create_body(resources=[SERVER_ID, UNBOUND_ID]))

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "BackupService.6135"
    assert UNBOUND_ID in answer.json()["error_msg"]
    assert emulator.created == []


def test_a_busy_resource_is_skipped(emulator: Emulator, cbr: httpx.Client) -> None:
    emulator.mark_busy(VOLUME_ID, mode="skip")

    checkpoint = cbr.post(CHECKPOINTS, json=create_body()).json()["checkpoint"]

    assert [r["id"] for r in checkpoint["vault"]["resources"]] == [SERVER_ID]
    assert checkpoint["vault"]["skipped_resources"] == [
        {
            "id": VOLUME_ID,
            "type": "OS::Cinder::Volume",
            "name": "evs-1",
            "code": "BackupService.0002",
            "reason": "The resource is being backed up.",
        }
    ]
    backups = cbr.get(BACKUPS, params={"checkpoint_id": checkpoint["id"]}).json()["backups"]
    assert [b["resource_id"] for b in backups] == [SERVER_ID]


def test_a_busy_resource_can_reject_the_whole_create(emulator: Emulator, cbr: httpx.Client) -> None:
    emulator.mark_busy(SERVER_ID, mode="reject")

    rejected = cbr.post(CHECKPOINTS, json=create_body(resources=[SERVER_ID]))
    unaffected = cbr.post(CHECKPOINTS, json=create_body(resources=[VOLUME_ID]))

    assert rejected.status_code == 500
    assert rejected.json()["error_code"] == "BackupService.0002"
    assert unaffected.status_code == 200
    assert len(emulator.created) == 1


# -- read endpoints ---------------------------------------------------------------------------------


def test_show_checkpoint_follows_completion(emulator: Emulator, cbr: httpx.Client) -> None:
    created = cbr.post(CHECKPOINTS, json=create_body()).json()["checkpoint"]

    protecting = cbr.get(f"{CHECKPOINTS}/{created['id']}")
    emulator.complete_checkpoint(created["id"], failed_resources=[VOLUME_ID])
    finished = cbr.get(f"{CHECKPOINTS}/{created['id']}").json()["checkpoint"]
    backups = cbr.get(BACKUPS, params={"checkpoint_id": created["id"]}).json()["backups"]

    assert protecting.json() == {"checkpoint": created}
    assert finished["status"] == "error"
    assert {r["id"]: r["protect_status"] for r in finished["vault"]["resources"]} == {
        SERVER_ID: "available",
        VOLUME_ID: "error",
    }
    assert {b["resource_id"]: b["status"] for b in backups} == {SERVER_ID: "available", VOLUME_ID: "error"}
    assert emulator.created[0]["status"] == "protecting"


def test_show_an_unknown_checkpoint_is_a_6217(cbr: httpx.Client) -> None:
    answer = cbr.get(f"{CHECKPOINTS}/8b0851a8-adf3-4f4c-a914-dead08bf9664")

    assert answer.status_code == 404
    assert answer.json()["error_code"] == "BackupService.6217"


def test_backups_can_be_filtered_and_paged(cbr: httpx.Client) -> None:
    first = cbr.post(CHECKPOINTS, json=create_body(name="first")).json()["checkpoint"]
    second = cbr.post(CHECKPOINTS, json=create_body(name="second", resources=[SERVER_ID])).json()[
        "checkpoint"
    ]
    cbr.post(CHECKPOINTS, json=create_body(EMPTY_VAULT_ID, name="empty"))

    def listed(**params: Any) -> dict[str, Any]:
        answer = cbr.get(BACKUPS, params=params)
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result

    everything = listed()
    assert (everything["count"], everything["offset"], everything["limit"]) == (3, 0, 1000)
    assert [b["name"] for b in everything["backups"]] == ["second", "first", "first"]
    assert listed(checkpoint_id=first["id"])["count"] == 2
    assert [b["checkpoint_id"] for b in listed(name="second")["backups"]] == [second["id"]]
    assert listed(vault_id=EMPTY_VAULT_ID)["count"] == 0
    assert listed(vault_id=VAULT_ID, name="first", resource_id=VOLUME_ID)["count"] == 1
    one_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    in_a_minute = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed(start_time=one_minute_ago)["count"] == 3
    assert listed(start_time=in_a_minute)["count"] == 0
    page = listed(limit=1, offset=1)
    assert (page["count"], page["offset"], page["limit"]) == (3, 1, 1)
    assert [b["name"] for b in page["backups"]] == ["first"]
    backup = everything["backups"][0]
    assert {
        "id",
        "checkpoint_id",
        "vault_id",
        "name",
        "status",
        "resource_id",
        "resource_type",
        "created_at",
    } <= set(backup)
    assert backup["status"] == "protecting"
    assert CREATED_AT.fullmatch(backup["created_at"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_time": "2026-01-01T00:00:00+00:00"}, "start_time"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
def test_invalid_backup_queries_name_the_parameter(
    cbr: httpx.Client, params: dict[str, str], field: str
) -> None:
    answer = cbr.get(BACKUPS, params=params)

    assert answer.status_code == 400
    assert answer.json()["error_msg"].startswith(f"Invalid parameter: {field} ")


def test_unknown_apis_get_apigw_0101(emulator: Emulator, cbr: httpx.Client) -> None:
    for method, path in [
        ("GET", "/v3/nothing"),
        ("DELETE", CHECKPOINTS),
        ("GET", f"/v3/{PROJECT_ID}/vaults/{VAULT_ID}/tags"),
        ("GET", f"/v3/{PROJECT_ID}/vault/resource_instances/action"),
    ]:
        answer = cbr.request(method, path)
        assert answer.status_code == 404
        assert answer.json() == {
            "error_code": "APIGW.0101",
            "error_msg": "The API does not exist or has not been published in the environment",
            "request_id": answer.headers["X-Request-Id"],
        }


def test_another_project_is_forbidden(cbr: httpx.Client) -> None:
    answer = cbr.get("/v3/ffffffffffffffffffffffffffffffff/backups")

    assert answer.status_code == 403
    assert answer.json()["error_code"] == "APIGW.0302"


# -- scripted faults --------------------------------------------------------------------------------


def test_a_status_fault_answers_instead_of_creating(emulator: Emulator, cbr: httpx.Client) -> None:
    throttled = {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}
    emulator.faults.append(
        Fault("POST", "/checkpoints", status=429, body=throttled, headers={"Retry-After": "2"})
    )

    first = cbr.post(CHECKPOINTS, json=create_body())
    second = cbr.post(CHECKPOINTS, json=create_body())

    assert first.status_code == 429
    assert first.json() == throttled
    assert first.headers["Retry-After"] == "2"
    assert "X-Request-Id" in first.headers
    assert second.status_code == 200
    assert len(emulator.created) == 1
    assert emulator.faults == []
    assert [r.status for r in emulator.requests] == [429, 200]


def test_faults_match_method_and_path_suffix_and_run_times_over(
    emulator: Emulator, cbr: httpx.Client
) -> None:
    emulator.faults.append(Fault("GET", "/backups", status=502, body=b"<html>bad gateway</html>", times=2))

    create = cbr.post(CHECKPOINTS, json=create_body())
    listings = [cbr.get(BACKUPS) for _ in range(3)]

    assert create.status_code == 200
    assert [answer.status_code for answer in listings] == [502, 502, 200]
    assert listings[0].content == b"<html>bad gateway</html>"


def test_a_delay_fault_slows_one_answer(emulator: Emulator, cbr: httpx.Client) -> None:
    cbr.get(BACKUPS)  # warm the connection
    emulator.faults.append(Fault("GET", "/backups", delay=0.3))

    started = time.monotonic()
    slow = cbr.get(BACKUPS)
    slow_elapsed = time.monotonic() - started
    cbr.get(BACKUPS)

    assert slow.status_code == 200
    # A sleep lasts at least its time, so this lower bound holds however loaded the machine is.
    assert slow_elapsed >= 0.3
    assert [request.held_seconds for request in emulator.requests] == [0.0, 0.3, 0.0]


def test_a_hang_past_the_client_timeout_still_creates(emulator: Emulator, cbr: httpx.Client) -> None:
    # Given a create held for an hour, far longer than the client waits
    emulator.faults.append(Fault(delay=3600))
    before = set(threading.enumerate())

    with pytest.raises(httpx.ReadTimeout):
        cbr.post(CHECKPOINTS, json=create_body(), timeout=0.3)

    # Then the create took effect
    assert len(emulator.created) == 1
    # And stopping the emulator wakes the request still held: its thread ends instead of sleeping on
    (held,) = [thread for thread in set(threading.enumerate()) - before if thread.daemon]
    emulator.stop()
    held.join(timeout=60)
    assert not held.is_alive()
    assert emulator.requests == []


def test_drop_before_closes_the_connection_and_creates_nothing(emulator: Emulator, cbr: httpx.Client) -> None:
    emulator.faults.append(Fault(drop="before"))

    with pytest.raises(httpx.RemoteProtocolError):
        cbr.post(CHECKPOINTS, json=create_body())

    assert emulator.created == []
    assert [(r.path, r.status) for r in emulator.requests] == [(CHECKPOINTS, 0)]
    assert cbr.post(CHECKPOINTS, json=create_body()).status_code == 200


def test_drop_after_creates_then_closes_the_connection(emulator: Emulator, cbr: httpx.Client) -> None:
    emulator.faults.append(Fault(drop="after"))

    with pytest.raises(httpx.RemoteProtocolError):
        cbr.post(CHECKPOINTS, json=create_body(name="ambiguous"))

    assert len(emulator.created) == 1
    assert emulator.requests[0].status == 0
    backups = cbr.get(BACKUPS, params={"name": "ambiguous"}).json()
    assert backups["count"] == 2


def test_faults_also_apply_to_iam(emulator: Emulator) -> None:
    emulator.faults.append(Fault("POST", "/v3/auth/tokens", status=503, body={"error": {"code": 503}}))

    refused = httpx.post(f"{emulator.base_url}/v3/auth/tokens", json=password_body(), timeout=5)
    issued = httpx.post(f"{emulator.base_url}/v3/auth/tokens", json=password_body(), timeout=5)

    assert refused.status_code == 503
    assert "X-Subject-Token" not in refused.headers
    assert issued.status_code == 201
    assert emulator.token_requests == 2


def test_nulls_and_omit_reshape_the_answer_of_a_create_that_takes_effect(
    emulator: Emulator, cbr: httpx.Client
) -> None:
    # Given a create answered with its names null and its extra_info left out
    emulator.faults.append(
        Fault(
            nulls=("checkpoint.vault.name", "checkpoint.vault.resources[].name"),
            omit=("checkpoint.extra_info",),
        )
    )

    answer = cbr.post(CHECKPOINTS, json=create_body(name="reshaped", resources=[SERVER_ID]))

    # Then the checkpoint exists as usual, and only its answer lost those fields
    assert answer.status_code == 200
    checkpoint = answer.json()["checkpoint"]
    (created,) = emulator.created
    assert checkpoint["id"] == created["id"]
    assert checkpoint["vault"]["name"] is None
    assert created["vault"]["name"] is not None
    assert [resource["name"] for resource in checkpoint["vault"]["resources"]] == [None]
    assert [resource["id"] for resource in checkpoint["vault"]["resources"]] == [SERVER_ID]
    assert "extra_info" not in checkpoint
    assert created["extra_info"]["name"] == "reshaped"
    # And the next answer is whole again
    assert cbr.get(f"{CHECKPOINTS}/{created['id']}").json()["checkpoint"]["vault"]["name"] is not None


def test_invalid_faults_are_refused_when_written() -> None:
    with pytest.raises(ValueError, match="drop"):
        Fault(drop="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        Fault(times=0)
    with pytest.raises(ValueError, match="not with status or drop"):
        Fault(status=500, nulls=("checkpoint.vault",))
    with pytest.raises(ValueError, match="field path"):
        Fault(nulls=("checkpoint..vault",))


# -- latency, connections, concurrency, reset -------------------------------------------------------


def test_latency_slows_cbr_but_not_iam(emulator: Emulator, cbr: httpx.Client) -> None:
    cbr.get(BACKUPS)
    emulator.latency = 0.2

    started = time.monotonic()
    cbr.get(BACKUPS)
    cbr_elapsed = time.monotonic() - started
    issue_token(emulator)

    assert cbr_elapsed >= 0.2
    assert [(request.path, request.held_seconds) for request in emulator.requests] == [
        (BACKUPS, 0.0),
        (BACKUPS, 0.2),
        ("/v3/auth/tokens", 0.0),
    ]


def test_one_keep_alive_client_opens_one_connection(emulator: Emulator, cbr: httpx.Client) -> None:
    answers = [cbr.get(BACKUPS) for _ in range(5)]

    assert [a.status_code for a in answers] == [200] * 5
    assert emulator.connections_opened == 1
    with httpx.Client(base_url=emulator.base_url, timeout=5) as other:
        other.get(BACKUPS)
    assert emulator.connections_opened == 2


def test_connections_that_only_asked_iam_are_not_cbr_connections(
    emulator: Emulator, cbr: httpx.Client
) -> None:
    # Given one connection used for IAM only and one for CBR
    issue_token(emulator)
    cbr.get(BACKUPS)
    cbr.get(BACKUPS)

    # Then both are connections, but only one carried CBR requests
    assert emulator.connections_opened == 2
    assert emulator.cbr_connections == 1


def test_ten_concurrent_requests_overlap_their_latency(emulator: Emulator) -> None:
    # Given an emulator that holds every answer for a second, and ten threads that start together
    emulator.latency = 1.0
    limits = httpx.Limits(max_connections=10)
    together = threading.Barrier(10, timeout=30)

    def post(_: int) -> httpx.Response:
        together.wait()
        return pool.post(CHECKPOINTS, json=create_body())

    with (
        httpx.Client(base_url=emulator.base_url, auth=SdkSignature(), limits=limits, timeout=30) as pool,
        ThreadPoolExecutor(max_workers=10) as workers,
    ):
        answers = list(workers.map(post, range(10)))

    # Then all ten were being answered at once, each creating its own checkpoint
    assert [a.status_code for a in answers] == [200] * 10
    assert len({a.json()["checkpoint"]["id"] for a in answers}) == 10
    assert emulator.peak_in_flight == 10


def test_requests_are_recorded_as_received(emulator: Emulator, cbr: httpx.Client) -> None:
    cbr.post(CHECKPOINTS, json=create_body(name="recorded"), headers={"X-Trace": "t-1"})
    cbr.get(BACKUPS, params={"name": "recorded", "status": ["available", "error"]})

    create, listing = emulator.requests
    assert (create.method, create.path, create.status, create.authenticated) == (
        "POST",
        CHECKPOINTS,
        200,
        True,
    )
    assert create.json == create_body(name="recorded")
    assert json.loads(create.body) == create.json
    assert create.headers["x-trace"] == "t-1"
    assert listing.query == {"name": ["recorded"], "status": ["available", "error"]}
    assert listing.json is None


def test_reset_forgets_activity_but_keeps_vaults_and_credentials(
    emulator: Emulator, cbr: httpx.Client
) -> None:
    cbr.post(CHECKPOINTS, json=create_body())
    emulator.faults.append(Fault(status=500))
    emulator.mark_busy(SERVER_ID, mode="reject")
    emulator.latency = 0.5
    issue_token(emulator)

    emulator.reset()

    assert (emulator.created, emulator.requests, emulator.faults) == ([], [], [])
    assert (emulator.token_requests, emulator.connections_opened, emulator.latency) == (0, 0, 0.0)
    token = issue_token(emulator)
    answer = httpx.post(
        emulator.base_url + CHECKPOINTS, json=create_body(), headers={"X-Auth-Token": token}, timeout=5
    )
    assert answer.status_code == 200
    assert [r["id"] for r in answer.json()["checkpoint"]["vault"]["resources"]] == [SERVER_ID, VOLUME_ID]
    assert cbr.get(BACKUPS).json()["count"] == 2


def test_add_vault_refuses_an_id_no_request_could_name() -> None:
    with pytest.raises(ValueError, match="UUID"):
        Emulator().add_vault("vault-1")


def test_start_is_idempotent_and_base_url_needs_it() -> None:
    emulator = Emulator()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url
    assert emulator.start() is emulator.start()
    url = emulator.base_url
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert httpx.get(f"{url}/v3/x/backups", timeout=5).status_code == 401
    finally:
        emulator.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v3/x/backups", timeout=1)


def test_issued_tokens_lists_every_token_until_reset(emulator: Emulator) -> None:
    first, second = issue_token(emulator), issue_token(emulator)
    emulator.expire_tokens()

    assert emulator.issued_tokens == [first, second]
    emulator.reset()
    assert emulator.issued_tokens == []


def test_the_emulator_shares_no_code_with_the_client() -> None:
    probe = "import sys, cbr_emulator.__main__; print(sorted(m for m in sys.modules if m.startswith('cbr_')))"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=60,
        check=True,
    )

    loaded = ast.literal_eval(completed.stdout.strip())
    assert loaded
    assert all(name.startswith("cbr_emulator") for name in loaded)


def test_ctrl_c_the_moment_the_url_is_printed_stops_the_emulator_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Whoever waits for the URL (a terminal, the README's harness) may press Ctrl-C as soon as it shows.
    def print_then_interrupted(*args: Any, **kwargs: Any) -> None:
        print(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(emulator_cli, "print", print_then_interrupted, raising=False)

    try:
        emulator_cli.main(["--port", "0", "--vault", VAULT_ID])
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C right after the URL escaped the emulator as an error")

    (url,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
