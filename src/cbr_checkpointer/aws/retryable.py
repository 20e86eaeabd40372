"""Which AWS failures are worth another attempt: the rules of botocore's `standard` retry mode.

A contract test reads these tables against botocore's own, so that they cannot drift apart.
"""

from __future__ import annotations

from cbr_checkpointer import http

# botocore.retries.standard.ThrottledRetryableChecker
THROTTLING_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
# botocore.retries.standard.TransientRetryableChecker
TRANSIENT_ERROR_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# botocore.retries.standard.ThrottlingStatusCodeChecker: a 429 whatever its code (botocore lets a
# service's model overrule it; no model here says that a 429 must not be retried).
THROTTLING_STATUSES = frozenset({429})
# Errors the services called here model as retryable (botocore's ModeledRetryableChecker): DynamoDB's
# write conflict on a multi-Region strongly consistent table.
MODELED_RETRYABLE_ERROR_CODES = frozenset({"ReplicatedWriteConflictException"})
# botocore retries every connection failure (its ConnectionError and HTTPClientError); the failures
# that no second attempt can cure are a URL it cannot speak to and a request it could not even write.
NOT_RETRYABLE_TRANSPORT_ERRORS: tuple[type[http.TransportError], ...] = (
    http.UnsupportedProtocol,
    http.LocalProtocolError,
)


def is_retryable_error(code: str, http_status: int) -> bool:
    """Whether a service's error answer is a throttle or a transient failure."""
    return (
        code in THROTTLING_ERROR_CODES
        or code in TRANSIENT_ERROR_CODES
        or code in MODELED_RETRYABLE_ERROR_CODES
        or http_status in TRANSIENT_STATUSES
        or http_status in THROTTLING_STATUSES
    )


def is_retryable_transport_error(error: http.TransportError) -> bool:
    """Whether a request that got no answer (refused, reset, timed out) may be sent again."""
    return not isinstance(error, NOT_RETRYABLE_TRANSPORT_ERRORS)
