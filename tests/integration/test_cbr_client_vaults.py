"""CbrClient.list_vaults and vault_ids_with_tags against the emulator over loopback HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from cbr_checkpointer.cbr import AkSkCredentials, CbrClient, CbrError, StaticCredentials
from cbr_emulator import Emulator, Fault

pytestmark = pytest.mark.integration

PROJECT_ID = "0b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
AK, SK = "AKEXAMPLE", "SKEXAMPLE-secret"
VAULTS = f"/v3/{PROJECT_ID}/vaults"
TAG_QUERY = f"/v3/{PROJECT_ID}/vault/resource_instances/action"


def vault_id(index: int) -> str:
    return str(uuid.UUID(int=index + 1))


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator of its own per test: vaults outlive reset()."""
    with Emulator(project_id=PROJECT_ID, ak=AK, sk=SK) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[CbrClient]:
    client = CbrClient(
        emu.base_url, StaticCredentials(AkSkCredentials(AK, SecretStr(SK))), iam_endpoint=emu.base_url
    )
    yield client
    client.close()


@pytest.fixture
def fleet(emu: Emulator) -> list[str]:
    """2,345 vaults: every third a disk vault, every second under policy p-even, tags by index."""
    ids = [vault_id(index) for index in range(2345)]
    for index, vault in enumerate(ids):
        emu.add_vault(
            vault,
            object_type="disk" if index % 3 == 0 else "server",
            policy_ids=["p-even"] if index % 2 == 0 else [],
            tags={"env": "prod" if index % 5 else "dev", **({"team": f"t{index % 4}"} if index % 7 else {})},
        )
    return ids


def vault_requests(emu: Emulator, path: str) -> list[Any]:
    return [request for request in emu.requests if request.path == path]


def test_list_vaults_reads_every_page_of_1000(emu: Emulator, client: CbrClient, fleet: list[str]) -> None:
    vaults = client.list_vaults(PROJECT_ID)

    assert [vault.id for vault in vaults] == fleet
    requests = vault_requests(emu, VAULTS)
    assert [(r.query["limit"], r.query["offset"]) for r in requests] == [
        (["1000"], ["0"]),
        (["1000"], ["1000"]),
        (["1000"], ["2000"]),
    ]


def test_list_vaults_sends_the_filters_and_reads_the_fields_it_keeps(
    emu: Emulator, client: CbrClient, fleet: list[str]
) -> None:
    vaults = client.list_vaults(PROJECT_ID, policy_id="p-even", object_type="disk")

    expected = [vault for index, vault in enumerate(fleet) if index % 6 == 0]
    assert [vault.id for vault in vaults] == expected
    assert {vault.billing.object_type for vault in vaults if vault.billing} == {"disk"}
    assert vaults[0].project_id == PROJECT_ID
    assert {(tag.key, tag.value) for tag in vaults[0].tags} == {("env", "dev")}
    (request,) = vault_requests(emu, VAULTS)
    assert request.query == {
        "policy_id": ["p-even"],
        "object_type": ["disk"],
        "limit": ["1000"],
        "offset": ["0"],
    }


def test_vault_ids_with_tags_pages_the_tag_query_with_string_limit_and_offset(
    emu: Emulator, client: CbrClient, fleet: list[str]
) -> None:
    ids = client.vault_ids_with_tags(PROJECT_ID, {"env": ["prod"], "team": []})

    assert ids == [vault for index, vault in enumerate(fleet) if index % 5 and index % 7]
    bodies = [request.json for request in vault_requests(emu, TAG_QUERY)]
    condition = [{"key": "env", "values": ["prod"]}, {"key": "team", "values": []}]
    assert bodies == [
        {"action": "filter", "tags": condition, "limit": "1000", "offset": "0"},
        {"action": "filter", "tags": condition, "limit": "1000", "offset": "1000"},
    ]


def test_values_of_one_key_are_alternatives(emu: Emulator, client: CbrClient) -> None:
    emu.add_vault(vault_id(0), tags={"team": "a"})
    emu.add_vault(vault_id(1), tags={"team": "b"})
    emu.add_vault(vault_id(2), tags={"team": "c"})

    assert client.vault_ids_with_tags(PROJECT_ID, {"team": ["a", "c"]}) == [vault_id(0), vault_id(2)]
    assert client.vault_ids_with_tags(PROJECT_ID, {"team": ["d"]}) == []


def test_more_pages_than_allowed_is_an_error_not_a_partial_list(
    emu: Emulator, client: CbrClient, fleet: list[str]
) -> None:
    with pytest.raises(CbrError) as listing:
        client.list_vaults(PROJECT_ID, max_pages=2)
    with pytest.raises(CbrError) as tagging:
        client.vault_ids_with_tags(PROJECT_ID, {"env": []}, max_pages=2)

    assert "ListVault has more than 2 pages of 1000" in str(listing.value)
    assert "ShowVaultResourceInstances has more than 2 pages of 1000" in str(tagging.value)
    assert not listing.value.info.retryable
    assert len(vault_requests(emu, VAULTS)) == len(vault_requests(emu, TAG_QUERY)) == 2


