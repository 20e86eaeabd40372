"""The one table of CBR and API-gateway error codes, and the classification of every failed call.

Each failure becomes a `CbrError` whose `info` is the event's `error` object. Besides the kind and
whether a retry may help, it says whether the create MAY have taken effect (`ambiguous`: the request
reached the server and no clear refusal came back) and whether fresh credentials may help
(`is_auth_failure`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from cbr_checkpointer import http
from cbr_checkpointer.domain import CbrCallFailed, ErrorInfo, ErrorKind
from cbr_checkpointer.redaction import redact
from cbr_checkpointer.retry import parse_retry_after
from cbr_checkpointer.values import replace, value

MAX_MESSAGE_LENGTH = 512


@value
class ErrorRule:
    """How to treat one error code."""

    kind: ErrorKind
    retryable: bool
    meaning: str
    ambiguous: bool = False
    auth_failure: bool = False


def _permanent(meaning: str) -> ErrorRule:
    return ErrorRule("api", False, meaning)


def _busy(meaning: str) -> ErrorRule:
    return ErrorRule("api", True, meaning)


def _auth(meaning: str) -> ErrorRule:
    # Not retryable as such: the client refreshes the credentials and tries once more by itself.
    return ErrorRule("auth", False, meaning, auth_failure=True)


# Sources: the CBR error-code page, the OTC appendix, and the API-gateway error table.
ERROR_CODES: Mapping[str, ErrorRule] = {
    "BackupService.9900": ErrorRule("validation", False, "parameter verification failed"),
    # Not found
    "BackupService.6105": _permanent("vault does not exist"),
    "BackupService.6217": _permanent("restore point does not exist"),
    "BackupService.6302": _permanent("resource does not exist"),
    "BackupService.6135": _permanent("resource is not in this vault"),
    "BackupService.6500": _permanent("operation log does not exist"),
    "APIGW.0101": _permanent("API does not exist"),
    # Busy: something else is backing up, restoring or moving; try again later
    "BackupService.0001": _busy("no resource available for backup (resources may be being backed up)"),
    "BackupService.0002": _busy("resources are being backed up"),
    "BackupService.6125": _busy("vault is already executing a backup"),
    "BackupService.6203": _busy("backup in progress"),
    "BackupService.7501": _busy("SFS Turbo file system is being backed up"),
    "BackupService.7200": _busy("cloud database is being backed up"),
    "BackupService.2010": _busy("resource is being restored"),
    "BackupService.6130": _busy("vault is replicating"),
    "BackupService.6134": _busy("resources are being removed from the vault"),
    "BackupService.7504": _busy("SFS Turbo freeze failed"),
    "BackupService.7505": _busy("SFS Turbo thaw failed"),
    "BackupService.7506": _busy("SFS Turbo task failed"),
    "BackupService.6107": _busy("vault expansion failed"),
    "BackupService.6108": _busy("adding resources to the vault failed"),
    "BackupService.6110": _busy("vault update failed"),
    "BackupService.6118": _busy("vault operation failed"),
    "BackupService.6121": _busy("vault operation failed"),
    # Vault state, capacity and quota
    "BackupService.6112": _permanent("illegal vault status"),
    "BackupService.6113": _permanent("vault status does not allow backup"),
    "BackupService.6114": _permanent("vault used capacity exceeds its maximum capacity"),
    "BackupService.6142": _permanent("capacity of all vaults exceeded"),
    "BackupService.8300": _permanent("insufficient snapshot quota"),
    "BackupService.6100": _permanent("vault resource-count limit reached"),
    "BackupService.6133": _permanent("vault-count limit reached"),
    "BackupService.6124": _permanent("vault type does not support backup"),
    "BackupService.6102": _permanent("resource type not supported"),
    # Resource state
    "BackupService.6215": _permanent("resource status does not allow backup"),
    "BackupService.7101": _permanent("server status does not allow backup"),
    "BackupService.7003": _permanent("disk status does not allow backup"),
    "BackupService.7502": _permanent("SFS Turbo status does not allow backup"),
    "BackupService.7602": _permanent("desktop status does not allow backup"),
    "BackupService.7102": _permanent("server has been terminated"),
    "BackupService.7106": _permanent("shared disks cannot be backed up"),
    "BackupService.7108": _permanent("server has no disk"),
    "BackupService.7104": _permanent("SCSI disks cannot be backed up"),
    "BackupService.7111": _permanent("DESS disks cannot be backed up"),
    # Permission
    "BackupService.8600": _permanent("account is not real-name verified"),
    "APIGW.0302": _permanent("IAM user is not authorized to access the API"),
    # Authentication: refresh the credentials once
    "BackupService.9998": _auth("authentication failed"),
    "APIGW.0301": _auth("incorrect IAM authentication information"),
    "APIGW.0307": _auth("the token must be updated"),
    # Server trouble
    "BackupService.9910": ErrorRule("api", True, "unknown exception in the backup service", ambiguous=True),
    "APIGW.0308": ErrorRule("throttled", True, "throttling threshold reached"),
}

# Gateway prefixes seen in Huawei docs for the same codes (APIG.0308 on some services, APIC on ROMA).
_GATEWAY_ALIASES = ("APIG.", "APIC.")

_GATEWAY_TRANSIENT = ErrorRule("api", True, "backend unavailable or timed out", ambiguous=True)
_MALFORMED_URL = _permanent("not found (the API answered 'Malformed request url')")


def _rule_for_status(status: int) -> ErrorRule:
    if status == 429:
        return ErrorRule("throttled", True, "too many requests")
    if status == 401:
        return _auth("unauthorized")
    if status == 403:
        return _permanent("forbidden")
    if status == 404:
        return _permanent("not found")
    if status == 408:
        return ErrorRule("timeout", True, "the server timed out waiting for the request")
    if status >= 500:
        return ErrorRule("api", True, f"server error (HTTP {status})", ambiguous=True)
    if status >= 400:
        return _permanent(f"request refused (HTTP {status})")
    if status >= 300:
        return _permanent(f"unexpected redirect (HTTP {status}); check the endpoint")
    # A 2xx other than the documented one: the server accepted something, so the call may have worked.
    return ErrorRule("api", True, f"unexpected success status (HTTP {status})", ambiguous=True)


class CbrError(CbrCallFailed):
    """A failed CBR (or IAM) call, classified. Its text never holds credentials or tokens."""

    def __init__(
        self,
        info: ErrorInfo,
        *,
        retry_after: float | None = None,
        ambiguous: bool = False,
        is_auth_failure: bool = False,
    ) -> None:
        super().__init__(info, retry_after=retry_after, ambiguous=ambiguous)
        self.is_auth_failure = is_auth_failure

    def __str__(self) -> str:
        info = self.info
        where = " ".join(
            part
            for part in (
                info.code or "",
                f"HTTP {info.http_status}" if info.http_status is not None else "",
                f"request {info.request_id}" if info.request_id else "",
            )
            if part
        )
        return (
            f"{info.kind} error ({where}): {info.message}" if where else f"{info.kind} error: {info.message}"
        )

    def __repr__(self) -> str:
        return (
            f"CbrError({self.info!r}, retry_after={self.retry_after!r}, ambiguous={self.ambiguous!r}, "
            f"is_auth_failure={self.is_auth_failure!r})"
        )

    def scrubbed(self, secrets: Collection[str]) -> CbrError:
        """This error with `secrets`, and every secret the process holds, masked in its message."""
        message = redact(self.info.message, secrets)
        if message == self.info.message:
            return self
        return CbrError(
            replace(self.info, message=message),
            retry_after=self.retry_after,
            ambiguous=self.ambiguous,
            is_auth_failure=self.is_auth_failure,
        )


def clip_message(text: str) -> str:
    """One line, at most MAX_MESSAGE_LENGTH characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[: MAX_MESSAGE_LENGTH - 3] + "..."


