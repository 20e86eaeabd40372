"""ListVault and the tag query against the official `huaweicloudsdkcbr`: our requests are the SDK's, the
SDK's answers parse with our models, and the emulator's answers are the SDK's (so a misreading shared by
our client and our emulator cannot hide)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest
from huaweicloudsdkcbr.v1 import CbrClient as SdkCbrClient
from huaweicloudsdkcbr.v1 import model as sdk
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.utils.http_utils import sanitize_for_serialization
from pydantic import BaseModel, SecretStr
from tests.fakes import AnsweringTransport

from cbr_checkpointer import models
from cbr_checkpointer.cbr import AkSkCredentials, CbrClient, StaticCredentials
from cbr_emulator import Emulator

PROJECT_ID = "4229d7a45436489f8c3dc2b1d35d4987"
AK, SK = "AKEXAMPLE", "SKEXAMPLE"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SERVER_ID = "94eba8b2-acc9-4d82-badc-127144cc5526"
VOLUME_ID = "0a7a4f7e-7b8f-4bd1-a6bb-4c6a2d4c9f10"

# Ours read only what we use, so each holds a subset of the SDK model's fields, never a field it lacks.
PAIRS: list[tuple[type[Any], type[BaseModel]]] = [
    (sdk.TagsReq, models.TagsReq),
    (sdk.VaultResourceInstancesReq, models.VaultResourceInstancesReq),
    (sdk.ListVaultResponse, models.ListVaultResponse),
    (sdk.Vault, models.Vault),
    (sdk.Billing, models.Billing),
    (sdk.ResourceResp, models.ResourceResp),
    (sdk.Tag, models.Tag),
    (sdk.ShowVaultResourceInstancesResponse, models.ShowVaultResourceInstancesResponse),
    (sdk.TagResource, models.TagResource),
]


@pytest.mark.parametrize(("sdk_model", "ours"), PAIRS, ids=lambda model: model.__name__)
def test_our_fields_are_sdk_fields(sdk_model: type[Any], ours: type[BaseModel]) -> None:
    assert set(ours.model_fields) <= set(sdk_model.attribute_map.values())


def test_our_tag_condition_has_exactly_the_sdk_fields() -> None:
    assert set(models.TagsReq.model_fields) == set(sdk.TagsReq.attribute_map.values())


# -- our requests are the SDK's ---------------------------------------------------------------------


def full_sdk_vault() -> sdk.Vault:
    """A vault with every field the SDK knows populated, as a ListVault answer would carry it."""
    return sdk.Vault(
        billing=sdk.Billing(
            allocated=0,
            charging_mode="post_paid",
            cloud_type="public",
            consistent_level="crash_consistent",
            object_type="server",
            order_id="CS2304211619",
            product_id="00301-231151-0--0",
            protect_type="backup",
            size=100,
            spec_code="vault.backup.server.normal",
            status="available",
            storage_unit="bucket-1",
            used=0,
            frozen_scene="",
            is_multi_az=False,
        ),
        description="nightly",
        id=VAULT_ID,
        name="vault-web",
        project_id=PROJECT_ID,
        provider_id="0daac4c5-6707-4851-97ba-169e36266b66",
        resources=[
            sdk.ResourceResp(
                extra_info=sdk.ResourceExtraInfo(
                    exclude_volumes=[VOLUME_ID],
                    include_volumes=[sdk.ResourceExtraInfoIncludeVolumes(id=VOLUME_ID, os_version="x")],
                ),
                id=SERVER_ID,
                name="ecs-1",
                protect_status="available",
                size=40,
                type="OS::Nova::Server",
                backup_size=0,
                backup_count=0,
                auto_protect=False,
            )
        ],
        tags=[sdk.Tag(key="env", value="prod")],
        enterprise_project_id="0",
        auto_bind=False,
        bind_rules=sdk.VaultBindRules(tags=[sdk.BindRulesTags(key="env", value="prod")]),
        user_id="0ae13f012b80d2d81f11c0129285d34b",
        created_at="2020-02-05T10:38:34.209782",
        auto_expand=False,
        smn_notify=True,
        threshold=80,
        sys_lock_source_service="SMB",
        locked=False,
        availability_zone="cn-north-4a",
    )


def assert_fully_populated(sdk_object: Any) -> None:
    """Every attribute of the SDK object, recursively, holds a value (so the test covers every field)."""
    for attribute in sdk_object.openapi_types:
        value = getattr(sdk_object, attribute)
        assert value is not None, f"{type(sdk_object).__name__}.{attribute} is not populated"
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "openapi_types"):
                assert_fully_populated(item)


class Recorder:
    """An httpx transport that records each request and answers it with the next scripted body."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.requests: list[httpx.Request] = []
        self._answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self._answers.pop(0))


