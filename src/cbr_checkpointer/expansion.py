"""A selection's listed vaults → one whole-vault request each.

The one place a vault's request is built, whichever way it runs: inline in the invocation that listed
the selection (the fan-out rules), or after a trip through the request queue (the fan-out message's
parser). So a vault has the same key either way, and a retried trigger that lists and sends again
finds in the ledger the vaults it already did.
"""

from __future__ import annotations

from collections.abc import Iterable

from cbr_checkpointer.domain import BackupRequest, FieldError, Rejected, Selection, WorkItem
from cbr_checkpointer.field_paths import show
from cbr_checkpointer.idempotency_keys import derived_key, derived_name
from cbr_checkpointer.models import UUID_PATTERN


def expand_selection(selection: Selection, vault_ids: Iterable[str]) -> list[WorkItem]:
    """One whole-vault request per listed vault (each vault once, in the order listed).

    Each request is keyed from the selection's key, the vault's id and what the request asks for (its
    project, region and parameters: a fan-out message naming a selection's key can claim only the key
    of the very request it asks for), and gets the selection's parameters; without a name each gets
    the one derived from its own key. A vault id that is not a UUID (CBR lists none such) is Rejected
    rather than sent.
    """
    items: list[WorkItem] = []
    for vault_id in dict.fromkeys(vault_ids):
        key = derived_key(
            "vault",
            selection.idempotency_key,
            vault_id,
            content=[selection.project_id, selection.region, selection.parameters],
        )
        if not UUID_PATTERN.fullmatch(vault_id):
            items.append(
                Rejected(
                    idempotency_key=key,
                    trigger=selection.trigger,
                    errors=(FieldError("vault_id", f"must be a UUID, the vault listed is {show(vault_id)}"),),
                    payload={"select": selection.selector, "vault_id": show(vault_id)},
                    project_id=selection.project_id,
                )
            )
            continue
        parameters = {"name": derived_name(key)} | selection.parameters
        items.append(
            BackupRequest(
                idempotency_key=key,
                project_id=selection.project_id,
                body={"checkpoint": {"vault_id": vault_id, "parameters": parameters}},
                trigger=selection.trigger,
                dry_run=selection.dry_run,
                region=selection.region,
            )
        )
    return items