@value
class ErrorBody:
    """What an error body says, found the way the SDK's `DefaultExceptionHandler` looks for it."""

    code: str | None = None
    message: str | None = None
    request_id: str | None = None


_CODE_MESSAGE_KEYS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))


def _find_code(document: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(code, message, request_id) from the first dict, depth first, holding a known pair of keys."""
    for code_key, message_key in _CODE_MESSAGE_KEYS:
        if code_key in document and message_key in document:
            code, message, request_id = document[code_key], document[message_key], document.get("request_id")
            return (
                None if code is None else str(code),
                None if message is None else str(message),
                None if request_id is None else str(request_id),
            )
    for member in document.values():
        if isinstance(member, dict):
            found = _find_code(member)
            if found[0] is not None or found[1] is not None:
                return found
    return None, None, None


def parse_error_body(body: bytes) -> ErrorBody:
    """Parse an error body; anything that is not a JSON object becomes the message as text."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ErrorBody()
    try:
        document = json.loads(text)
    except ValueError:
        return ErrorBody(message=text)
    if not isinstance(document, dict):
        return ErrorBody(message=text)
    code, message, request_id = _find_code(document)
    top_request_id = document.get("request_id")
    if top_request_id is not None:
        request_id = str(top_request_id)
    return ErrorBody(code=code or None, message=message, request_id=request_id)


def _is_malformed_url_quirk(status: int, body: ErrorBody) -> bool:
    return status == 401 and body.code == "401" and (body.message or "").strip() == "Malformed request url"


def _lookup(code: str | None) -> ErrorRule | None:
    if code is None:
        return None
    for alias in _GATEWAY_ALIASES:
        if code.startswith(alias):
            code = "APIGW." + code.removeprefix(alias)
    return ERROR_CODES.get(code)


def classify_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> CbrError:
    """The error for an HTTP answer that is not the call's success status."""
    parsed = parse_error_body(body)
    if _is_malformed_url_quirk(status, parsed):
        # CBR answers some unknown ids with this 401; terraform-provider-huaweicloud treats it as 404.
        rule = _MALFORMED_URL
    elif status in (502, 504):
        rule = _GATEWAY_TRANSIENT
    else:
        rule = _lookup(parsed.code) or _rule_for_status(status)
    lowered = {name.lower(): value for name, value in headers.items()}
    server_message = clip_message(redact(parsed.message)) if parsed.message else ""
    message = f"{rule.meaning}: {server_message}" if server_message else rule.meaning
    info = ErrorInfo(
        kind=rule.kind,
        message=clip_message(message),
        code=parsed.code,
        http_status=status,
        retryable=rule.retryable,
        request_id=lowered.get("x-request-id") or parsed.request_id,
    )
    return CbrError(
        info,
        retry_after=parse_retry_after(lowered.get("retry-after"), now=now),
        ambiguous=rule.ambiguous,
        is_auth_failure=rule.auth_failure,
    )


# Failures before the request left this process: the server cannot have acted on it.
_NOT_SENT: tuple[tuple[type[http.TransportError], ErrorKind], ...] = (
    (http.ConnectTimeout, "timeout"),
    (http.PoolTimeout, "timeout"),
    (http.ConnectError, "network"),
    (http.UnsupportedProtocol, "network"),
    (http.LocalProtocolError, "network"),
)


def classify_transport_error(error: http.TransportError) -> CbrError:
    """The error for a call that got no HTTP answer.

    Anything after the request may have been sent (read or write timeout, connection dropped, broken
    response) is ambiguous: the server may have acted on it.
    """
    # Masked before clipping: a clipped secret would no longer match. h11 quotes a refused header value.
    description = redact(f"{type(error).__name__}: {error}") if str(error) else type(error).__name__
    for error_type, not_sent_kind in _NOT_SENT:
        if isinstance(error, error_type):
            message = clip_message(f"request not sent ({description})")
            return CbrError(ErrorInfo(not_sent_kind, message, retryable=True))
    kind: ErrorKind = "timeout" if isinstance(error, http.TimeoutException) else "network"
    message = clip_message(f"no complete answer ({description})")
    return CbrError(ErrorInfo(kind, message, retryable=True), ambiguous=True)
