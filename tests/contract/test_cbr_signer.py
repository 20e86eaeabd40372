"""Our SDK-HMAC-SHA256 signatures are byte-identical to the official `huaweicloudsdkcore` Signer's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import httpx2 as httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from tests.fakes import AnsweringTransport

from cbr_checkpointer import http
from cbr_checkpointer.cbr import AkSkCredentials, AkSkSigner, PasswordCredentials, StaticCredentials, sign

AK = "AKEXAMPLE"
SK = "SKEXAMPLE"
VECTOR_BODY = b'{"checkpoint": {"vault_id": "v1", "parameters": {"incremental": true}}}'
VECTOR_SIGNATURE = "9e7c045523c7ae2df49f23caa5c6b4802dee864f31e081e207931427ff69134e"


def sdk_sign(
    method: str,
    host: str,
    resource_path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    *,
    credentials: BasicCredentials | None = None,
) -> SdkRequest:
    """Sign the way the SDK's client does: an SdkRequest built by `build_future_request`, then signed."""
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=resource_path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    if credentials is None:
        return Signer(BasicCredentials(AK, SK)).sign(request)
    return credentials.sign_request(request)


def test_the_published_vector() -> None:
    # Given the request of the published test vector
    headers = {
        "Content-Type": "application/json;charset=UTF-8",
        "X-Project-Id": "proj123",
        "X-Sdk-Date": "20250101T000000Z",
    }
    url = "https://cbr.cn-north-4.myhuaweicloud.com/v3/proj123/checkpoints"

    # When we sign it
    added = sign("POST", url, headers, VECTOR_BODY, ak=AK, sk=SK, now=datetime.now(UTC))

    # Then the Authorization header is the published one, and the SDK agrees
    assert added == {
        "Host": "cbr.cn-north-4.myhuaweicloud.com",
        "Authorization": "SDK-HMAC-SHA256 Access=AKEXAMPLE, "
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        f"Signature={VECTOR_SIGNATURE}",
    }
    sdk = sdk_sign(
        "POST", "cbr.cn-north-4.myhuaweicloud.com", "/v3/proj123/checkpoints", [], headers, VECTOR_BODY
    )
    assert sdk.header_params["Authorization"] == added["Authorization"]


def test_the_date_comes_from_now_in_utc() -> None:
    # Given a time in another zone
    now = datetime(2025, 1, 1, 8, 30, 5, tzinfo=timezone(timedelta(hours=8)))

    # When we sign without an X-Sdk-Date header
    added = sign("GET", "https://h/x", {}, b"", ak=AK, sk=SK, now=now)

    # Then the date is that instant in UTC
    assert added["X-Sdk-Date"] == "20250101T003005Z"


def test_missing_keys_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="ak"):
        sign("GET", "https://h/", {}, b"", ak="", sk=SK, now=datetime.now(UTC))
    with pytest.raises(ValueError, match="sk"):
        sign("GET", "https://h/", {}, b"", ak=AK, sk="", now=datetime.now(UTC))
    with pytest.raises(ValueError, match="timezone"):
        sign("GET", "https://h/", {}, b"", ak=AK, sk=SK, now=datetime(2025, 1, 1))


# --- generated requests ---------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "post", "get"])
HOSTS = st.sampled_from(
    ["cbr.cn-north-4.myhuaweicloud.com", "127.0.0.1:8443", "[::1]:9000", "cbr.example.com"]
)
SEGMENTS = st.lists(
    st.one_of(
        st.sampled_from(["v3", "checkpoints", "backups", "a b", "~user", "ü", "名字", "x+y", "%41", ""]),
        TEXT.filter(lambda segment: segment not in {".", ".."}),
    ),
    min_size=1,
    max_size=5,
)
QUERY = st.lists(
    st.tuples(st.sampled_from(["vault_id", "name", "status", "a b", "~", "ключ"]) | TEXT, TEXT),
    max_size=6,
)
HEADER_NAMES = st.sampled_from(["X-Custom", "x-lower", "X-With_Underscore", "User-Agent", "X-Project-Id"]) | (
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=10).map(
        lambda name: "X-G-" + name
    )
)
HEADER_VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20) | st.sampled_from(
    ["  padded  ", "\tq\t", "ü", ""]
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json;charset=UTF-8",
        "application/json",
        "application/bson",
        "text/plain",
        "application/xml",
    ]
)
DATES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC))


def _path(segments: list[str]) -> str:
    # The SDK fills path parameters with quote(value, safe="").
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


