"""The one logging path and the Metrics of the function (Powertools).

Every line the function writes goes through one handler: Powertools JSON with the keys the handler
appends (correlation id, Lambda request id, an SQS message id per thread), secrets masked.
- `logger` is the service Logger; other modules log through its children
  (`Logger(service=SERVICE, child=True)`), whose records propagate to its handler and so carry the
  same keys.
- httpcore2 gets the same handler (Powertools' `copy_config_to_registered_loggers`), its level
  left alone: its DEBUG traces appear only when someone enables them, and then as JSON.
- `RedactSecrets` on the handler masks every remembered secret in the record before anything formats
  it, and `RedactingFormatter` masks the finished line again (keys appended by anyone, JSON escapes).
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from cbr_checkpointer.redaction import RedactSecrets, redact

SERVICE = "cbr-checkpointer"
HTTP_TRACE_LOGGERS = frozenset({"httpcore2"})


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter whose finished line holds no remembered secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter(name="%(name)s"))
metrics = Metrics(namespace="CbrCheckpointer", service=SERVICE)


def _one_path_for_every_logger() -> None:
    handler = logger.registered_handler
    if not any(isinstance(existing, RedactSecrets) for existing in handler.filters):
        handler.addFilter(RedactSecrets())
    for name in HTTP_TRACE_LOGGERS:
        logging.getLogger(name)  # registered now, so that Powertools finds it before httpcore2 is imported
    copy_config_to_registered_loggers(
        source_logger=logger, include=set(HTTP_TRACE_LOGGERS), ignore_log_level=True
    )


_one_path_for_every_logger()
