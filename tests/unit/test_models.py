"""The CBR wire-format models: strict requests at every documented limit, lenient responses."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from cbr_checkpointer.models import (
    CheckpointParam,
    CreateCheckpointResponse,
    Resource,
    ResourceType,
    VaultBackupReq,
    is_valid_name,
)

VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SERVER = "94eba8b2-acc9-4d82-badc-127144cc5526"


def request(**parameters: Any) -> dict[str, Any]:
    return {"checkpoint": {"vault_id": VAULT, "parameters": parameters}}


def error_of(payload: dict[str, Any], model: type[Any] = VaultBackupReq) -> tuple[tuple[int | str, ...], str]:
    """The location and type of the single error the payload must produce."""
    with pytest.raises(ValidationError) as raised:
        model.model_validate(payload)
    errors = raised.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["type"]


PARAMETERS = ("checkpoint", "parameters")


# --- request: accepted ------------------------------------------------------------------------------


def test_docs_example_request_round_trips_unchanged() -> None:
    # Given the CreateCheckpoint body of the CBR documentation
    body = {
        "checkpoint": {
            "vault_id": VAULT,
            "parameters": {
                "auto_trigger": False,
                "description": "backup_description",
                "incremental": True,
                "name": "backup_name",
                "resources": [SERVER],
                "resource_details": [{"id": SERVER, "type": "OS::Nova::Server", "name": "ecs-1"}],
            },
        }
    }

    # When it is validated and dumped for the wire
    dumped = VaultBackupReq.model_validate(body).model_dump(mode="json", exclude_none=True)

    # Then nothing is added, dropped or changed
    assert dumped == body


def test_parameters_may_be_omitted() -> None:
    dumped = VaultBackupReq.model_validate({"checkpoint": {"vault_id": VAULT}}).model_dump(exclude_none=True)
    assert dumped == {"checkpoint": {"vault_id": VAULT}}


def test_uuids_keep_the_case_they_were_written_in() -> None:
    upper = VAULT.upper()
    dumped = VaultBackupReq.model_validate({"checkpoint": {"vault_id": upper}}).model_dump(mode="json")
    assert dumped["checkpoint"]["vault_id"] == upper


@pytest.mark.parametrize("name", ["a", "n" * 64, "backup_name-01", "备份-夜间", "A_Z-09"])
def test_names_within_the_rule_are_accepted(name: str) -> None:
    assert CheckpointParam.model_validate({"name": name}).name == name


@pytest.mark.parametrize("description", ["", "d" * 255, "nightly backup of ecs-1 (all disks) & more"])
def test_descriptions_within_the_rule_are_accepted(description: str) -> None:
    assert CheckpointParam.model_validate({"description": description}).description == description


@pytest.mark.parametrize("days", [-1, 1, 36500])
def test_retention_at_its_boundaries_is_accepted(days: int) -> None:
    assert CheckpointParam.model_validate({"retention_duration_days": days}).retention_duration_days == days


def test_retention_is_accepted_with_auto_trigger_false() -> None:
    parameters = CheckpointParam.model_validate({"auto_trigger": False, "retention_duration_days": 7})
    assert parameters.retention_duration_days == 7


@pytest.mark.parametrize("count", [0, 256])
def test_resource_details_up_to_256_are_accepted(count: int) -> None:
    details = [{"id": SERVER, "type": "OS::Nova::Server"}] * count
    parameters = CheckpointParam.model_validate({"resource_details": details})
    assert parameters.resource_details is not None
    assert len(parameters.resource_details) == count


@pytest.mark.parametrize("resource_type", get_args(ResourceType))
def test_every_documented_resource_type_is_accepted(resource_type: str) -> None:
    assert Resource.model_validate({"id": SERVER, "type": resource_type}).type == resource_type


def test_resource_extra_info_is_accepted_and_dumped_as_given() -> None:
    detail = {
        "id": SERVER,
        "type": "OS::Nova::Server",
        "name": "r" * 255,
        "extra_info": {
            "exclude_volumes": ["vol-1"],
            "include_volumes": [{"id": SERVER, "os_version": "CentOS 7.6"}],
        },
    }
    assert Resource.model_validate(detail).model_dump(exclude_none=True) == detail


def test_request_models_are_frozen() -> None:
    parameters = CheckpointParam.model_validate({"name": "a"})
    with pytest.raises(ValidationError):
        parameters.name = "b"  # type: ignore[misc]


# --- request: rejected just past each limit --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("n" * 65, "65 characters"),
        ("", "empty"),
        ("nightly backup", "space"),
        ("nightly.backup", "dot"),
        ("nightly\n", "trailing newline"),
        ("backup-{time:%Y}", "unrendered template"),
    ],
)
def test_names_outside_the_rule_are_rejected(name: str, why: str) -> None:
    assert error_of(request(name=name)) == ((*PARAMETERS, "name"), "name_format"), why


@pytest.mark.parametrize(
    ("description", "error_type"),
    [("d" * 256, "string_too_long"), ("a <b>", "description_format"), ("a > b", "description_format")],
)
def test_descriptions_outside_the_rule_are_rejected(description: str, error_type: str) -> None:
    assert error_of(request(description=description)) == ((*PARAMETERS, "description"), error_type)


@pytest.mark.parametrize("days", [0, -2, 36501])
def test_retention_outside_its_range_is_rejected(days: int) -> None:
    assert error_of(request(retention_duration_days=days)) == (
        (*PARAMETERS, "retention_duration_days"),
        "retention_range",
    )


def test_retention_with_auto_trigger_true_is_rejected() -> None:
    assert error_of(request(auto_trigger=True, retention_duration_days=-1)) == (
        (*PARAMETERS, "retention_duration_days"),
        "retention_with_auto_trigger",
    )


def test_257_resource_details_are_rejected() -> None:
    details = [{"id": SERVER, "type": "OS::Nova::Server"}] * 257
    assert error_of(request(resource_details=details)) == ((*PARAMETERS, "resource_details"), "too_long")


def test_resource_name_of_256_characters_is_rejected() -> None:
    assert error_of({"id": SERVER, "type": "OS::Nova::Server", "name": "r" * 256}, Resource) == (
        ("name",),
        "string_too_long",
    )


def test_unknown_resource_type_is_rejected() -> None:
    details = [{"id": SERVER, "type": "OS::Nova::Instance"}]
    assert error_of(request(resource_details=details)) == (
        (*PARAMETERS, "resource_details", 0, "type"),
        "literal_error",
    )


@pytest.mark.parametrize(
    "bad_uuid",
    [
        "3b5816b5f29c41729d9a76c719a659ce",
        "3b5816b5-f29c-4172-9d9a-76c719a659c",
        "3b5816b5-f29c-4172-9d9a-76c719a659cg",
        "{3b5816b5-f29c-4172-9d9a-76c719a659ce}",
        " 3b5816b5-f29c-4172-9d9a-76c719a659ce",
        "",
    ],
)
def test_malformed_uuids_are_rejected_wherever_a_uuid_is_expected(bad_uuid: str) -> None:
    assert error_of({"checkpoint": {"vault_id": bad_uuid}}) == (("checkpoint", "vault_id"), "uuid_format")
    assert error_of(request(resources=[SERVER, bad_uuid])) == ((*PARAMETERS, "resources", 1), "uuid_format")
    assert error_of(request(resource_details=[{"id": bad_uuid, "type": "OS::Nova::Server"}])) == (
        (*PARAMETERS, "resource_details", 0, "id"),
        "uuid_format",
    )


@pytest.mark.parametrize("value", ["true", "yes", "1", 1, 0, "false"])
@pytest.mark.parametrize("field", ["incremental", "auto_trigger"])
def test_booleans_are_strict(field: str, value: object) -> None:
    assert error_of(request(**{field: value})) == ((*PARAMETERS, field), "bool_type")


@pytest.mark.parametrize("value", ["30", 30.0, True])
def test_retention_must_be_a_json_integer(value: object) -> None:
    assert error_of(request(retention_duration_days=value)) == (
        (*PARAMETERS, "retention_duration_days"),
        "int_type",
    )


def test_vault_id_is_required() -> None:
    assert error_of({"checkpoint": {}}) == (("checkpoint", "vault_id"), "missing")


def server_detail(**extra: Any) -> dict[str, Any]:
    return {"id": SERVER, "type": "OS::Nova::Server", **extra}


DETAIL = (*PARAMETERS, "resource_details", 0)


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        ({"checkpoint": {"vault_id": VAULT}, "extra": 1}, ("extra",)),
        ({"checkpoint": {"vault_id": VAULT, "vault": 1}}, ("checkpoint", "vault")),
        (request(incremntal=True), (*PARAMETERS, "incremntal")),
        (request(resource_details=[server_detail(az="a")]), (*DETAIL, "az")),
        (
            request(resource_details=[server_detail(extra_info={"volumes": []})]),
            (*DETAIL, "extra_info", "volumes"),
        ),
        (
            request(
                resource_details=[server_detail(extra_info={"include_volumes": [{"id": SERVER, "size": 1}]})]
            ),
            (*DETAIL, "extra_info", "include_volumes", 0, "size"),
        ),
    ],
)
def test_unknown_fields_are_rejected_by_name_at_every_level(
    payload: dict[str, Any], location: tuple[int | str, ...]
) -> None:
    assert error_of(payload) == (location, "extra_forbidden")


def test_error_messages_do_not_echo_the_input() -> None:
    with pytest.raises(ValidationError) as raised:
        VaultBackupReq.model_validate(request(name="x" * 10_000, description="<" * 10_000))
    messages = [error["msg"] for error in raised.value.errors()]
    assert len(messages) == 2
    assert all(len(message) < 200 for message in messages)


# --- response ----------------------------------------------------------------------------------------

DOCS_RESPONSE: dict[str, Any] = {
    "checkpoint": {
        "id": "8b0851a8-adf3-4f4c-a914-dead08bf9664",
        "project_id": "4229d7a4e1b64c4f9e7a2b1c3d5e6f70",
        "status": "protecting",
        "created_at": "2019-05-10T07:59:12.733403",
        "vault": {
            "id": VAULT,
            "name": "vault-be94",
            "resources": [
                {
                    "id": SERVER,
                    "name": "ecs-1f0f-0002",
                    "type": "OS::Nova::Server",
                    "protect_status": "available",
                    "resource_size": 40,
                    "backup_size": 0,
                    "backup_count": 0,
                    "extra_info": "{}",
                }
            ],
            "skipped_resources": [],
        },
        "extra_info": {"name": "backup_name", "description": "backup_description", "retention_duration": -1},
    }
}


def test_docs_example_response_with_numeric_sizes_is_parsed() -> None:
    checkpoint = CreateCheckpointResponse.model_validate(DOCS_RESPONSE).checkpoint
    assert checkpoint.status == "protecting"
    assert checkpoint.vault is not None
    assert checkpoint.vault.resources[0].resource_size == 40
    assert checkpoint.extra_info is not None
    assert checkpoint.extra_info.retention_duration == -1


def test_sizes_sent_as_strings_stay_strings() -> None:
    # Given the response as the live API sends it: sizes and counts as strings
    response = {**DOCS_RESPONSE}
    resource = {**DOCS_RESPONSE["checkpoint"]["vault"]["resources"][0]}
    resource.update(resource_size="40", backup_size="0", backup_count="3")
    response["checkpoint"] = {
        **DOCS_RESPONSE["checkpoint"],
        "vault": {"id": VAULT, "name": "v", "resources": [resource]},
    }

    # When parsed
    parsed = CreateCheckpointResponse.model_validate(response).checkpoint

    # Then the values are kept as sent
    assert parsed.vault is not None
    assert (parsed.vault.resources[0].resource_size, parsed.vault.resources[0].backup_count) == ("40", "3")


def test_null_vault_and_extra_info_are_accepted() -> None:
    # Given a finished checkpoint as ShowCheckpoint returned it in older regions
    response = {
        "checkpoint": {
            "id": "8b0851a8-adf3-4f4c-a914-dead08bf9664",
            "project_id": "4229d7a4e1b64c4f9e7a2b1c3d5e6f70",
            "status": "available",
            "created_at": "2020-02-05T10:38:34.209782",
            "vault": None,
            "extra_info": None,
        }
    }
    checkpoint = CreateCheckpointResponse.model_validate(response).checkpoint
    assert (checkpoint.vault, checkpoint.extra_info) == (None, None)


def test_null_resource_lists_become_empty_lists() -> None:
    vault_with_nulls = {"id": VAULT, "name": "v", "resources": None, "skipped_resources": None}
    response = {"checkpoint": {**DOCS_RESPONSE["checkpoint"], "vault": vault_with_nulls}}
    vault = CreateCheckpointResponse.model_validate(response).checkpoint.vault
    assert vault is not None
    assert (vault.resources, vault.skipped_resources) == ([], [])


def test_unknown_status_is_accepted() -> None:
    response = {"checkpoint": {**DOCS_RESPONSE["checkpoint"], "status": "archiving"}}
    assert CreateCheckpointResponse.model_validate(response).checkpoint.status == "archiving"


def test_unknown_keys_are_kept_at_every_level() -> None:
    # Given a response with fields this model has never heard of
    response = {
        "checkpoint": {
            **DOCS_RESPONSE["checkpoint"],
            "region": "cn-north-4",
            "vault": {**DOCS_RESPONSE["checkpoint"]["vault"], "enterprise_project_id": "0"},
        }
    }

    # When parsed and dumped again
    dumped = CreateCheckpointResponse.model_validate(response).model_dump(mode="json")

    # Then the unknown fields survive
    assert dumped["checkpoint"]["region"] == "cn-north-4"
    assert dumped["checkpoint"]["vault"]["enterprise_project_id"] == "0"


def test_skipped_resources_carry_code_and_reason() -> None:
    skipped = {
        "id": SERVER,
        "type": "OS::Nova::Server",
        "code": "BackupService.6125",
        "reason": "该资源正在备份中",
    }
    response = {
        "checkpoint": {
            **DOCS_RESPONSE["checkpoint"],
            "vault": {"id": VAULT, "name": "v", "skipped_resources": [skipped]},
        }
    }
    vault = CreateCheckpointResponse.model_validate(response).checkpoint.vault
    assert vault is not None
    assert vault.resources == []
    assert (vault.skipped_resources[0].code, vault.skipped_resources[0].reason) == (
        "BackupService.6125",
        "该资源正在备份中",
    )


def test_response_without_a_checkpoint_id_is_rejected() -> None:
    checkpoint = {key: value for key, value in DOCS_RESPONSE["checkpoint"].items() if key != "id"}
    assert error_of({"checkpoint": checkpoint}, CreateCheckpointResponse) == (("checkpoint", "id"), "missing")


# CBR's documented rule for a checkpoint name, as a regex: the reference `is_valid_name` must agree with.
CBR_NAME_RULE = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fa5]{1,64}")
NAME_CHARACTERS = "aZ09_-" + "\u4e00\u9fa5" + "\u4dff\u9fa6 .~/\u00e9\u3042\uff21\U00020000\n<"


@pytest.mark.parametrize("char", NAME_CHARACTERS)
@pytest.mark.parametrize("length", [1, 63, 64, 65])
def test_the_name_check_agrees_with_cbrs_rule(char: str, length: int) -> None:
    for name in (char * length, "a" * (length - 1) + char, char + "b" * (length - 1)):
        assert is_valid_name(name) == bool(CBR_NAME_RULE.fullmatch(name)), repr(name)


def test_the_empty_name_breaks_the_rule() -> None:
    assert not is_valid_name("")
