"""RegionalCbr: every call goes to the client of the region it names, made once and kept, within a cap.

Real CbrClients over in-memory transports, one per region: no sockets.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from tests.fakes import AnsweringTransport

from cbr_checkpointer.cbr import AkSkCredentials, CbrClient, CbrError, RegionalCbr, StaticCredentials
from cbr_checkpointer.domain import ErrorInfo

PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
CHECKPOINT = "8b0851a8-adf3-4f4c-a914-dead08bf9664"
BODY = {"checkpoint": {"vault_id": VAULT, "parameters": {"name": "nightly"}}}
CREDENTIALS = StaticCredentials(AkSkCredentials("AK", SecretStr("SK")))
KNOWN = frozenset({"cn-north-4", "ap-southeast-1", "eu-west-0", "la-south-2"})


def _answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/vaults"):
        return httpx.Response(200, json={"vaults": []})
    if request.url.path.endswith("/resource_instances/action"):
        return httpx.Response(200, json={"resources": [{"resource_id": VAULT}]})
    if request.url.path.endswith("/backups"):
        return httpx.Response(200, json={"backups": [], "count": 0})
    if request.url.path.endswith("/operation-logs"):
        return httpx.Response(200, json={"operation_logs": [], "count": 0})
    checkpoint = {"id": CHECKPOINT, "project_id": PROJECT, "status": "protecting", "created_at": "2026-11-27"}
    return httpx.Response(200, json={"checkpoint": checkpoint})


class World:
    """CBR endpoints by region (`https://cbr.<region>.test`); `hosts` counts the calls each host took,
    `connected` the clients made per region."""

    def __init__(self, *, max_clients: int = 8) -> None:
        self.hosts: Counter[str] = Counter()
        self.connected: Counter[str] = Counter()
        self.hold: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.cbr = RegionalCbr(
            self._client("https://cbr.configured.test"),
            default_region="cn-north-4",
            connect=self._connect,
            max_clients=max_clients,
        )

    def _client(self, endpoint: str) -> CbrClient:
        def handle(request: httpx.Request) -> httpx.Response:
            with self.lock:
                self.hosts[request.url.host] += 1
            region = request.url.host.split(".")[1]
            if region in self.hold:
                self.entered[region].set()
                assert self.hold[region].wait(10)
            return _answer(request)

        return CbrClient(
            endpoint, CREDENTIALS, iam_endpoint="https://iam.test", transport=AnsweringTransport(handle)
        )

    def _connect(self, region: str) -> CbrClient:
        if region not in KNOWN:
            raise CbrError(
                ErrorInfo("validation", f"region {region!r} is not reachable", code="UnknownRegion")
            )
        self.connected[region] += 1
        return self._client(f"https://cbr.{region}.test")


def test_calls_without_a_region_or_in_the_configured_one_use_the_configured_endpoint() -> None:
    world = World()

    world.cbr.create_checkpoint(PROJECT, BODY, region=None)
    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="cn-north-4")

    assert world.hosts == {"cbr.configured.test": 2}
    assert world.connected == {}


def test_every_call_goes_to_the_region_it_names_and_each_region_gets_one_client() -> None:
    world = World()

    world.cbr.create_checkpoint(PROJECT, BODY, region="ap-southeast-1")
    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="ap-southeast-1")
    world.cbr.list_backups(PROJECT, region="eu-west-0", checkpoint_id=CHECKPOINT)
    world.cbr.list_operation_logs(PROJECT, region="eu-west-0", vault_id=VAULT)
    world.cbr.create_checkpoint(PROJECT, BODY, region=None)

    assert world.hosts == {"cbr.ap-southeast-1.test": 2, "cbr.eu-west-0.test": 2, "cbr.configured.test": 1}
    assert world.connected == {"ap-southeast-1": 1, "eu-west-0": 1}


def test_vault_listings_go_to_the_region_named_too() -> None:
    world = World()

    vaults = world.cbr.list_vaults(PROJECT, region="la-south-2", object_type="server")
    tagged = world.cbr.vault_ids_with_tags(PROJECT, {"backup": ["nightly"]}, region="la-south-2")

    assert (vaults, tagged) == ([], [VAULT])
    assert world.hosts == {"cbr.la-south-2.test": 2}


def test_a_region_without_an_endpoint_is_a_permanent_error_and_nothing_is_sent() -> None:
    world = World()

    with pytest.raises(CbrError) as raised:
        world.cbr.create_checkpoint(PROJECT, BODY, region="xx-nowhere-1")

    assert (raised.value.info.code, raised.value.info.retryable) == ("UnknownRegion", False)
    assert world.hosts == {}


def test_past_the_cap_the_least_recently_used_client_is_closed_and_made_again_when_named() -> None:
    world = World(max_clients=2)

    for region in ("ap-southeast-1", "eu-west-0", "ap-southeast-1", "la-south-2"):
        world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region=region)
    # eu-west-0 was the least recently used when la-south-2 came: it alone was dropped
    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="ap-southeast-1")
    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="eu-west-0")

    assert world.connected == {"ap-southeast-1": 1, "eu-west-0": 2, "la-south-2": 1}


def test_a_client_in_use_is_never_closed_the_cap_is_kept_again_once_calls_end() -> None:
    world = World(max_clients=1)
    world.hold["ap-southeast-1"] = threading.Event()
    world.entered["ap-southeast-1"] = threading.Event()
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="ap-southeast-1")
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=slow_call)
    thread.start()
    assert world.entered["ap-southeast-1"].wait(10)
    # Past the cap while ap-southeast-1 is in use: eu-west-0 is made, ap-southeast-1 kept
    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="eu-west-0")
    world.hold["ap-southeast-1"].set()
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []

    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="la-south-2")  # both others idle: both go
    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="la-south-2")
    world.cbr.show_checkpoint(PROJECT, CHECKPOINT, region="ap-southeast-1")

    assert world.connected == {"ap-southeast-1": 2, "eu-west-0": 1, "la-south-2": 1}
    assert world.hosts["cbr.ap-southeast-1.test"] == 2