def test_a_list_filling_its_last_page_ends_at_the_next_empty_one(emu: Emulator, client: CbrClient) -> None:
    for index in range(1000):
        emu.add_vault(vault_id(index), tags={"env": "prod"})

    assert len(client.list_vaults(PROJECT_ID)) == 1000
    assert len(client.vault_ids_with_tags(PROJECT_ID, {"env": []})) == 1000
    assert [r.query["offset"] for r in vault_requests(emu, VAULTS)] == [["0"], ["1000"]]
    assert [r.json["offset"] for r in vault_requests(emu, TAG_QUERY)] == ["0", "1000"]


def test_a_full_page_is_never_taken_for_the_last_and_a_vault_seen_twice_is_listed_once(
    emu: Emulator, client: CbrClient
) -> None:
    for index in range(1002):
        emu.add_vault(vault_id(index))
    # A first page read before vault 0 was deleted from the front, so the list shifted by one before the
    # second page; its `count` counts only the page.
    first_page = {"vaults": [{"id": vault_id(index)} for index in range(1, 1001)], "count": 1000}
    emu.faults.append(Fault(method="GET", path_suffix="/vaults", status=200, body=first_page))

    vaults = client.list_vaults(PROJECT_ID)

    assert [vault.id for vault in vaults] == [vault_id(index) for index in range(1, 1002)]
    assert [request.query["offset"] for request in vault_requests(emu, VAULTS)] == [["0"], ["1000"]]


@pytest.mark.parametrize(
    "answer",
    [{"count": 3}, {"vaults": [{"name": "no id"}], "count": 1}, {"vaults": "none"}],
    ids=["no-vaults", "vault-without-id", "vaults-not-a-list"],
)
def test_an_answer_without_a_list_of_vaults_is_an_unexpected_answer(
    emu: Emulator, client: CbrClient, answer: dict[str, Any]
) -> None:
    emu.faults.append(Fault(method="GET", path_suffix="/vaults", status=200, body=answer))

    with pytest.raises(CbrError) as unexpected:
        client.list_vaults(PROJECT_ID)

    assert "unexpected answer to ListVault" in unexpected.value.info.message
    assert unexpected.value.info.retryable


def test_null_lists_are_read_as_empty(emu: Emulator, client: CbrClient) -> None:
    answer = {"resources": [{"resource_id": vault_id(0), "resource_name": None, "tags": None}]}
    emu.faults.append(Fault(method="POST", path_suffix="/action", status=200, body=answer))
    emu.faults.append(
        Fault(method="GET", path_suffix="/vaults", status=200, body={"vaults": None, "count": 0})
    )

    assert client.vault_ids_with_tags(PROJECT_ID, {"env": ["prod"]}) == [vault_id(0)]
    assert client.list_vaults(PROJECT_ID) == []


def test_a_throttled_listing_raises_instead_of_returning_part(emu: Emulator, client: CbrClient) -> None:
    emu.add_vault(vault_id(0))
    body = {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}
    emu.faults.append(Fault(method="GET", path_suffix="/vaults", status=429, body=body))

    with pytest.raises(CbrError) as throttled:
        client.list_vaults(PROJECT_ID)

    assert (throttled.value.info.kind, throttled.value.info.retryable) == ("throttled", True)


@pytest.mark.parametrize(
    ("tags", "named"),
    [
        ({}, "tags: give 1 to 10 keys, not 0"),
        ({f"k{n}": [] for n in range(11)}, "tags: give 1 to 10 keys, not 11"),
        ({"env": "prod"}, "tags['env']"),
        ({"env": ["a", "a"]}, "tags['env']"),
        ({"": ["a"]}, "tags['']"),
        ({"env": [str(n) for n in range(11)]}, "tags['env']"),
    ],
    ids=["no-keys", "eleven-keys", "string-not-list", "repeated-value", "empty-key", "eleven-values"],
)
def test_bad_tags_are_refused_by_name_before_anything_is_sent(
    emu: Emulator, client: CbrClient, tags: Any, named: str
) -> None:
    with pytest.raises(ValueError, match="tags") as refused:
        client.vault_ids_with_tags(PROJECT_ID, tags)

    assert str(refused.value).startswith(named)
    assert emu.requests == []


def test_the_tag_query_body_is_json_with_the_tags_as_given(emu: Emulator, client: CbrClient) -> None:
    emu.add_vault(vault_id(0), tags={"环境": "生产"})

    ids = client.vault_ids_with_tags(PROJECT_ID, {"环境": ("生产",)})

    assert ids == [vault_id(0)]
    (request,) = vault_requests(emu, TAG_QUERY)
    assert json.loads(request.body)["tags"] == [{"key": "环境", "values": ["生产"]}]
