"""What the commands share: exit codes, reading JSON files, the work items a trigger holds, and how a
person sees one, and the size a transport can carry."""

# ruff: noqa: PLC0415 - the function's modules are imported by the commands that use them, when they run

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cbr_checkpointer.values import value

if TYPE_CHECKING:
    from cbr_checkpointer.triggers import RequestDefaults, RequestItem

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Stand-ins for what only the deployed function's configuration knows. Defaults are not validated
# by `triggers`, so a request that leaves these to the configuration passes, and is shown as such.
DEPLOYMENT_PROJECT_ID = "$HUAWEICLOUD_SDK_PROJECT_ID"
DEPLOYMENT_VAULT_ID = "00000000-0000-4000-8000-000000000000"
LAMBDA_REQUEST_ID = "<lambda-request-id>"
SQS_MESSAGE_ID = "<MessageId>"
TRIGGER_NAMES = {
    "schedule": "Scheduler input",
    "direct": "direct invoke",
    "rule": "scheduled rule",
    "eventbridge": "EventBridge event",
    "sqs": "SQS batch",
}
# The envelope's rule for project_id (triggers), applied to --project-id too.
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# What carries each trigger kind to the function. Each carries at most 256 KiB (the triggers' limit):
# an SQS message body, the payload of an asynchronous Lambda invoke (Scheduler and scheduled rules
# invoke so), an EventBridge entry.
TRANSPORT_OF_KIND = {
    "schedule": "an asynchronous Lambda invoke payload",
    "direct": "an asynchronous Lambda invoke payload or an SQS message body",
    "rule": "an EventBridge entry",
    "eventbridge": "an EventBridge entry",
    "sqs": "an SQS message body",
}


class CommandError(Exception):
    """The command cannot do its job (exit 2); the message says why and what to do."""


def project_id_argument(value: str) -> str:
    """argparse type of --project-id."""
    if not _PROJECT_ID.fullmatch(value):
        raise argparse.ArgumentTypeError("must be a project id: 1-64 letters, digits, '_' or '-'")
    return value


def read_json(path: str) -> tuple[str, Any]:
    """The text of a JSON file (`-` is stdin) and the document it holds."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: cannot read: {error}") from None
    try:
        return text, json.loads(text)
    except RecursionError:
        raise CommandError(f"{path}: not usable: the JSON is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise CommandError(
            f"{path}: not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


def too_large(text: str, carried_as: str, what: str) -> str | None:
    """A warning when `text` is more than `carried_as` can carry, else None."""
    from cbr_checkpointer.triggers.limits import MAX_DOCUMENT_BYTES

    size = len(text.encode("utf-8"))
    if size <= MAX_DOCUMENT_BYTES:
        return None
    return (
        f"warning: {what} is {size:,} bytes, more than {carried_as} can carry "
        f"({MAX_DOCUMENT_BYTES:,} bytes): it would be refused before it reached the function"
    )


@value
class Group:
    """The work items of one invocation, or of one record of an SQS batch (`label` names the record)."""

    label: str | None
    items: list[RequestItem]


def work_items(document: Any, defaults: RequestDefaults, *, request_id: str, now: datetime) -> list[Group]:
    """The work items the function would make of this trigger, with the function's own parser."""
    from cbr_checkpointer.triggers import is_sqs_batch, parse_invocation, parse_sqs_record

    if isinstance(document, Mapping) and is_sqs_batch(document):
        groups = []
        for index, record in enumerate(document["Records"]):
            message_id = record.get("messageId")
            label = f"Records[{index}]" + (
                f" (messageId {message_id})" if isinstance(message_id, str) else ""
            )
            groups.append(Group(label, parse_sqs_record(record, defaults=defaults)))
        return groups
    return [Group(None, parse_invocation(document, request_id=request_id, now=now, defaults=defaults))]


def defaults_for_checking(project_id: str | None, default_vault_id: str | None) -> RequestDefaults:
    from cbr_checkpointer.triggers import RequestDefaults

    allowed = os.environ.get("ALLOWED_PROJECT_IDS")
    return RequestDefaults(
        project_id=project_id or os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID") or DEPLOYMENT_PROJECT_ID,
        default_vault_id=default_vault_id or os.environ.get("DEFAULT_VAULT_ID") or DEPLOYMENT_VAULT_ID,
        # The deployment's own lists are not known here: any project and region unless told.
        allowed_project_ids=frozenset(filter(None, allowed.split(","))) if allowed else None,
        regions=None,
    )


def item_lines(item: RequestItem, indent: str) -> list[str]:
    """One work item as a person reads it: what would be sent, or each error with its field."""
    from cbr_checkpointer.domain import Rejected, Selection
    from cbr_checkpointer.idempotency_keys import derived_name  # the name a request without one gets

    if isinstance(item, Rejected):
        lines = [f"{indent}rejected  key={item.idempotency_key}"]
        lines += [f"{indent}  {error.field}: {error.message}" for error in item.errors]
        return lines
    if isinstance(item, Selection):
        selection = [
            f"{indent}ok        key={item.idempotency_key}",
            f"project={item.project_id}",
            f"select={json.dumps(item.selector, ensure_ascii=False)}",
        ]
        return ["  ".join(selection + (["(dry run)"] if item.dry_run else []))]
    vault = "$DEFAULT_VAULT_ID" if item.vault_id == DEPLOYMENT_VAULT_ID else item.vault_id
    parts = [
        f"{indent}ok        key={item.idempotency_key}",
        f"project={item.project_id}",
        f"vault={vault}",
        f"name={item.name}"
        + (" (derived from the key)" if item.name == derived_name(item.idempotency_key) else ""),
    ]
    if item.dry_run:
        parts.append("(dry run)")
    return ["  ".join(parts)]
