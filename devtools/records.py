"""SQS records shaped as Lambda delivers them, for the tests, the fault matrix and the benchmarks."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

ACCOUNT = "123456789012"
SENT_MILLIS = "1795766400000"


def sqs_record(
    body: Any,
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    sent_millis: str | None = SENT_MILLIS,
    queue: str = "cbr-checkpointer-requests",
    region: str = "us-east-1",
) -> dict[str, Any]:
    """One record of an SQS event; a body that is not a string is sent as its JSON."""
    text = body if isinstance(body, str) else json.dumps(body)
    attributes = {"ApproximateReceiveCount": str(receive_count), "SenderId": "AIDAEXAMPLE"}
    if sent_millis is not None:
        attributes |= {"SentTimestamp": sent_millis, "ApproximateFirstReceiveTimestamp": sent_millis}
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"AQEB{uuid.uuid4().hex}",
        "body": text,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}",
        "awsRegion": region,
    }


def record_from_message(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """A message as SQS ReceiveMessage answered it (with `AttributeNames: ["All"]`), as the Lambda event
    source hands it to the function: the same id, receipt handle, body and system attributes."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
