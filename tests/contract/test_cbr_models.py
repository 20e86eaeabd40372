"""Our CBR wire models against the official `huaweicloudsdkcbr` models: same fields, same JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

import httpx2 as httpx
import pytest
from huaweicloudsdkcbr.v1 import CbrClient as SdkCbrClient
from huaweicloudsdkcbr.v1 import model as sdk
from huaweicloudsdkcore.utils.http_utils import sanitize_for_serialization
from pydantic import BaseModel, SecretStr
from tests.fakes import AnsweringTransport, FakeClock, FakeWatchQueue

from cbr_checkpointer import models
from cbr_checkpointer.cbr import AkSkCredentials, CbrClient, RegionalCbr, StaticCredentials
from cbr_checkpointer.completion import CompletionService
from cbr_checkpointer.domain import Trigger, WatchCheck
from cbr_checkpointer.ledger import MemoryLedger

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


# -- every answer the API may legally send, generated from the SDK's response models -------------------

Variant = Literal["full", "deep nulls", "nulls", "guaranteed only"]
VARIANTS: tuple[Variant, ...] = ("full", "deep nulls", "nulls", "guaranteed only")
SAMPLE_SCALARS: dict[str, Any] = {
    "str": "text",
    "int": 7,
    "float": 1.5,
    "bool": True,
    "datetime": "2019-05-10T07:59:12.733403",
    "date": "2019-05-10",
    "object": {"any": "thing"},
}
LIST_TYPE = re.compile(r"list\[(?P<item>.+)\]")
DICT_TYPE = re.compile(r"dict\([^,]+, (?P<value>.+)\)")
MAX_LIST_NESTING = 2  # BackupResp.children holds BackupResp: one level of children is enough


def sdk_wire(type_name: str, variant: Variant, *, level: int = 0, lists: int = 0) -> Any:
    """A JSON value of an SDK type, read from the models' `openapi_types` and `attribute_map`:

    - full: every field holds a value, recursively (lists of one item);
    - deep nulls: every object present (lists of one item), every scalar in them null;
    - nulls: the response and the object in it present, every field of that object null;
    - guaranteed only: an empty object (the guaranteed fields are pinned afterwards).
    """
    if (listed := LIST_TYPE.fullmatch(type_name)) is not None:
        if variant == "nulls":
            return None
        if lists >= MAX_LIST_NESTING:
            return []
        item = sdk_wire(listed["item"], variant, level=level, lists=lists + 1)
        return [] if item is None else [item]
    if (mapped := DICT_TYPE.fullmatch(type_name)) is not None:
        value = sdk_wire(mapped["value"], variant, level=level, lists=lists)
        return None if value is None else {"key": value}
    if type_name in SAMPLE_SCALARS:
        return SAMPLE_SCALARS[type_name] if variant == "full" else None
    model = getattr(sdk, type_name)
    if variant == "guaranteed only":
        return {}
    if variant == "nulls" and level > 1:
        return None
    return {
        model.attribute_map[attribute]: sdk_wire(openapi_type, variant, level=level + 1, lists=lists)
        for attribute, openapi_type in model.openapi_types.items()
    }


def pinned(document: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The document with these dotted paths set (objects on the way created when missing or null)."""
    for path, value in values.items():
        *parents, last = path.split(".")
        target = document
        for key in parents:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[last] = value
    return document


CHECKPOINT_ID = "8b0851a8-adf3-4f4c-a914-dead08bf9664"
PROJECT_ID = "4229d7a45436489f8c3dc2b1d35d4987"
# The only fields of a checkpoint the API guarantees.
GUARANTEED = {
    "checkpoint.id": CHECKPOINT_ID,
    "checkpoint.project_id": PROJECT_ID,
    "checkpoint.status": "protecting",
    "checkpoint.created_at": "2019-05-10T07:59:12.733403",
}


def checkpoint_answer(response_type: str, variant: Variant) -> dict[str, Any]:
    answer: dict[str, Any] = sdk_wire(response_type, variant)
    return pinned(answer, GUARANTEED)


def test_the_generated_answers_cover_every_field_and_every_null() -> None:
    # The generator is what the following tests stand on: it must reach every field the SDK declares.
    full = checkpoint_answer("CreateCheckpointResponse", "full")
    _assert_fully_populated(SdkCbrClient()._deserialize(full, "CreateCheckpointResponse").checkpoint)
    deep = checkpoint_answer("CreateCheckpointResponse", "deep nulls")["checkpoint"]
    assert deep["vault"]["resources"][0] == dict.fromkeys(sdk.CheckpointResourceResp.attribute_map.values())
    assert deep["vault"]["skipped_resources"][0]["name"] is None
    assert deep["extra_info"] == dict.fromkeys(sdk.CheckpointExtraInfoResp.attribute_map.values())
    nulls = checkpoint_answer("CreateCheckpointResponse", "nulls")["checkpoint"]
    assert nulls == {key: GUARANTEED.get(f"checkpoint.{key}") for key in sdk.CheckpointCreate.attribute_map}
    assert checkpoint_answer("CreateCheckpointResponse", "guaranteed only") == {
        "checkpoint": {key.split(".")[1]: value for key, value in GUARANTEED.items()}
    }


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("response_type", ["CreateCheckpointResponse", "ShowCheckpointResponse"])
def test_every_checkpoint_answer_the_sdk_accepts_is_read_by_ours(
    response_type: str, variant: Variant
) -> None:
    # Given an answer the SDK reads without complaint
    answer = checkpoint_answer(response_type, variant)
    read_by_sdk = SdkCbrClient()._deserialize(answer, response_type)

    # When ours reads the same JSON
    ours = models.CreateCheckpointResponse.model_validate_json(json.dumps(answer))

    # Then it holds what the SDK holds, and keeps the JSON as it came
    dumped = ours.checkpoint.model_dump(mode="json", exclude_none=True)
    assert sanitize_for_serialization(read_by_sdk.checkpoint) == dumped
    assert ours.model_dump(mode="json", exclude_unset=True) == answer