@pytest.fixture
def recorded() -> Iterator[Callable[..., tuple[CbrClient, Recorder]]]:
    clients: list[CbrClient] = []

    def make(*answers: dict[str, Any]) -> tuple[CbrClient, Recorder]:
        recorder = Recorder(*answers)
        client = CbrClient(
            "https://cbr.cn-north-4.myhuaweicloud.com",
            StaticCredentials(AkSkCredentials(AK, SecretStr(SK))),
            iam_endpoint="https://iam.cn-north-4.myhuaweicloud.com",
            transport=AnsweringTransport(recorder),
        )
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:
        client.close()


def sdk_http_info(name: str, request: Any) -> dict[str, Any]:
    info: dict[str, Any] = getattr(SdkCbrClient(), f"_{name}_http_info")(request)
    return info


def test_list_vaults_sends_the_sdk_method_path_and_query(
    recorded: Callable[..., tuple[CbrClient, Recorder]],
) -> None:
    client, recorder = recorded({"vaults": [], "count": 0})

    client.list_vaults(PROJECT_ID, policy_id="policy-1", object_type="disk")

    (sent,) = recorder.requests
    info = sdk_http_info(
        "list_vault", sdk.ListVaultRequest(policy_id="policy-1", object_type="disk", limit=1000, offset=0)
    )
    assert sent.method == info["method"]
    assert sent.url.path == info["resource_path"].format(project_id=PROJECT_ID)
    sdk_query = sorted((name, str(value)) for name, value in info["query_params"] if value is not None)
    assert sorted(sent.url.params.multi_items()) == sdk_query


def test_the_tag_query_sends_the_sdk_method_path_and_body(
    recorded: Callable[..., tuple[CbrClient, Recorder]],
) -> None:
    client, recorder = recorded({"resources": [], "total_count": 0})

    client.vault_ids_with_tags(PROJECT_ID, {"env": ["prod", "stage"], "backup": []})

    (sent,) = recorder.requests
    sdk_body = sdk.VaultResourceInstancesReq(
        action="filter",
        tags=[sdk.TagsReq(key="env", values=["prod", "stage"]), sdk.TagsReq(key="backup", values=[])],
        limit="1000",
        offset="0",
    )
    info = sdk_http_info(
        "show_vault_resource_instances", sdk.ShowVaultResourceInstancesRequest(body=sdk_body)
    )
    assert sent.method == info["method"]
    assert sent.url.path == info["resource_path"].format(project_id=PROJECT_ID)
    assert not sent.url.params
    assert not info["query_params"]
    assert json.loads(sent.content) == sanitize_for_serialization(info["body"])
    assert sent.headers["Content-Type"].lower() == info["header_params"]["Content-Type"].lower()


# -- the SDK's answers parse with our models ----------------------------------------------------------


def test_a_fully_populated_sdk_list_vault_answer_is_read(
    recorded: Callable[..., tuple[CbrClient, Recorder]],
) -> None:
    vault = full_sdk_vault()
    assert_fully_populated(vault)
    answer = sanitize_for_serialization(sdk.ListVaultResponse(vaults=[vault], count=1, limit=1000, offset=0))
    client, _ = recorded(answer)

    (ours,) = client.list_vaults(PROJECT_ID)

    assert ours.model_dump(mode="json") == answer["vaults"][0]


def test_a_fully_populated_sdk_tag_answer_is_read(
    recorded: Callable[..., tuple[CbrClient, Recorder]],
) -> None:
    resource = sdk.TagResource(
        resource_id=VAULT_ID,
        resource_detail=sdk.InstancesResourceDetail(vault=full_sdk_vault()),
        tags=[sdk.Tag(key="env", value="prod")],
        resource_name="vault-web",
        sys_tags=[sdk.SysTag(key="_sys_enterprise_project_id", value="0")],
    )
    assert_fully_populated(resource)
    answer = sanitize_for_serialization(
        sdk.ShowVaultResourceInstancesResponse(resources=[resource], total_count=1)
    )
    client, _ = recorded(answer)

    assert client.vault_ids_with_tags(PROJECT_ID, {"env": ["prod"]}) == [VAULT_ID]
    parsed = models.ShowVaultResourceInstancesResponse.model_validate_json(json.dumps(answer))
    assert parsed.model_dump(mode="json") == answer


def nulls_for(sdk_model: type[Any], **given: Any) -> dict[str, Any]:
    """Every field of the SDK model as JSON null, except those given."""
    return {**dict.fromkeys(sdk_model.attribute_map.values()), **given}


