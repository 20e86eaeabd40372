"""The Cbr port for any region: each call goes to the CBR client of the region it names.

CBR's gateway limits calls per region, and an IAM token is scoped to one region's project, so each
region gets a client of its own (its connection pool, its limiter, its token cache), made on first
use and kept for the execution environment.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from cbr_checkpointer.cbr.client import MAX_VAULT_PAGES, CbrClient
from cbr_checkpointer.models import CheckpointCreate, Vault
from cbr_checkpointer.values import value

# Clients of other regions than the configured one kept at once. Past it, the least recently used
# one that no call is using is closed (its region gets a new client when next named); when every
# one is in use, a call still gets its client and the count shrinks back as calls end.
MAX_REGIONAL_CLIENTS = 8


@value(frozen=False)
class _Regional:
    client: CbrClient
    in_use: int = 0


class RegionalCbr:
    """Routes every call by its `region`: None or `default_region` to `default`, any other region to
    the client `connect(region)` makes (which raises CbrError for a region it cannot reach)."""

    def __init__(
        self,
        default: CbrClient,
        *,
        default_region: str | None,
        connect: Callable[[str], CbrClient],
        max_clients: int = MAX_REGIONAL_CLIENTS,
    ) -> None:
        self._default = default
        self._default_region = default_region
        self._connect = connect
        self._max_clients = max_clients
        self._clients: OrderedDict[str, _Regional] = OrderedDict()
        self._lock = threading.Lock()

    def create_checkpoint(
        self, project_id: str, body: Mapping[str, Any], *, region: str | None, time_left: float | None = None
    ) -> CheckpointCreate:
        with self._client(region) as cbr:
            return cbr.create_checkpoint(project_id, body, time_left=time_left)

    def show_checkpoint(self, project_id: str, checkpoint_id: str, *, region: str | None) -> CheckpointCreate:
        with self._client(region) as cbr:
            return cbr.show_checkpoint(project_id, checkpoint_id)

    def list_backups(self, project_id: str, *, region: str | None, **filters: str) -> list[dict[str, Any]]:
        with self._client(region) as cbr:
            return cbr.list_backups(project_id, **filters)

    def list_operation_logs(
        self, project_id: str, *, region: str | None, max_pages: int = 5, **filters: str
    ) -> list[dict[str, Any]]:
        with self._client(region) as cbr:
            return cbr.list_operation_logs(project_id, max_pages=max_pages, **filters)

    def list_vaults(
        self,
        project_id: str,
        *,
        region: str | None,
        policy_id: str | None = None,
        object_type: str | None = None,
        max_pages: int = MAX_VAULT_PAGES,
    ) -> list[Vault]:
        with self._client(region) as cbr:
            return cbr.list_vaults(
                project_id, policy_id=policy_id, object_type=object_type, max_pages=max_pages
            )

    def vault_ids_with_tags(
        self,
        project_id: str,
        tags: Mapping[str, Sequence[str]],
        *,
        region: str | None,
        max_pages: int = MAX_VAULT_PAGES,
    ) -> list[str]:
        with self._client(region) as cbr:
            return cbr.vault_ids_with_tags(project_id, tags, max_pages=max_pages)

    def open(self) -> None:
        """Make the configured region's connection pool now; other regions' are made when first named."""
        self._default.open()

    def close(self) -> None:
        with self._lock:
            regional = [entry.client for entry in self._clients.values()]
            self._clients.clear()
        for client in (self._default, *regional):
            client.close()

    @contextmanager
    def _client(self, region: str | None) -> Iterator[CbrClient]:
        if region is None or region == self._default_region:
            yield self._default
            return
        with self._lock:
            entry = self._clients.get(region)
            if entry is None:
                entry = self._clients[region] = _Regional(self._connect(region))
            self._clients.move_to_end(region)
            entry.in_use += 1
            unused = self._forget_unused()
        for client in unused:
            client.close()
        try:
            yield entry.client
        finally:
            with self._lock:
                entry.in_use -= 1

    def _forget_unused(self) -> list[CbrClient]:
        """Past the cap, the least recently used clients that no call is using (the caller closes them)."""
        forgotten: list[CbrClient] = []
        for region in list(self._clients):
            if len(self._clients) <= self._max_clients:
                break
            if self._clients[region].in_use == 0:
                forgotten.append(self._clients.pop(region).client)
        return forgotten
