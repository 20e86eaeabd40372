"""`validate FILE...`: check request and trigger files against the contract, as the function parses them."""

# ruff: noqa: PLC0415 - the function's modules are imported by the commands that use them, when they run

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from cbr_checkpointer.cli.common import (
    DEPLOYMENT_PROJECT_ID,
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    LAMBDA_REQUEST_ID,
    TRANSPORT_OF_KIND,
    TRIGGER_NAMES,
    CommandError,
    Group,
    defaults_for_checking,
    item_lines,
    project_id_argument,
    read_json,
    too_large,
    work_items,
)


def add_parser(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check request or trigger files against the contract",
        description="Check request or trigger files (Scheduler input, native/shorthand/many requests, "
        "scheduled rule, EventBridge event, SQS batch) exactly as the function parses them, and print "
        "each error with the path of its field. Warns when a file (or a record's body) is larger than "
        "the transport it is meant for can carry. Without --project-id or HUAWEICLOUD_SDK_PROJECT_ID, a "
        "request may leave project_id to the function's configuration; likewise a bare scheduled rule "
        "and DEFAULT_VAULT_ID.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="JSON file; - reads stdin")
    validate.add_argument(
        "--project-id", type=project_id_argument, help="default project id (else $HUAWEICLOUD_SDK_PROJECT_ID)"
    )
    validate.add_argument(
        "--default-vault-id", help="vault of a bare scheduled rule (else $DEFAULT_VAULT_ID)"
    )
    validate.set_defaults(command=command)


def size_warnings(path: str, text: str, document: Any, groups: list[Group]) -> list[str]:
    """What is too large for the way it reaches the function: each record's body of an SQS batch (the
    message that was sent), else the whole file."""
    kinds = [item.trigger.kind for group in groups for item in group.items]
    if not kinds:
        return []
    if kinds[0] == "sqs":
        warnings = []
        for group, record in zip(groups, document["Records"], strict=True):
            body = record.get("body")
            if isinstance(body, str):
                warning = too_large(body, TRANSPORT_OF_KIND["sqs"], f"{path}: {group.label} body")
                if warning is not None:
                    warnings.append(warning)
        return warnings
    warning = too_large(text, TRANSPORT_OF_KIND[kinds[0]], path)
    return [] if warning is None else [warning]


def command(arguments: argparse.Namespace, prog: str) -> int:
    from cbr_checkpointer.domain import Rejected

    defaults = defaults_for_checking(arguments.project_id, arguments.default_vault_id)
    worst = EXIT_OK
    left_to_deployment = False
    for path in arguments.files:
        try:
            text, document = read_json(path)
        except CommandError as error:
            print(f"{prog}: {error}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        groups = work_items(document, defaults, request_id=LAMBDA_REQUEST_ID, now=datetime.now(UTC))
        items = [item for group in groups for item in group.items]
        rejected = sum(isinstance(item, Rejected) for item in items)
        kind = TRIGGER_NAMES[items[0].trigger.kind] if items else "trigger"
        if groups[0].label is not None:
            kind = f"{kind} of {len(groups)} record{'s' if len(groups) != 1 else ''}"
        count = f"{len(items)} request{'s' if len(items) != 1 else ''}"
        if rejected:
            print(f"{path}: INVALID ({kind}: {rejected} of {count} rejected)")
            worst = max(worst, EXIT_PROBLEM)
        else:
            print(f"{path}: valid ({kind}, {count})")
        left_to_deployment = left_to_deployment or any(
            item.project_id == DEPLOYMENT_PROJECT_ID for item in items if not isinstance(item, Rejected)
        )
        for group in groups:
            indent = "  "
            if group.label is not None:
                print(f"  {group.label}, body:")
                indent = "    "
            for item in group.items:
                for line in item_lines(item, indent):
                    print(line)
        for warning in size_warnings(path, text, document, groups):
            print(warning, file=sys.stderr)
    if left_to_deployment:
        print(
            "note: project=$HUAWEICLOUD_SDK_PROJECT_ID: the request leaves project_id to the function's "
            "configuration; give --project-id or set HUAWEICLOUD_SDK_PROJECT_ID to check against yours",
            file=sys.stderr,
        )
    return worst
