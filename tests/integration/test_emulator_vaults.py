"""The emulator's vaults (ListVault, the tag query) and its create rate limit, driven by the official SDK."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from huaweicloudsdkcbr.v1 import (
    CbrClient,
    CreateCheckpointRequest,
    ListVaultRequest,
    ShowVaultResourceInstancesRequest,
    TagsReq,
    VaultBackup,
    VaultBackupReq,
    VaultResourceInstancesReq,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServiceResponseException

from cbr_emulator import Emulator, Fault, RateLimit

pytestmark = pytest.mark.integration

PROJECT_ID = "0b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
OTHER_PROJECT_ID = "ffffffffffffffffffffffffffffffff"
AK, SK = "AKEXAMPLE", "SKEXAMPLE"
SERVER_ID = "94eba8b2-acc9-4d82-badc-127144cc5526"
VOLUME_ID = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
TAG_QUERY = f"/v3/{PROJECT_ID}/vault/resource_instances/action"

# The tagged fleet: name -> tags.
TAGGED: dict[str, dict[str, str]] = {
    "web": {"env": "prod", "team": "web"},
    "db": {"env": "prod", "team": "db"},
    "dev": {"env": "dev"},
    "bare": {},
    "stage": {"env": "staging-prod"},
}


def vault_id(index: int) -> str:
    return str(uuid.UUID(int=index + 1))


class ManualClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(project_id=PROJECT_ID, ak=AK, sk=SK) as emulator:
        yield emulator


def sdk_client(emulator: Emulator) -> CbrClient:
    return (
        CbrClient.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT_ID))
        .with_endpoints([emulator.base_url])
        .build()
    )


def token_of(emulator: Emulator) -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "ops", "password": "pw", "domain": {"name": "acme"}}},
            },
            "scope": {"project": {"id": PROJECT_ID}},
        }
    }
    answer = httpx.post(f"{emulator.base_url}/v3/auth/tokens", json=body, timeout=5)
    assert answer.status_code == 201
    return answer.headers["X-Subject-Token"]


def tag_query(emulator: Emulator, body: Any) -> httpx.Response:
    """The tag query with any body at all, token-authenticated (the SDK would not send a malformed one)."""
    headers = {"X-Auth-Token": token_of(emulator)}
    return httpx.post(f"{emulator.base_url}{TAG_QUERY}", json=body, headers=headers, timeout=5)


def seed_tagged(emulator: Emulator) -> dict[str, str]:
    """The tagged fleet; returns name -> vault id."""
    ids: dict[str, str] = {}
    for index, (name, tags) in enumerate(TAGGED.items()):
        ids[name] = vault_id(index)
        emulator.add_vault(ids[name], name=name, tags=tags)
    return ids


# -- ListVault ----------------------------------------------------------------------------------------


def test_list_vault_pages_to_the_end_with_the_count_on_every_page(emulator: Emulator) -> None:
    seeded = [vault_id(index) for index in range(25)]
    for vault in seeded:
        emulator.add_vault(vault)
    client = sdk_client(emulator)

    pages = [client.list_vault(ListVaultRequest(limit=10, offset=offset)) for offset in (0, 10, 20, 30)]

    assert [len(page.vaults) for page in pages] == [10, 10, 5, 0]
    assert {page.count for page in pages} == {25}
    assert [(page.limit, page.offset) for page in pages] == [(10, 0), (10, 10), (10, 20), (10, 30)]
    assert [vault.id for page in pages for vault in page.vaults] == seeded


def test_list_vault_without_limit_answers_up_to_1000(emulator: Emulator) -> None:
    for index in range(1001):
        emulator.add_vault(vault_id(index))

    answer = sdk_client(emulator).list_vault(ListVaultRequest())

    assert (len(answer.vaults), answer.count, answer.limit, answer.offset) == (1000, 1001, 1000, 0)


def test_list_vault_filters_by_policy_object_type_name_status_id_and_resource(emulator: Emulator) -> None:
    emulator.add_vault(vault_id(0), [{"id": SERVER_ID}], name="web", policy_ids=["p-daily", "p-weekly"])
    emulator.add_vault(
        vault_id(1), [{"id": VOLUME_ID}], name="data", object_type="disk", policy_ids=["p-daily"]
    )
    emulator.add_vault(vault_id(2), name="files", object_type="turbo", status="frozen")
    emulator.add_vault(vault_id(3), name="elsewhere", policy_ids=["p-daily"], project_id=OTHER_PROJECT_ID)
    client = sdk_client(emulator)

    def ids(**filters: Any) -> list[str]:
        return [vault.id for vault in client.list_vault(ListVaultRequest(**filters)).vaults]

    assert ids() == [vault_id(0), vault_id(1), vault_id(2)]
    assert ids(policy_id="p-daily") == [vault_id(0), vault_id(1)]
    assert ids(policy_id="p-weekly") == [vault_id(0)]
    assert ids(policy_id="p-none") == []
    assert ids(object_type="disk") == [vault_id(1)]
    assert ids(policy_id="p-daily", object_type="server") == [vault_id(0)]
    assert ids(name="files") == [vault_id(2)]
    assert ids(status="frozen") == [vault_id(2)]
    assert ids(id=[vault_id(2), vault_id(0)]) == [vault_id(0), vault_id(2)]
    assert ids(resource_ids=f"{VOLUME_ID},{SERVER_ID}") == [vault_id(0), vault_id(1)]


def test_list_vault_shows_the_vault_as_seeded(emulator: Emulator) -> None:
    emulator.add_vault(
        vault_id(0),
        [{"id": VOLUME_ID, "name": "evs-1"}],
        name="data",
        object_type="disk",
        tags={"env": "prod"},
    )

    (vault,) = sdk_client(emulator).list_vault(ListVaultRequest()).vaults

    assert (vault.id, vault.name, vault.project_id) == (vault_id(0), "data", PROJECT_ID)
    assert (vault.billing.object_type, vault.billing.status) == ("disk", "available")
    assert [(r.id, r.name, r.type) for r in vault.resources] == [(VOLUME_ID, "evs-1", "OS::Cinder::Volume")]
    assert [(tag.key, tag.value) for tag in vault.tags] == [("env", "prod")]


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"object_type": "tape"}, "object_type must be one of server, disk"),
        ({"policy_ids": "p-daily"}, "policy_ids must be a list"),
        ({"tags": {"env": "a/b"}}, "tag 'env'='a/b' is not one CBR would store"),
        ({"tags": {"": "x"}}, "tag ''='x'"),
    ],
    ids=["object-type", "policy-string", "tag-value", "tag-key"],
)
def test_add_vault_refuses_what_cbr_would_not_store(options: dict[str, Any], complaint: str) -> None:
    emulator = Emulator()

    with pytest.raises(ValueError, match="^" + re.escape(complaint)):
        emulator.add_vault(vault_id(0), **options)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ListVaultRequest(limit=0), "limit"),
        (ListVaultRequest(limit=1001), "limit"),
        (ListVaultRequest(offset=-1), "offset"),
        (ListVaultRequest(object_type="tape"), "object_type"),
    ],
    ids=["limit-0", "limit-1001", "offset-negative", "object-type"],
)
def test_invalid_list_vault_queries_name_the_parameter(
    emulator: Emulator, request_: ListVaultRequest, field: str
) -> None:
    with pytest.raises(ClientRequestException) as refused:
        sdk_client(emulator).list_vault(request_)

    assert (refused.value.status_code, refused.value.error_code) == (400, "BackupService.9900")
    assert refused.value.error_msg.startswith(f"Invalid parameter: {field} ")


# -- the tag query ------------------------------------------------------------------------------------


def tags(*conditions: tuple[str, list[str]]) -> list[TagsReq]:
    return [TagsReq(key=key, values=values) for key, values in conditions]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Values are OR-ed within a key.
        ({"tags": tags(("env", ["prod"]))}, ["web", "db"]),
        ({"tags": tags(("env", ["prod", "dev"]))}, ["web", "db", "dev"]),
        # Keys are AND-ed in `tags`; an empty list of values means any value.
        ({"tags": tags(("env", ["prod"]), ("team", ["web"]))}, ["web"]),
        ({"tags": tags(("team", []))}, ["web", "db"]),
        # A leading `*` matches values containing the rest.
        ({"tags": tags(("env", ["*prod"]))}, ["web", "db", "stage"]),
        # Keys are OR-ed in `tags_any`.
        ({"tags_any": tags(("team", ["db"]), ("env", ["dev"]))}, ["db", "dev"]),
        # `not_tags` excludes what carries all of them, `not_tags_any` what carries any of them.
        ({"not_tags": tags(("env", ["prod"]), ("team", ["web"]))}, ["db", "dev", "bare", "stage"]),
        ({"not_tags_any": tags(("env", ["prod"]), ("team", []))}, ["dev", "bare", "stage"]),
        # Every list given must hold.
        ({"tags": tags(("env", [])), "not_tags": tags(("team", ["web"]))}, ["db", "dev", "stage"]),
        # `without_any_tag` overrides the tag lists.
        ({"without_any_tag": True, "tags": tags(("env", ["prod"]))}, ["bare"]),
        # No condition: every vault.
        ({}, ["web", "db", "dev", "bare", "stage"]),
    ],
    ids=[
        "one-value",
        "values-or",
        "keys-and",
        "any-value",
        "fuzzy",
        "tags-any",
        "not-tags",
        "not-tags-any",
        "combined",
        "without-any-tag",
        "everything",
    ],
)
def test_the_tag_query_follows_the_documented_semantics(
    emulator: Emulator, query: dict[str, Any], expected: list[str]
) -> None:
    ids = seed_tagged(emulator)
    client = sdk_client(emulator)

    filtered = client.show_vault_resource_instances(
        ShowVaultResourceInstancesRequest(body=VaultResourceInstancesReq(action="filter", **query))
    )
    counted = client.show_vault_resource_instances(
        ShowVaultResourceInstancesRequest(body=VaultResourceInstancesReq(action="count", **query))
    )

    assert [resource.resource_id for resource in filtered.resources] == [ids[name] for name in expected]
    assert filtered.total_count == counted.total_count == len(expected)
    assert counted.resources is None


def test_the_tag_query_answers_each_vault_with_its_name_tags_and_detail(emulator: Emulator) -> None:
    ids = seed_tagged(emulator)

    (web,) = (
        sdk_client(emulator)
        .show_vault_resource_instances(
            ShowVaultResourceInstancesRequest(
                body=VaultResourceInstancesReq(action="filter", tags=tags(("team", ["web"])))
            )
        )
        .resources
    )

    assert (web.resource_id, web.resource_name) == (ids["web"], "web")
    assert {(tag.key, tag.value) for tag in web.tags} == {("env", "prod"), ("team", "web")}
    assert web.resource_detail.vault.id == ids["web"]


def test_the_tag_query_matches_the_vault_name_and_object_type(emulator: Emulator) -> None:
    emulator.add_vault(vault_id(0), name="Web-Prod", tags={"env": "prod"})
    emulator.add_vault(vault_id(1), name="db-prod", object_type="disk", tags={"env": "prod"})
    emulator.add_vault(vault_id(2), name="web-dev", object_type="disk", tags={"env": "dev"})
    client = sdk_client(emulator)

    def ids(**query: Any) -> list[str]:
        body = VaultResourceInstancesReq(action="filter", **query)
        answer = client.show_vault_resource_instances(ShowVaultResourceInstancesRequest(body=body))
        return [resource.resource_id for resource in answer.resources]

    assert ids(matches=[{"key": "resource_name", "value": "web"}]) == [vault_id(0), vault_id(2)]
    assert ids(object_type="disk", tags=tags(("env", ["prod"]))) == [vault_id(1)]
    assert ids(cloud_type="hybrid") == []


def test_the_tag_query_pages_with_string_limit_and_offset_to_the_end(emulator: Emulator) -> None:
    seeded = [vault_id(index) for index in range(23)]
    for index, vault in enumerate(seeded):
        emulator.add_vault(vault, tags={"fleet": "a" if index % 2 == 0 else "b"})
    emulator.add_vault(vault_id(99))  # untagged: never listed
    client = sdk_client(emulator)
    condition = tags(("fleet", []))

    pages = [
        client.show_vault_resource_instances(
            ShowVaultResourceInstancesRequest(
                body=VaultResourceInstancesReq(
                    action="filter", tags=condition, limit="10", offset=str(offset)
                )
            )
        )
        for offset in (0, 10, 20, 30)
    ]

    assert [len(page.resources) for page in pages] == [10, 10, 3, 0]
    assert {page.total_count for page in pages} == {23}
    assert [resource.resource_id for page in pages for resource in page.resources] == seeded


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "list"}, "action"),
        ({"tags": [{"key": "env", "values": []}]}, "action"),
        ({"action": "filter", "limit": 10}, "limit"),
        ({"action": "filter", "offset": 0}, "offset"),
        ({"action": "filter", "limit": "0"}, "limit"),
        ({"action": "filter", "limit": "1001"}, "limit"),
        ({"action": "filter", "tags": []}, "tags"),
        ({"action": "filter", "tags": [{"key": "env", "values": []}] * 2}, "tags"),
        ({"action": "filter", "tags": [{"key": "", "values": []}]}, "tags[0].key"),
        ({"action": "filter", "tags": [{"key": "env"}]}, "tags[0].values"),
        ({"action": "filter", "tags": [{"key": "env", "values": ["a", "a"]}]}, "tags[0].values"),
        ({"action": "filter", "tags_any": [{"key": "env", "values": ["*"]}]}, "tags_any[0].values[0]"),
        ({"action": "filter", "tags": [{"key": f"k{n}", "values": []} for n in range(11)]}, "tags"),
        ({"action": "filter", "tags": [{"key": "env", "values": [], "value": "x"}]}, "tags[0].value"),
        (
            {"action": "filter", "sys_tags": [{"key": "_sys_enterprise_project_id", "values": ["0"]}]},
            "sys_tags",
        ),
        ({"action": "filter", "vault_id": "x"}, "vault_id"),
    ],
    ids=[
        "action-unknown",
        "action-missing",
        "limit-number",
        "offset-number",
        "limit-0",
        "limit-1001",
        "tags-empty",
        "tags-repeated-key",
        "key-empty",
        "values-missing",
        "values-repeated",
        "star-alone",
        "eleven-keys",
        "condition-unknown-field",
        "sys-tags",
        "unknown-field",
    ],
)
def test_invalid_tag_queries_name_the_field(emulator: Emulator, body: dict[str, Any], field: str) -> None:
    answer = tag_query(emulator, body)

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "BackupService.9900"
    assert answer.json()["error_msg"].startswith(f"Invalid parameter: {field} ")


# -- the create rate limit ----------------------------------------------------------------------------


CREATED = "created"
THROTTLED = "429 APIGW.0308"


def create(client: CbrClient, vault: str) -> str:
    """One create through the SDK (which never retries a POST on 429): CREATED, or "<status> <code>"."""
    try:
        client.create_checkpoint(
            CreateCheckpointRequest(body=VaultBackupReq(checkpoint=VaultBackup(vault_id=vault)))
        )
    except ServiceResponseException as refused:
        return f"{refused.status_code} {refused.error_code}"
    return CREATED


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limited(clock: ManualClock) -> Iterator[Emulator]:
    """Two creates a second, three back to back, on a clock the test moves."""
    with Emulator(
        project_id=PROJECT_ID, ak=AK, sk=SK, create_rate_limit=RateLimit(2, 3), clock=clock
    ) as emulator:
        emulator.add_vault(vault_id(0), [{"id": SERVER_ID}])
        yield emulator


def test_creates_over_the_rate_get_429_apigw_0308(limited: Emulator, clock: ManualClock) -> None:
    client = sdk_client(limited)

    burst = [create(client, vault_id(0)) for _ in range(5)]
    clock.advance(0.5)  # one token back
    after_half_a_second = [create(client, vault_id(0)) for _ in range(2)]
    clock.advance(60)  # refilled, but never above the burst
    after_a_minute = [create(client, vault_id(0)) for _ in range(4)]

    assert burst == [CREATED] * 3 + [THROTTLED] * 2
    assert after_half_a_second == [CREATED, THROTTLED]
    assert after_a_minute == [CREATED] * 3 + [THROTTLED]
    assert limited.throttled_creates == 4
    assert len(limited.created) == 7
    assert [request.status for request in limited.requests].count(429) == 4


def test_a_throttled_create_carries_the_gateway_shape_and_no_retry_after(limited: Emulator) -> None:
    token = token_of(limited)
    headers = {"X-Auth-Token": token}
    url = f"{limited.base_url}/v3/{PROJECT_ID}/checkpoints"
    body = {"checkpoint": {"vault_id": vault_id(0)}}

    answers = [httpx.post(url, json=body, headers=headers, timeout=5) for _ in range(4)]

    throttled = answers[-1]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert throttled.json() == {
        "error_code": "APIGW.0308",
        "error_msg": (
            "The throttling threshold has been reached: policy user over ratelimit,limit:2,time:1 second"
        ),
        "request_id": throttled.headers["X-Request-Id"],
    }
    assert "retry-after" not in throttled.headers


def test_retry_after_says_when_the_next_token_comes(clock: ManualClock) -> None:
    limit = RateLimit(0.25, 1, retry_after=True)
    with Emulator(project_id=PROJECT_ID, ak=AK, sk=SK, create_rate_limit=limit, clock=clock) as emulator:
        emulator.add_vault(vault_id(0))
        headers = {"X-Auth-Token": token_of(emulator)}
        url = f"{emulator.base_url}/v3/{PROJECT_ID}/checkpoints"
        body = {"checkpoint": {"vault_id": vault_id(0)}}

        first = httpx.post(url, json=body, headers=headers, timeout=5)
        clock.advance(1.5)
        second = httpx.post(url, json=body, headers=headers, timeout=5)

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "3"  # 2.5 s to the next token, rounded up


def test_only_authenticated_creates_take_a_token(limited: Emulator) -> None:
    client = sdk_client(limited)
    url = f"{limited.base_url}/v3/{PROJECT_ID}/checkpoints"

    unsigned = httpx.post(url, json={"checkpoint": {"vault_id": vault_id(0)}}, timeout=5)
    limited.faults.append(Fault(status=500, body={"error_code": "BackupService.9910", "error_msg": "x"}))
    faulted = create(client, vault_id(0))
    reads = [client.list_vault(ListVaultRequest()).count for _ in range(5)]
    creates = [create(client, vault_id(0)) for _ in range(4)]

    assert (unsigned.status_code, faulted) == (401, "500 BackupService.9910")
    assert reads == [1] * 5
    assert creates == [CREATED] * 3 + [THROTTLED]


def test_the_limit_can_be_changed_lifted_and_reset(limited: Emulator, clock: ManualClock) -> None:
    client = sdk_client(limited)
    assert [create(client, vault_id(0)) for _ in range(4)] == [CREATED] * 3 + [THROTTLED]

    limited.limit_creates(None)
    unlimited = [create(client, vault_id(0)) for _ in range(6)]
    limited.limit_creates(RateLimit(2, 1))
    one_at_a_time = [create(client, vault_id(0)) for _ in range(2)]
    limited.reset()
    counters_after_reset = (limited.throttled_creates, len(limited.created))
    after_reset = [create(client, vault_id(0)) for _ in range(4)]

    assert unlimited == [CREATED] * 6
    assert one_at_a_time == [CREATED, THROTTLED]
    assert counters_after_reset == (0, 0)
    assert after_reset == [CREATED] * 3 + [THROTTLED]  # the limit the emulator was made with, bucket full