def test_answers_with_every_optional_field_null_are_read(
    recorded: Callable[..., tuple[CbrClient, Recorder]],
) -> None:
    vault = nulls_for(sdk.Vault, id=VAULT_ID)
    vaults = nulls_for(sdk.ListVaultResponse, vaults=[vault])
    resources = nulls_for(
        sdk.ShowVaultResourceInstancesResponse, resources=[nulls_for(sdk.TagResource, resource_id=VAULT_ID)]
    )
    # The SDK takes them too.
    assert SdkCbrClient()._deserialize(vaults, "ListVaultResponse").vaults[0].id == VAULT_ID
    assert (
        SdkCbrClient()._deserialize(resources, "ShowVaultResourceInstancesResponse").resources[0].resource_id
        == VAULT_ID
    )
    client, _ = recorded(vaults, resources)

    (listed,) = client.list_vaults(PROJECT_ID)
    tagged = client.vault_ids_with_tags(PROJECT_ID, {"env": []})

    assert (listed.id, listed.name, listed.billing, listed.resources, listed.tags) == (
        VAULT_ID,
        None,
        None,
        [],
        [],
    )
    assert tagged == [VAULT_ID]


def test_the_documented_example_answer_is_read(recorded: Callable[..., tuple[CbrClient, Recorder]]) -> None:
    # The API reference's example answer to the tag query, `enterprise_project_id` a number and all.
    example = {
        "total_count": 1,
        "resources": [
            {
                "resource_id": "e54f7854-8de8-4f98-acf1-65f330bfe877",
                "resource_name": "vault-7698-api-test",
                "resource_detail": {
                    "vault": {
                        "id": "e54f7854-8de8-4f98-acf1-65f330bfe877",
                        "name": "vault-7698-api-test",
                        "resources": [],
                        "provider_id": "0daac4c5-6707-4851-97ba-169e36266b66",
                        "created_at": "2023-04-21T08:20:43.022+00:00",
                        "project_id": "667230ba418f48f1996329f174693053",
                        "enterprise_project_id": 0,
                        "auto_bind": False,
                        "bind_rules": {},
                        "auto_expand": False,
                        "smn_notify": True,
                        "threshold": 80,
                        "user_id": "0ae13f012b80d2d81f11c0129285d34b",
                        "billing": {"object_type": "server", "status": "available", "size": 100, "used": 0},
                        "tags": [],
                    }
                },
                "tags": [],
            }
        ],
    }
    client, _ = recorded(example)

    assert client.vault_ids_with_tags(PROJECT_ID, {"env": []}) == ["e54f7854-8de8-4f98-acf1-65f330bfe877"]


# -- the emulator's answers are the SDK's -------------------------------------------------------------


def without_nulls(document: Any) -> Any:
    """The JSON as the SDK serializes its models back: null members left out."""
    if isinstance(document, dict):
        return {key: without_nulls(value) for key, value in document.items() if value is not None}
    if isinstance(document, list):
        return [without_nulls(item) for item in document]
    return document


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(project_id=PROJECT_ID, ak=AK, sk=SK) as emulator:
        emulator.add_vault(
            VAULT_ID,
            [{"id": SERVER_ID, "name": "ecs-1"}, {"id": VOLUME_ID, "type": "OS::Cinder::Volume"}],
            name="vault-web",
            policy_ids=["policy-1"],
            tags={"env": "prod", "team": "web"},
        )
        emulator.add_vault("7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12", object_type="turbo")
        yield emulator


def sdk_client(emulator: Emulator) -> SdkCbrClient:
    return (
        SdkCbrClient.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT_ID))
        .with_endpoints([emulator.base_url])
        .build()
    )


@pytest.mark.integration
def test_the_emulators_list_vault_answer_is_exactly_what_the_sdk_reads(emulator: Emulator) -> None:
    answer = sdk_client(emulator).list_vault(sdk.ListVaultRequest(limit=10))

    # Any member the SDK does not know, or of another type, would be lost or changed on the way back.
    assert sanitize_for_serialization(answer) == without_nulls(answer.to_json_object())
    assert answer.count == 2
    assert [tag.key for tag in answer.vaults[0].tags] == ["env", "team"]
    assert models.ListVaultResponse.model_validate_json(answer.raw_content).vaults[0].id == VAULT_ID


@pytest.mark.integration
@pytest.mark.parametrize("action", ["filter", "count"])
def test_the_emulators_tag_answers_are_exactly_what_the_sdk_reads(emulator: Emulator, action: str) -> None:
    body = sdk.VaultResourceInstancesReq(action=action, tags=[sdk.TagsReq(key="env", values=[])])

    answer = sdk_client(emulator).show_vault_resource_instances(
        sdk.ShowVaultResourceInstancesRequest(body=body)
    )

    assert sanitize_for_serialization(answer) == without_nulls(answer.to_json_object())
    assert answer.total_count == 1
    if action == "filter":
        assert answer.resources[0].resource_detail.vault.billing.object_type == "server"
        assert (
            models.ShowVaultResourceInstancesResponse.model_validate_json(answer.raw_content)
            .resources[0]
            .resource_id
            == VAULT_ID
        )