# -- the same answers through the client and the completion check (httpx.MockTransport, no sockets) ----

VAULT_OF_CHECK = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def list_answer(response_type: str, key: str, variant: Variant, item_pins: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = sdk_wire(response_type, variant)
    if variant == "full":
        answer["count"] = 1
        answer[key] = [item | item_pins for item in answer[key]]
    return answer


class ScriptedCbr:
    """CBR answering every call with the generated answer of one variant; records what was asked."""

    def __init__(self, variant: Variant, checkpoint_status: str) -> None:
        self.answers = {
            "checkpoints": pinned(
                checkpoint_answer("ShowCheckpointResponse", variant),
                {"checkpoint.status": checkpoint_status},
            ),
            "backups": list_answer(
                "ListBackupsResponse",
                "backups",
                variant,
                {"checkpoint_id": CHECKPOINT_ID, "status": "available", "resource_id": SERVER_ID},
            ),
            "operation-logs": list_answer(
                "ListOpLogsResponse", "operation_logs", variant, {"checkpoint_id": CHECKPOINT_ID}
            ),
        }
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        collection = request.url.path.split("/")[3]
        self.asked.append(f"{request.method} {collection}")
        return httpx.Response(200, json=self.answers[collection])


def _no_other_region(region: str) -> CbrClient:
    raise AssertionError(f"a check of the configured region asked for a client of {region}")


def scripted_client(cbr: ScriptedCbr) -> CbrClient:
    credentials = StaticCredentials(AkSkCredentials("AK", SecretStr("SK")))
    return CbrClient(
        "https://cbr.cn-north-4.myhuaweicloud.com",
        credentials,
        iam_endpoint="https://iam.cn-north-4.myhuaweicloud.com",
        transport=AnsweringTransport(cbr),
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_legal_answer_reaches_the_caller_and_none_is_an_error(variant: Variant) -> None:
    cbr = ScriptedCbr(variant, "protecting")
    client = scripted_client(cbr)

    created = client.create_checkpoint(PROJECT_ID, {"checkpoint": {"vault_id": VAULT_OF_CHECK}})
    shown = client.show_checkpoint(PROJECT_ID, CHECKPOINT_ID)
    backups = client.list_backups(PROJECT_ID, checkpoint_id=CHECKPOINT_ID)
    logs = client.list_operation_logs(PROJECT_ID, vault_id=VAULT_OF_CHECK)

    assert (created.id, created.status, shown.id) == (CHECKPOINT_ID, "protecting", CHECKPOINT_ID)
    expected_items = 0 if variant in ("nulls", "guaranteed only") else 1
    assert (len(backups), len(logs)) == (expected_items, expected_items)
    assert cbr.asked == ["POST checkpoints", "GET checkpoints", "GET backups", "GET operation-logs"]


@pytest.mark.parametrize(
    ("variant", "end"),
    [
        # Every field present: the backup is available, but the create skipped a resource.
        ("full", "failed"),
        # A backup whose status is null is in no known status: it is followed like a running one.
        ("deep nulls", "next check"),
        # No backups listed (the list null or missing) and no resource named: nothing failed.
        ("nulls", "completed"),
        ("guaranteed only", "completed"),
    ],
)
def test_a_completion_check_ends_or_goes_on_for_every_legal_answer(variant: Variant, end: str) -> None:
    # Given a finished checkpoint, whose answers are the generated ones
    cbr = ScriptedCbr(variant, "available")
    queue = FakeWatchQueue()
    service = CompletionService(
        RegionalCbr(scripted_client(cbr), default_region=None, connect=_no_other_region),
        MemoryLedger(ttl_seconds=3600),
        queue,
        max_age_seconds=24 * 3600,
        clock=FakeClock(NOW.timestamp() + 60),
    )
    check = WatchCheck(
        idempotency_key="k",
        project_id=PROJECT_ID,
        vault_id=VAULT_OF_CHECK,
        checkpoint_id=CHECKPOINT_ID,
        request={"checkpoint": {"vault_id": VAULT_OF_CHECK}},
        trigger=Trigger("schedule", "s", NOW),
        first_seen=NOW,
        attempt=1,
    )

    # When it is checked: it must not be handed back (TransientFailure) for anything the API may send
    outcome = service.check(check, deadline=NOW.timestamp() + 600, message_id="m-1")

    # Then it ends, or schedules the next check
    if end == "next check":
        assert outcome is None
        assert len(queue.sent) == 1
    else:
        assert outcome is not None
        assert outcome.kind == end
        assert outcome.error is None if end == "completed" else outcome.error is not None
        assert queue.sent == []
