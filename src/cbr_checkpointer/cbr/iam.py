"""Project-scoped IAM tokens for password credentials: fetched once, shared by every thread, renewed early."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from cbr_checkpointer import http
from cbr_checkpointer.cbr.credentials import PasswordCredentials
from cbr_checkpointer.cbr.errors import (
    CbrError,
    classify_transport_error,
    clip_message,
    parse_error_body,
)
from cbr_checkpointer.domain import ErrorInfo
from cbr_checkpointer.observability import SERVICE
from cbr_checkpointer.redaction import redact, remember
from cbr_checkpointer.values import field, value

logger = Logger(service=SERVICE, child=True)

TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a URL path, not a secret
SUBJECT_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 - a header name
# Renew this long before expiry (tokens live 24 h), but never hold on to one with less than the floor left.
RENEW_BEFORE_SECONDS = 3600.0
RENEW_BEFORE_FLOOR_SECONDS = 900.0
# Tokens kept at most, least recently used dropped first: one per (user, domain, project), and the
# projects come from requests, so the cache must not grow with whatever projects they name.
MAX_CACHED_TOKENS = 64

_TokenKey = tuple[str, str, str]


@value(frozen=False)
class _Fetch:
    """The lock that lets one thread at a time ask IAM for one key's token, and how many want it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: int = 0


@value
class _Token:
    value: str = field(repr=False)
    renew_at: float


def _renew_at(issued_at: float, expires_at: float) -> float:
    lifetime = expires_at - issued_at
    margin = min(RENEW_BEFORE_SECONDS, max(RENEW_BEFORE_FLOOR_SECONDS, lifetime / 2))
    return expires_at - margin


def _token_body(credentials: PasswordCredentials, project_id: str) -> bytes:
    document = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": credentials.user_name,
                        "password": credentials.password.get_secret_value(),
                        "domain": {"name": credentials.domain_name},
                    }
                },
            },
            "scope": {"project": {"id": project_id}},
        }
    }
    return json.dumps(document).encode()


def _auth_error(
    message: str,
    *,
    status: int | None = None,
    code: str | None = None,
    request_id: str | None = None,
    retryable: bool = False,
    is_auth_failure: bool = False,
) -> CbrError:
    info = ErrorInfo(
        "auth",
        clip_message(message),
        code=code,
        http_status=status,
        retryable=retryable,
        request_id=request_id,
    )
    return CbrError(info, is_auth_failure=is_auth_failure)


class TokenIssuer:
    """Issues `X-Auth-Token` values for `(user, domain, project)`; one IAM request at a time per key.

    Keeps at most `max_tokens` tokens, dropping the least recently used: a key dropped is fetched
    again when next needed.
    """

    def __init__(
        self,
        iam_endpoint: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        transport: http.Transport | None = None,
        clock: Callable[[], float] = time.time,
        max_tokens: int = MAX_CACHED_TOKENS,
    ) -> None:
        self._http = http.Client(
            iam_endpoint,
            timeout=http.timeout(read_timeout, connect=connect_timeout),
            max_connections=2,
            max_keepalive_connections=2,
            transport=transport,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: OrderedDict[_TokenKey, _Token] = OrderedDict()
        self._max_tokens = max_tokens
        # Only keys being fetched now: an entry goes when its last waiter is done.
        self._fetches: dict[_TokenKey, _Fetch] = {}

    def token(self, credentials: PasswordCredentials, project_id: str) -> str:
        """A valid token for `credentials` scoped to `project_id`, from the cache or from IAM."""
        key = (credentials.user_name, credentials.domain_name, project_id)
        with self._lock:
            cached = self._fresh(key)
            if cached is not None:
                return cached
            fetch = self._fetches.setdefault(key, _Fetch())
            fetch.waiting += 1
        try:
            with fetch.lock:
                with self._lock:
                    cached = self._fresh(key)
                if cached is not None:
                    return cached
                issued = self._issue(credentials, project_id)
                with self._lock:
                    self._keep(key, issued)
                return issued.value
        finally:
            with self._lock:
                fetch.waiting -= 1
                if fetch.waiting == 0:
                    del self._fetches[key]

    def invalidate(self, token: str | None = None) -> None:
        """Drop `token` from the cache (every cached token when None), e.g. after the API refused it.

        Dropping only the refused token keeps a newer one that another thread fetched meanwhile.
        """
        with self._lock:
            if token is None:
                self._tokens.clear()
                return
            for key, cached in list(self._tokens.items()):
                if cached.value == token:
                    del self._tokens[key]

    def close(self) -> None:
        self._http.close()

    def _fresh(self, key: _TokenKey) -> str | None:
        cached = self._tokens.get(key)
        if cached is None or self._clock() >= cached.renew_at:
            return None
        self._tokens.move_to_end(key)
        return cached.value

    def _keep(self, key: _TokenKey, token: _Token) -> None:
        self._tokens[key] = token
        self._tokens.move_to_end(key)
        while len(self._tokens) > self._max_tokens:
            self._tokens.popitem(last=False)

    def _issue(self, credentials: PasswordCredentials, project_id: str) -> _Token:
        secrets = (credentials.password.get_secret_value(),)
        issued_at = self._clock()
        try:
            response = self._http.request(
                "POST",
                TOKEN_PATH,
                params={"nocatalog": "true"},
                content=_token_body(credentials, project_id),
                headers={"Content-Type": "application/json;charset=utf8"},
            )
        except http.TransportError as error:
            cause = classify_transport_error(error).info.message
            raise _auth_error(redact(f"IAM token request failed: {cause}", secrets), retryable=True) from None
        request_id = response.headers.get("X-Request-Id")
        logger.info("IAM token request answered %s (request id %s)", response.status_code, request_id)
        if response.status_code != 201:
            raise self._refusal(response, secrets)
        token = response.headers.get(SUBJECT_TOKEN_HEADER)
        remember(token)
        if not token:
            raise _auth_error(f"IAM answered 201 without an {SUBJECT_TOKEN_HEADER} header", status=201)
        expires_at = self._expires_at(response.content)
        if expires_at is None:
            raise _auth_error("IAM answered 201 without a valid token.expires_at", status=201)
        return _Token(token, _renew_at(issued_at, expires_at))

    @staticmethod
    def _refusal(response: http.Response, secrets: tuple[str, ...]) -> CbrError:
        status = response.status_code
        body = parse_error_body(response.content)
        detail = f": {body.message}" if body.message else ""
        message = redact(f"IAM refused the token request (HTTP {status}){detail}", secrets)
        # 401: wrong user, password or domain, perhaps just rotated. 429 and 5xx: try again later.
        return _auth_error(
            message,
            status=status,
            code=body.code,
            request_id=response.headers.get("X-Request-Id") or body.request_id,
            retryable=status == 429 or status >= 500,
            is_auth_failure=status == 401,
        )

    @staticmethod
    def _expires_at(body: bytes) -> float | None:
        try:
            expires_at = datetime.fromisoformat(json.loads(body)["token"]["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return expires_at.timestamp()
