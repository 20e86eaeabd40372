"""`send FILE --queue-url URL`: validate a request as the function will read the message body, then put
the file's text on the request queue with SQS SendMessage."""

# ruff: noqa: PLC0415 - the function's modules are imported by the commands that use them, when they run

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cbr_checkpointer.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    SQS_MESSAGE_ID,
    TRANSPORT_OF_KIND,
    CommandError,
    defaults_for_checking,
    item_lines,
    project_id_argument,
    read_json,
    too_large,
)

if TYPE_CHECKING:
    from cbr_checkpointer.aws import AwsJsonClient

GROUP_ID = "cbr-checkpointer"
_SQS_HOST = re.compile(r"(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?")


def add_parser(commands: Any) -> None:
    send = commands.add_parser(
        "send",
        help="validate a request, then put it on the request queue",
        description="Validate a request file as the function will read the message body, then send "
        "the file's text unchanged with SQS SendMessage (no boto3). Credentials, region and endpoint "
        "come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, "
        "AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL. Prints the MessageId.",
    )
    send.add_argument("file", metavar="FILE", help="request (JSON file; - reads stdin)")
    send.add_argument("--queue-url", required=True, help=f"e.g. {_QUEUE_URL_EXAMPLE}")
    send.add_argument(
        "--project-id",
        type=project_id_argument,
        help="default project id to check against (else as validate)",
    )
    send.add_argument(
        "--group-id", default=GROUP_ID, help="MessageGroupId for a FIFO queue (default %(default)s)"
    )
    send.set_defaults(command=command)


def _sqs_client(queue_url: str, environ: Mapping[str, str]) -> AwsJsonClient:
    """An SQS client configured as the AWS SDKs are: AWS_* credentials, region and endpoint overrides."""
    from cbr_checkpointer.aws import AwsCredentials, aws_json_client
    from cbr_checkpointer.settings import ConfigurationError, Settings

    parts = urlsplit(queue_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.count("/") < 2:
        raise CommandError(f"--queue-url {queue_url!r} is not a queue URL such as {_QUEUE_URL_EXAMPLE}")
    aws = {name: value for name, value in environ.items() if name.startswith("AWS_")}
    region_in_url = _SQS_HOST.fullmatch(parts.hostname)
    if not (aws.get("AWS_REGION") or aws.get("AWS_DEFAULT_REGION")) and region_in_url:
        aws["AWS_REGION"] = region_in_url[1] or region_in_url[2]
    overridden = aws.get("AWS_ENDPOINT_URL_SQS") or aws.get("AWS_ENDPOINT_URL")
    if not overridden and not region_in_url:
        # A local queue (moto, LocalStack): talk to the server that named it.
        aws["AWS_ENDPOINT_URL_SQS"] = f"{parts.scheme}://{parts.netloc}"
    try:
        # The function's own parsing and checks (https, or http on loopback only); CBR is not used here,
        # any valid region will do.
        settings = Settings.from_env({**aws, "CBR_REGION": "cn-north-4"})
    except ConfigurationError as error:
        raise CommandError(str(error)) from None
    if settings.aws_access_key_id is None or settings.aws_secret_access_key is None:
        raise CommandError(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
            'credentials); for a profile or SSO: eval "$(aws configure export-credentials --format env)"'
        )
    credentials = AwsCredentials(
        access_key_id=settings.aws_access_key_id.get_secret_value(),
        secret_access_key=settings.aws_secret_access_key,
        session_token=settings.aws_session_token,
    )
    return aws_json_client("sqs", settings.aws_endpoint("sqs"), settings.aws_region, credentials)


_QUEUE_URL_EXAMPLE = "https://sqs.eu-west-1.amazonaws.com/123456789012/cbr-checkpointer-requests"


def command(arguments: argparse.Namespace, prog: str) -> int:
    import hashlib

    from cbr_checkpointer.aws import AwsError
    from cbr_checkpointer.domain import Rejected
    from cbr_checkpointer.triggers import is_sqs_batch, parse_sqs_record

    text, document = read_json(arguments.file)
    if isinstance(document, Mapping) and is_sqs_batch(document):
        print(
            f"{arguments.file}: is an SQS batch (what Lambda receives), not a message body: send each "
            "record's body as its own file; nothing sent",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    oversize = too_large(text, TRANSPORT_OF_KIND["sqs"], arguments.file)
    if oversize is not None:
        print(f"{oversize}; nothing sent", file=sys.stderr)
        return EXIT_PROBLEM
    defaults = defaults_for_checking(arguments.project_id, None)
    record = {"messageId": SQS_MESSAGE_ID, "body": text, "eventSource": "aws:sqs"}
    items = parse_sqs_record(record, defaults=defaults)
    if any(isinstance(item, Rejected) for item in items):
        print(f"{arguments.file}: INVALID, nothing sent:", file=sys.stderr)
        for item in items:
            for line in item_lines(item, "  "):
                print(line, file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{arguments.file}: valid ({len(items)} request{'s' if len(items) != 1 else ''}):", file=sys.stderr)
    for item in items:
        for line in item_lines(item, "  "):
            print(line, file=sys.stderr)
    another_message = parse_sqs_record(record | {"messageId": f"{SQS_MESSAGE_ID}-2"}, defaults=defaults)
    if [item.idempotency_key for item in items] != [item.idempotency_key for item in another_message]:
        print(
            "  note: no idempotency_key, so the request is keyed by the message's MessageId: sending this "
            "file again makes another checkpoint",
            file=sys.stderr,
        )
    message: dict[str, Any] = {"QueueUrl": arguments.queue_url, "MessageBody": text}
    if arguments.queue_url.endswith(".fifo"):
        message["MessageGroupId"] = arguments.group_id
        message["MessageDeduplicationId"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    client = _sqs_client(arguments.queue_url, os.environ)
    try:
        answer = client.call("SendMessage", message)
    except AwsError as error:
        print(f"{prog}: SendMessage to {arguments.queue_url} failed: {error}", file=sys.stderr)
        return EXIT_PROBLEM
    finally:
        client.close()
    digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
    if answer.get("MD5OfMessageBody") not in (None, digest):
        print(f"{prog}: warning: SQS reports a different MD5 of the body than was sent", file=sys.stderr)
    print(answer.get("MessageId"))
    return EXIT_OK
