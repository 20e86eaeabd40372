"""The one logging path and the Metrics of the function (Powertools).

Every line the function writes goes through one handler: Powertools JSON with the keys the handler
appends (correlation id, Lambda request id, an SQS message id per thread), secrets masked.
- `logger` is the service Logger; other modules log through its children
  (`Logger(service=SERVICE, child=True)`), whose records propagate to its handler and so carry the
  same keys.
- `RedactSecrets` on the handler masks every remembered secret in the record before anything formats
  it, and `RedactingFormatter` masks the finished line again (keys appended by anyone, JSON escapes).
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from cbr_checkpointer.redaction import RedactSecrets, redact

SERVICE = "cbr-checkpointer"


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter whose finished line holds no remembered secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter(name="%(name)s"))
metrics = Metrics(namespace="CbrCheckpointer", service=SERVICE)


def _mask_every_record() -> None:
    handler = logger.registered_handler
    if not any(isinstance(existing, RedactSecrets) for existing in handler.filters):
        handler.addFilter(RedactSecrets())


_mask_every_record()
