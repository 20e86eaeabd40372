"""The AWS JSON protocol (awsJson1_0 / awsJson1_1) over one shared connection pool, signed with SigV4."""

from __future__ import annotations

import json
from typing import Any, Literal

from aws_lambda_powertools import Logger

from cbr_checkpointer import http
from cbr_checkpointer.aws.retryable import is_retryable_error, is_retryable_transport_error
from cbr_checkpointer.aws.sigv4 import AwsCredentials, SigV4Signer
from cbr_checkpointer.observability import SERVICE
from cbr_checkpointer.retry import Retrier, parse_retry_after
from cbr_checkpointer.values import value

logger = Logger(service=SERVICE, child=True)

JsonVersion = Literal["1.0", "1.1"]


@value
class JsonService:
    """How one AWS service speaks the JSON protocol: its `X-Amz-Target` prefix and protocol version."""

    target_prefix: str
    json_version: JsonVersion


# Keyed by signing name, which is also the service id moto routes on.
JSON_SERVICES: dict[str, JsonService] = {
    "events": JsonService("AWSEvents", "1.1"),
    "dynamodb": JsonService("DynamoDB_20120810", "1.0"),
    "secretsmanager": JsonService("secretsmanager", "1.1"),
    "sqs": JsonService("AmazonSQS", "1.0"),
}


class AwsError(Exception):
    """An AWS call that did not succeed: the service's error, or a transport failure (`http_status` None)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int | None,
        retryable: bool,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        status = f"HTTP {http_status}" if http_status is not None else "no response"
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable
        self.body: dict[str, Any] = body or {}
        self.retry_after = retry_after


def _error_code(response: http.Response, body: dict[str, Any]) -> str:
    # awsJson: the header wins, then `__type`, then `code`; either may carry a namespace
    # (`ns#Code`) or a trailing URI (`Code:http://...`).
    raw = response.headers.get("x-amzn-errortype") or body.get("__type") or body.get("code") or ""
    code = str(raw).split(":", 1)[0].rsplit("#", 1)[-1]
    return code or f"HTTP{response.status_code}"


def _parse_error(operation: str, response: http.Response) -> AwsError:
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    code = _error_code(response, body)
    message = str(body.get("message") or body.get("Message") or f"{operation} failed")
    return AwsError(
        code,
        message,
        http_status=response.status_code,
        retryable=is_retryable_error(code, response.status_code),
        body=body,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


class AwsJsonClient:
    """Calls one AWS JSON-protocol service; its connection pool is made on first use and shared by threads.

    Throttles, transient errors and connection failures are tried again as `retry` allows (by default
    the retry policy with no deadline: attempts alone bound it).
    """

    def __init__(
        self,
        service: str,
        endpoint: str,
        region: str,
        credentials: AwsCredentials,
        *,
        target_prefix: str,
        json_version: JsonVersion,
        max_connections: int = 10,
        timeout: float = 10.0,
        transport: http.Transport | None = None,
        retry: Retrier | None = None,
    ) -> None:
        self.service = service
        self._sign = SigV4Signer(credentials, region=region, service=service)
        self._target_prefix = target_prefix
        self._content_type = f"application/x-amz-json-{json_version}"
        self._http = http.Client(
            endpoint,
            timeout=http.timeout(timeout),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            transport=transport,
        )
        self._retry = retry or Retrier()

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one operation and return its JSON answer; raise `AwsError` for anything but success,
        once the retry policy gives up on a retryable failure."""
        content = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"X-Amz-Target": f"{self._target_prefix}.{operation}", "Content-Type": self._content_type}
        attempt = 1
        while True:
            try:
                return self._attempt(operation, content, headers)
            except AwsError as error:
                if not error.retryable or not self._retry.pause(attempt, error.retry_after):
                    raise
                logger.info(
                    "AWS %s %s failed with %s (attempt %d); trying again",
                    self.service,
                    operation,
                    error.code,
                    attempt,
                )
            attempt += 1

    def _attempt(self, operation: str, content: bytes, headers: dict[str, str]) -> dict[str, Any]:
        try:
            response = self._http.request("POST", "/", content=content, headers=headers, sign=self._sign)
        except http.TransportError as error:
            raise AwsError(
                type(error).__name__,
                f"{self.service} {operation}: {error}",
                http_status=None,
                retryable=is_retryable_transport_error(error),
            ) from error
        if response.status_code != 200:
            raise _parse_error(operation, response)
        if not response.content:
            return {}
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise AwsError(
                "InvalidResponse",
                f"{self.service} {operation} answered with something other than a JSON object",
                http_status=response.status_code,
                retryable=False,
            )
        return answer

    def open(self) -> None:
        """Make the connection pool now (the CA bundle), not on the first call."""
        self._http.open()

    def close(self) -> None:
        self._http.close()


def aws_json_client(
    service: str,
    endpoint: str,
    region: str,
    credentials: AwsCredentials,
    *,
    max_connections: int = 10,
    timeout: float = 10.0,
    transport: http.Transport | None = None,
    retry: Retrier | None = None,
) -> AwsJsonClient:
    """A client for one of the services in `JSON_SERVICES`, e.g. `aws_json_client("events", ...)`."""
    try:
        known = JSON_SERVICES[service]
    except KeyError:
        raise ValueError(f"unknown AWS JSON service {service!r}; known: {', '.join(JSON_SERVICES)}") from None
    return AwsJsonClient(
        service,
        endpoint,
        region,
        credentials,
        target_prefix=known.target_prefix,
        json_version=known.json_version,
        max_connections=max_connections,
        timeout=timeout,
        transport=transport,
        retry=retry,
    )