@settings(max_examples=300, deadline=None)
@given(
    method=METHODS,
    host=HOSTS,
    segments=SEGMENTS,
    query=QUERY,
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5),
    content_type=CONTENT_TYPES,
    body=st.binary(max_size=64),
    now=DATES,
    date_given=st.booleans(),
)
def test_generated_requests_sign_like_the_sdk(
    method: str,
    host: str,
    segments: list[str],
    query: list[tuple[str, str]],
    headers: dict[str, str],
    content_type: str | None,
    body: bytes,
    now: datetime,
    date_given: bool,
) -> None:
    # Given a request as the SDK client would build it, and the same request as a URL
    if content_type is not None:
        headers["Content-Type"] = content_type
    if date_given:
        headers["X-Sdk-Date"] = now.strftime("%Y%m%dT%H%M%SZ")
    resource_path = _path(segments)
    url = str(httpx.URL(f"https://{host}{resource_path}", params=query))

    # When both sign it (the SDK with the date we chose, when we chose one)
    ours = sign(method, url, headers, body, ak=AK, sk=SK, now=now)
    sdk_headers = headers if date_given else {**headers, "X-Sdk-Date": ours["X-Sdk-Date"]}
    sdk = sdk_sign(method, host, resource_path, query, sdk_headers, body)

    # Then the signatures and every header we add are identical
    assert ours["Authorization"] == sdk.header_params["Authorization"]
    for name, value in ours.items():
        assert sdk.header_params[name] == value
    assert set(sdk.header_params) == set(headers) | set(ours)


@settings(max_examples=100, deadline=None)
@given(
    segments=st.lists(
        # Raw control characters cannot appear in a URL string (URL parsers drop them).
        st.text(st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/?#%"), max_size=8).filter(
            lambda segment: segment not in {".", ".."}
        ),
        min_size=1,
        max_size=4,
    ),
    now=DATES,
)
def test_unencoded_paths_sign_like_the_sdk(segments: list[str], now: datetime) -> None:
    # Given a path with raw spaces and unicode, as a caller might write it in a URL string
    raw_path = "/" + "/".join(segments)
    headers = {"X-Sdk-Date": now.strftime("%Y%m%dT%H%M%SZ")}

    # When both sign it
    ours = sign("GET", f"https://cbr.example.com{raw_path}", headers, b"", ak=AK, sk=SK, now=now)
    sdk = sdk_sign("GET", "cbr.example.com", raw_path, [], headers, b"")

    # Then the signatures are identical
    assert ours["Authorization"] == sdk.header_params["Authorization"]


def _capture(
    signer: AkSkSigner,
    method: str,
    url: str,
    *,
    params: Sequence[tuple[str, str]] | None = None,
    content: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> httpx.Request:
    """The request `signer` signs, as it reaches the transport."""
    seen: list[httpx.Request] = []

    def handler(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return httpx.Response(200)

    client = http.Client(
        url, timeout=http.timeout(1.0), max_connections=1, transport=AnsweringTransport(handler)
    )
    client.request(method, "", params=params, content=content, headers=headers, sign=signer)
    return seen[0]


@settings(max_examples=100, deadline=None)
@given(query=QUERY, body=st.binary(max_size=64), token=st.booleans(), now=DATES)
def test_the_signer_signs_what_is_sent_like_the_sdk_with_temporary_credentials(
    query: list[tuple[str, str]], body: bytes, token: bool, now: datetime
) -> None:
    # Given (temporary) credentials and a CBR request
    security_token = "tmp-security-token/+=" if token else None
    credentials = AkSkCredentials(AK, SecretStr(SK), SecretStr(security_token) if security_token else None)
    signer = AkSkSigner(StaticCredentials(credentials), project_id="proj123", clock=lambda: now)

    # When our signer signs it on its way out
    sent = _capture(
        signer,
        "POST",
        "https://cbr.cn-north-4.myhuaweicloud.com/v3/proj123/checkpoints",
        params=query,
        content=body,
        headers={"Content-Type": "application/json;charset=UTF-8", "User-Agent": "agent/1"},
    )

    # Then the SDK, given the same request and credentials, produces the same headers and the same URI
    sdk_credentials = BasicCredentials(AK, SK, "proj123")
    if security_token:
        sdk_credentials = sdk_credentials.with_security_token(security_token)
    sdk = sdk_sign(
        "POST",
        "cbr.cn-north-4.myhuaweicloud.com",
        "/v3/proj123/checkpoints",
        query,
        {
            "User-Agent": "agent/1",
            "Content-Type": "application/json;charset=UTF-8",
            "X-Sdk-Date": now.strftime("%Y%m%dT%H%M%SZ"),
        },
        body,
        credentials=sdk_credentials,
    )
    for name in ("Authorization", "X-Sdk-Date", "X-Project-Id"):
        assert sent.headers[name] == sdk.header_params[name]
    assert sent.headers.get("X-Security-Token") == sdk.header_params.get("X-Security-Token")
    assert sent.url.raw_path.decode("ascii") == sdk.uri


def test_the_signer_refuses_password_credentials() -> None:
    # Given password credentials, which sign nothing
    signer = AkSkSigner(StaticCredentials(PasswordCredentials("user", SecretStr("pw"), "domain")))

    # Then signing refuses, without showing the password
    with pytest.raises(TypeError, match="AK/SK") as caught:
        _capture(signer, "GET", "https://h/")
    assert "pw" not in str(caught.value)


def test_credentials_never_show_their_secrets() -> None:
    aksk = AkSkCredentials("AKID", SecretStr("the-secret-key"), SecretStr("the-security-token"))
    password = PasswordCredentials("user", SecretStr("the-password"), "domain")
    for text in (
        repr(aksk),
        str(aksk),
        repr(password),
        repr(StaticCredentials(password)),
        repr(AkSkSigner(StaticCredentials(aksk))),
    ):
        assert "the-secret-key" not in text
        assert "the-security-token" not in text
        assert "the-password" not in text
