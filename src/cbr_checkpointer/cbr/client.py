"""The CBR calls this project makes, over one shared, thread-safe connection pool."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ValidationError

from cbr_checkpointer import http
from cbr_checkpointer.cbr.credentials import AkSkCredentials, CredentialsProvider, secrets_of
from cbr_checkpointer.cbr.errors import CbrError, classify_response, classify_transport_error, clip_message
from cbr_checkpointer.cbr.iam import TokenIssuer
from cbr_checkpointer.cbr.signer import sign_request
from cbr_checkpointer.domain import ErrorInfo
from cbr_checkpointer.models import (
    MAX_TAG_KEYS,
    CheckpointCreate,
    CreateCheckpointResponse,
    ListVaultResponse,
    ShowVaultResourceInstancesResponse,
    TagsReq,
    Vault,
    VaultResourceInstancesReq,
)
from cbr_checkpointer.observability import SERVICE
from cbr_checkpointer.rate import AdaptiveLimiter, Verdict

logger = Logger(service=SERVICE, child=True)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
PAGE_SIZE = 100
MAX_BACKUP_PAGES = 20
KEEPALIVE_SECONDS = 30.0
# ListVault's and the tag query's largest page, and how many of them a listing reads at most.
VAULT_PAGE_SIZE = 1000
MAX_VAULT_PAGES = 20

ItemT = TypeVar("ItemT")
ModelT = TypeVar("ModelT", bound=BaseModel)


class _CbrAuth:
    """Per call: AK/SK signature or IAM token, whichever the provider's current credentials allow.

    Remembers the token it sent (so only that one is dropped if refused) and the secrets in play (so
    they can be scrubbed from error messages).
    """

    def __init__(
        self,
        credentials: CredentialsProvider,
        tokens: TokenIssuer,
        project_id: str,
    ) -> None:
        self._credentials = credentials
        self._tokens = tokens
        self._project_id = project_id
        self.token: str | None = None
        self.secrets: tuple[str, ...] = ()

    def __call__(self, request: http.Request) -> None:
        credentials = self._credentials.get()
        self.secrets = secrets_of(credentials)
        if isinstance(credentials, AkSkCredentials):
            sign_request(request, credentials, project_id=self._project_id, now=datetime.now(UTC))
        else:
            self.token = self._tokens.token(credentials, self._project_id)
            self.secrets += (self.token,)
            request.headers["X-Auth-Token"] = self.token


def _problems(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{error.error_count()} problem(s), first at {where}: {first['msg']}"


def _unexpected_answer(what: str, detail: str, response: http.Response) -> CbrError:
    info = ErrorInfo(
        "api",
        clip_message(f"unexpected answer to {what} (HTTP {response.status_code}): {detail}"),
        http_status=response.status_code,
        retryable=True,
        request_id=response.headers.get("X-Request-Id"),
    )
    # Only a create can have taken effect; for reads the flag has no consequence.
    return CbrError(info, ambiguous=what == "CreateCheckpoint")


def _parsed(what: str, model: type[ModelT], response: http.Response) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        raise _unexpected_answer(what, _problems(error), response) from None


def _collect_pages(
    page_at: Callable[[int], tuple[Sequence[ItemT], int | None]], *, page_size: int, max_pages: int
) -> tuple[list[ItemT], bool]:
    """The items of an offset-paged list, `page_at(offset)` giving a page and the answer's total (if
    any), for at most `max_pages` pages; and whether that was all of them.

    The end is the total reached, or without a total a short page; an empty page ends it in any case.
    """
    items: list[ItemT] = []
    for _ in range(max_pages):
        page, total = page_at(len(items))
        items.extend(page)
        done = len(items) >= total if total is not None else len(page) < page_size
        if done or not page:
            return items, True
    return items, False


def _no_permit_in_time(method: str, path: str, waited: float) -> CbrError:
    message = f"{method} {path} not sent: the call limits allowed no start within {waited:.1f}s"
    # Retryable and never ambiguous: nothing left this process.
    return CbrError(ErrorInfo("throttled", message, retryable=True))


class CbrClient:
    """CreateCheckpoint, ShowCheckpoint, ListBackups, ListOpLogs, ListVault and the tag query
    (ShowVaultResourceInstances) for one CBR endpoint.

    One attempt per call, except that a refusal of the credentials (APIGW.0301/0307,
    BackupService.9998, IAM 401) refreshes them and tries once more: the request was refused, so
    repeating it cannot create twice. Every other retry is the caller's business.

    Every attempt starts only when `limiter` allows, and tells it whether the gateway throttled it.
    """

    def __init__(
        self,
        endpoint: str,
        credentials: CredentialsProvider,
        *,
        iam_endpoint: str,
        max_connections: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        transport: http.Transport | None = None,
        limiter: AdaptiveLimiter | None = None,
    ) -> None:
        self._limiter = limiter or AdaptiveLimiter(max_connections)
        self._credentials = credentials
        self._http = http.Client(
            endpoint,
            timeout=http.timeout(read_timeout, connect=connect_timeout),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
            transport=transport,
        )
        self._tokens = TokenIssuer(
            iam_endpoint, connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport
        )

    def create_checkpoint(
        self, project_id: str, body: Mapping[str, Any], *, time_left: float | None = None
    ) -> CheckpointCreate:
        """`POST /v3/{project_id}/checkpoints` with `body` as is; the new checkpoint on HTTP 200.

        `time_left` caps the wait for the answer below the configured read timeout, so that a slow CBR
        ends in an (ambiguous) timeout the caller can hand back, rather than in Lambda killing the call.
        """
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        response = self._send(
            "POST",
            project_id,
            f"/v3/{_segment(project_id)}/checkpoints",
            content=content,
            headers={"Content-Type": JSON_CONTENT_TYPE},
            time_left=time_left,
        )
        return self._checkpoint("CreateCheckpoint", response)

    def show_checkpoint(self, project_id: str, checkpoint_id: str) -> CheckpointCreate:
        """`GET /v3/{project_id}/checkpoints/{checkpoint_id}`."""
        response = self._send(
            "GET", project_id, f"/v3/{_segment(project_id)}/checkpoints/{_segment(checkpoint_id)}"
        )
        return self._checkpoint("ShowCheckpoint", response)

    def list_backups(self, project_id: str, **filters: str) -> list[dict[str, Any]]:
        """`GET /v3/{project_id}/backups` with `filters` (vault_id, name, checkpoint_id, start_time, ...).

        Follows offset paging for at most MAX_BACKUP_PAGES pages of PAGE_SIZE (newest first).
        """
        return self._paged("ListBackups", "backups", project_id, filters, max_pages=MAX_BACKUP_PAGES)

    def list_operation_logs(
        self, project_id: str, *, max_pages: int = 5, **filters: str
    ) -> list[dict[str, Any]]:
        """`GET /v3/{project_id}/operation-logs` (tasks) with `filters` (vault_id, operation_type, status,
        resource_id, ...); at most `max_pages` pages of PAGE_SIZE, newest first.

        The API has no checkpoint_id filter: match each log's `checkpoint_id` yourself.
        """
        return self._paged("ListOpLogs", "operation_logs", project_id, filters, max_pages=max_pages)

    def _paged(
        self, what: str, key: str, project_id: str, filters: Mapping[str, str], *, max_pages: int
    ) -> list[dict[str, Any]]:
        """Every item of an offset-paged list, for at most `max_pages` pages."""
        if "limit" in filters or "offset" in filters:
            raise ValueError(f"{what} pages by itself; do not pass limit or offset")
        path = f"/v3/{_segment(project_id)}/{key.replace('_', '-')}"

        def page_at(offset: int) -> tuple[list[dict[str, Any]], int | None]:
            params = {**filters, "limit": str(PAGE_SIZE), "offset": str(offset)}
            return self._page(what, key, self._send("GET", project_id, path, params=params))

        items, complete = _collect_pages(page_at, page_size=PAGE_SIZE, max_pages=max_pages)
        if not complete:
            logger.warning("%s stopped after %d pages (%d items)", what, max_pages, len(items))
        return items

    # -- vaults: ListVault and vaults by tag ----------------------------------------------------------

    def list_vaults(
        self,
        project_id: str,
        *,
        policy_id: str | None = None,
        object_type: str | None = None,
        max_pages: int = MAX_VAULT_PAGES,
    ) -> list[Vault]:
        """`GET /v3/{project_id}/vaults`: every vault matching all the filters given, each once.

        Reads pages of VAULT_PAGE_SIZE up to a short one. More than `max_pages` pages is a CbrError, never
        a partial list: a vault left out would silently get no backup.
        """
        filters = {
            name: value
            for name, value in (("policy_id", policy_id), ("object_type", object_type))
            if value is not None
        }
        path = f"/v3/{_segment(project_id)}/vaults"

        def page_at(offset: int) -> list[Vault]:
            params = {**filters, "limit": str(VAULT_PAGE_SIZE), "offset": str(offset)}
            answer = _parsed(
                "ListVault", ListVaultResponse, self._send("GET", project_id, path, params=params)
            )
            return answer.vaults

        # Offset paging over a list that changes meanwhile can show a vault twice.
        unique: dict[str, Vault] = {}
        for vault in _every_page("ListVault", page_at, max_pages=max_pages):
            unique.setdefault(vault.id, vault)
        return list(unique.values())

    def vault_ids_with_tags(
        self, project_id: str, tags: Mapping[str, Sequence[str]], *, max_pages: int = MAX_VAULT_PAGES
    ) -> list[str]:
        """The ids of the vaults that carry every key of `tags` with one of its values (any value for an
        empty list), each once: `POST /v3/{project_id}/vault/resource_instances/action`, `filter`.

        Pages as list_vaults does, to a short page, with the same bound. Bad `tags` is a ValueError
        naming the key.
        """
        conditions: list[TagsReq] = []
        for key, values in tags.items():
            try:
                # A lone string is refused, not read as a list of its characters.
                wanted = values if isinstance(values, str) else list(values)
                conditions.append(TagsReq.model_validate({"key": key, "values": wanted}))
            except ValidationError as error:
                raise ValueError(f"tags[{key!r}]: {_problems(error)}") from None
        if not 1 <= len(conditions) <= MAX_TAG_KEYS:
            raise ValueError(f"tags: give 1 to {MAX_TAG_KEYS} keys, not {len(conditions)}")
        path = f"/v3/{_segment(project_id)}/vault/resource_instances/action"

        def page_at(offset: int) -> list[str]:
            body = VaultResourceInstancesReq(
                action="filter", tags=conditions, limit=str(VAULT_PAGE_SIZE), offset=str(offset)
            )
            response = self._send(
                "POST",
                project_id,
                path,
                content=body.model_dump_json(exclude_none=True).encode(),
                headers={"Content-Type": JSON_CONTENT_TYPE},
            )
            answer = _parsed("ShowVaultResourceInstances", ShowVaultResourceInstancesResponse, response)
            return [resource.resource_id for resource in answer.resources]

        return list(dict.fromkeys(_every_page("ShowVaultResourceInstances", page_at, max_pages=max_pages)))

    def open(self) -> None:
        """Make the connection pool now (the CA bundle), not on the first call."""
        self._http.open()

    def close(self) -> None:
        self._http.close()
        self._tokens.close()

    def _send(
        self,
        method: str,
        project_id: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        time_left: float | None = None,
    ) -> http.Response:
        auth = _CbrAuth(self._credentials, self._tokens, project_id)
        try:
            return self._attempt(
                method, path, auth, params=params, content=content, headers=headers, time_left=time_left
            )
        except CbrError as error:
            if not error.is_auth_failure:
                raise
            logger.info("credentials refused (%s); refreshing them and trying once more", error.info.code)
        self._credentials.refresh()
        if auth.token is not None:
            self._tokens.invalidate(auth.token)
        auth = _CbrAuth(self._credentials, self._tokens, project_id)
        return self._attempt(
            method, path, auth, params=params, content=content, headers=headers, time_left=time_left
        )

    def _attempt(
        self,
        method: str,
        path: str,
        auth: _CbrAuth,
        *,
        params: Mapping[str, str] | None,
        content: bytes,
        headers: Mapping[str, str] | None,
        time_left: float | None,
    ) -> http.Response:
        patience = time_left if time_left is not None else self._http.timeout.read
        permit = self._limiter.acquire(within=patience)
        if permit is None:
            raise _no_permit_in_time(method, path, patience)
        timeout = self._timeout_for(None if time_left is None else time_left - permit.waited)
        verdict: Verdict = "unknown"
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                content=content,
                headers=headers,
                sign=auth,
                timeout=timeout,
            )
            verdict = _verdict(response)
        except http.TransportError as error:
            failure = classify_transport_error(error).scrubbed(auth.secrets)
            logger.info("CBR %s %s failed: %s", method, path, failure.info.message)
            raise failure from None
        finally:
            self._limiter.release(permit, verdict)
        request_id = response.headers.get("X-Request-Id")
        if response.status_code == 200:
            logger.debug("CBR %s %s -> 200 (request id %s)", method, path, request_id)
            return response
        failure = classify_response(response.status_code, response.headers, response.content)
        logger.info(
            "CBR %s %s -> %d %s (request id %s)",
            method,
            path,
            response.status_code,
            failure.info.code or "-",
            failure.info.request_id,
        )
        raise failure.scrubbed(auth.secrets)

    def _timeout_for(self, time_left: float | None) -> http.Timeout:
        """The configured timeouts, shortened to `time_left` when that is less."""
        configured = self._http.timeout
        if time_left is None or time_left >= configured.read:
            return configured
        return http.timeout(time_left, connect=min(time_left, configured.connect))

    @staticmethod
    def _checkpoint(what: str, response: http.Response) -> CheckpointCreate:
        return _parsed(what, CreateCheckpointResponse, response).checkpoint

    @staticmethod
    def _page(what: str, key: str, response: http.Response) -> tuple[list[dict[str, Any]], int | None]:
        try:
            document = json.loads(response.content)
        except ValueError:
            raise _unexpected_answer(what, "not JSON", response) from None
        if not isinstance(document, dict):
            raise _unexpected_answer(what, "not a JSON object", response)
        # The list may be null or missing, as any field the API does not guarantee: nothing listed.
        items = document.get(key)
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _unexpected_answer(what, f"no list of {key.replace('_', ' ')}", response)
        count = document.get("count")
        return items, count if isinstance(count, int) and not isinstance(count, bool) else None


def _every_page(what: str, page_at: Callable[[int], Sequence[ItemT]], *, max_pages: int) -> list[ItemT]:
    """Every item of a vault listing, `page_at(offset)` giving one page of VAULT_PAGE_SIZE; up to a short
    page, or a CbrError after `max_pages` full ones.

    The answers' totals (`count`, `total_count`) are not trusted to end the list: the reference does not
    say whether ListVault's `count` counts the page or the whole list, and reading it wrongly would stop
    after the first page. The price is one more call when the list fills its last page exactly.
    """
    items, complete = _collect_pages(
        lambda offset: (page_at(offset), None), page_size=VAULT_PAGE_SIZE, max_pages=max_pages
    )
    if not complete:
        message = (
            f"{what} has more than {max_pages} pages of {VAULT_PAGE_SIZE}; "
            f"stopped at {len(items)} items rather than act on part of the list"
        )
        raise CbrError(ErrorInfo("api", message, retryable=False))
    return items


def _verdict(response: http.Response) -> Verdict:
    """For the limiter: did the gateway let this call through?"""
    if response.status_code == 200:
        return "admitted"
    failure = classify_response(response.status_code, response.headers, response.content)
    return "throttled" if failure.info.kind == "throttled" else "admitted"


def _segment(value: str) -> str:
    """A path parameter, percent-encoded as the SDK does, so it can never change the path."""
    return quote(value, safe="")
