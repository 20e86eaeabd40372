"""Our CBR wire models against the official `huaweicloudsdkcbr` models: same fields, same JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient as SdkCbrClient
from huaweicloudsdkcbr.v1 import model as sdk
from huaweicloudsdkcore.utils.http_utils import sanitize_for_serialization
from pydantic import BaseModel

from cbr_checkpointer import models

PAIRS: list[tuple[type[Any], type[BaseModel]]] = [
    (sdk.VaultBackupReq, models.VaultBackupReq),
    (sdk.VaultBackup, models.VaultBackup),
    (sdk.CheckpointParam, models.CheckpointParam),
    (sdk.Resource, models.Resource),
    (sdk.ResourceExtraInfo, models.ResourceExtraInfo),
    (sdk.ResourceExtraInfoIncludeVolumes, models.ResourceExtraInfoIncludeVolumes),
    (sdk.CreateCheckpointResponse, models.CreateCheckpointResponse),
    (sdk.ShowCheckpointResponse, models.CreateCheckpointResponse),
    (sdk.CheckpointCreate, models.CheckpointCreate),
    (sdk.CheckpointPlanCreate, models.CheckpointPlanCreate),
    (sdk.CheckpointResourceResp, models.CheckpointResourceResp),
    (sdk.CheckpointCreateSkippedResource, models.CheckpointCreateSkippedResource),
    (sdk.CheckpointExtraInfoResp, models.CheckpointExtraInfoResp),
]

VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SERVER_ID = "94eba8b2-acc9-4d82-badc-127144cc5526"
VOLUME_ID = "0a7a4f7e-7b8f-4bd1-a6bb-4c6a2d4c9f10"


@pytest.mark.parametrize(("sdk_model", "ours"), PAIRS, ids=lambda model: model.__name__)
def test_our_models_have_exactly_the_sdk_fields(sdk_model: type[Any], ours: type[BaseModel]) -> None:
    # A field added to (or dropped from) the SDK model fails here until ours follows.
    assert set(sdk_model.openapi_types) == set(sdk_model.attribute_map)
    assert set(sdk_model.attribute_map.values()) == set(ours.model_fields)


def _assert_fully_populated(sdk_object: Any) -> None:
    """Every attribute of the SDK object, recursively, holds a value (so the test covers every field)."""
    for attribute in sdk_object.openapi_types:
        value = getattr(sdk_object, attribute)
        assert value is not None, f"{type(sdk_object).__name__}.{attribute} is not populated"
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "openapi_types"):
                _assert_fully_populated(item)


def full_sdk_request() -> sdk.VaultBackupReq:
    return sdk.VaultBackupReq(
        checkpoint=sdk.VaultBackup(
            vault_id=VAULT_ID,
            parameters=sdk.CheckpointParam(
                auto_trigger=False,
                description="nightly backup",
                incremental=True,
                name="backup_2025-01-01",
                resources=[SERVER_ID],
                resource_details=[
                    sdk.Resource(
                        id=SERVER_ID,
                        type="OS::Nova::Server",
                        name="ecs-1",
                        extra_info=sdk.ResourceExtraInfo(
                            exclude_volumes=[VOLUME_ID],
                            include_volumes=[
                                sdk.ResourceExtraInfoIncludeVolumes(id=VOLUME_ID, os_version="CentOS 7.6")
                            ],
                        ),
                    )
                ],
                policy_id="policy-1",
                retention_duration_days=30,
            ),
        )
    )


def full_sdk_checkpoint() -> sdk.CheckpointCreate:
    return sdk.CheckpointCreate(
        created_at="2019-05-10T07:59:12.733403",
        id="8b0851a8-adf3-4f4c-a914-dead08bf9664",
        project_id="4229d7a45436489f8c3dc2b1d35d4987",
        status="protecting",
        vault=sdk.CheckpointPlanCreate(
            id=VAULT_ID,
            name="vault-be94",
            resources=[
                sdk.CheckpointResourceResp(
                    extra_info="{}",
                    id=SERVER_ID,
                    name="ecs-1f0f-0002",
                    protect_status="available",
                    resource_size="40",
                    type="OS::Nova::Server",
                    backup_size="0",
                    backup_count="0",
                )
            ],
            skipped_resources=[
                sdk.CheckpointCreateSkippedResource(
                    id=VOLUME_ID,
                    type="OS::Cinder::Volume",
                    name="disk-1",
                    code="BackupService.6203",
                    reason="The resource is being backed up",
                )
            ],
        ),
        extra_info=sdk.CheckpointExtraInfoResp(
            name="backup_name", description="backup_description", retention_duration=-1
        ),
    )


def test_a_fully_populated_sdk_request_is_accepted_unchanged() -> None:
    # Given every request field the SDK knows, serialized by the SDK itself
    sdk_request = full_sdk_request()
    _assert_fully_populated(sdk_request)
    wire = sanitize_for_serialization(sdk_request)

    # When our strict request model validates the same JSON
    ours = models.VaultBackupReq.model_validate_json(json.dumps(wire))

    # Then it accepts it and serializes it back byte for byte the same
    assert ours.model_dump(mode="json", exclude_none=True) == wire


def test_a_minimal_sdk_request_is_accepted_unchanged() -> None:
    wire = sanitize_for_serialization(sdk.VaultBackupReq(checkpoint=sdk.VaultBackup(vault_id=VAULT_ID)))
    ours = models.VaultBackupReq.model_validate_json(json.dumps(wire))
    assert ours.model_dump(mode="json", exclude_none=True) == wire == {"checkpoint": {"vault_id": VAULT_ID}}


def test_a_fully_populated_sdk_response_is_parsed_field_for_field() -> None:
    # Given every response field the SDK knows, as the API would send it
    checkpoint = full_sdk_checkpoint()
    _assert_fully_populated(checkpoint)
    wire = {"checkpoint": sanitize_for_serialization(checkpoint)}

    # When ours and the SDK's deserializer parse the same body
    ours = models.CreateCheckpointResponse.model_validate_json(json.dumps(wire))
    sdk = SdkCbrClient()._deserialize(wire, "CreateCheckpointResponse")

    # Then both hold the same values
    assert ours.model_dump(mode="json") == wire
    assert sanitize_for_serialization(sdk.checkpoint) == ours.checkpoint.model_dump(mode="json")


@pytest.mark.parametrize(
    "checkpoint",
    [
        # A finished checkpoint as in the Dec-2022 ShowCheckpoint example: vault and extra_info null.
        {
            "id": "c1",
            "project_id": "p",
            "status": "available",
            "created_at": "2020-02-05T10:38:34.209782",
            "vault": None,
            "extra_info": None,
        },
        # Sizes as numbers (the docs example), an unknown status, null lists.
        {
            "id": "c2",
            "project_id": "p",
            "status": "something-new",
            "created_at": "2020-02-05T10:38:34",
            "vault": {
                "id": "v",
                "name": "n",
                "resources": [
                    {
                        "id": "r",
                        "name": "x",
                        "type": "OS::Nova::Server",
                        "resource_size": 40,
                        "backup_size": 0,
                        "backup_count": 0,
                    }
                ],
                "skipped_resources": None,
            },
        },
    ],
)
def test_responses_the_sdk_accepts_are_accepted_by_ours(checkpoint: dict[str, Any]) -> None:
    sdk = SdkCbrClient()._deserialize({"checkpoint": checkpoint}, "ShowCheckpointResponse")
    ours = models.CreateCheckpointResponse.model_validate_json(json.dumps({"checkpoint": checkpoint}))
    assert ours.checkpoint.id == sdk.checkpoint.id
    assert ours.checkpoint.status == sdk.checkpoint.status
