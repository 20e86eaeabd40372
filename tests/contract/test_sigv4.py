"""Our SigV4 signer against botocore's `SigV4Auth` (dev-only oracle) and the AWS SigV4 test suite."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from unittest.mock import patch
from urllib.parse import quote

import httpx2 as httpx
from botocore.auth import SigV4Auth as BotocoreSigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from tests.fakes import AnsweringTransport

from cbr_checkpointer import http
from cbr_checkpointer.aws import AwsCredentials, SigV4Signer, sign

SIGNING_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


@dataclass(frozen=True)
class Scope:
    """Who signs, where and when: the same inputs for our signer and for botocore's."""

    credentials: AwsCredentials
    region: str
    service: str
    now: datetime

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign(
            method,
            url,
            headers,
            body,
            credentials=self.credentials,
            region=self.region,
            service=self.service,
            now=self.now,
        )

    def botocore_signed(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
        token = self.credentials.session_token
        oracle_credentials = Credentials(
            self.credentials.access_key_id,
            self.credentials.secret_access_key.get_secret_value(),
            token.get_secret_value() if token else None,
        )
        frozen_now = self.now.astimezone(UTC).replace(tzinfo=None)
        with patch("botocore.auth.get_current_datetime", return_value=frozen_now):
            BotocoreSigV4Auth(oracle_credentials, self.service, self.region).add_auth(request)
        return {name: request.headers[name] for name in SIGNING_HEADERS if name in request.headers}


def signing_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in SIGNING_HEADERS if name in headers}


def test_the_aws_test_suite_get_vanilla_vector() -> None:
    # https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html (get-vanilla)
    credentials = AwsCredentials("AKIDEXAMPLE", SecretStr("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))

    signed = sign(
        "GET",
        "https://example.amazonaws.com/",
        {},
        b"",
        credentials=credentials,
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
    )

    assert signed == {
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    }


def test_a_put_events_call_with_a_session_token_matches_botocore() -> None:
    credentials = AwsCredentials(
        "ASIAEXAMPLEEXAMPLE01",
        SecretStr("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        SecretStr("IQoJb3JpZ2luX2VjEXAMPLE//////////token=="),
    )
    body = json.dumps(
        {
            "Entries": [
                {
                    "Source": "cbr.checkpointer",
                    "DetailType": "CBR Checkpoint Created",
                    "Detail": json.dumps({"version": "1", "outcome": "created"}),
                    "EventBusName": "cbr-checkpointer",
                    "Resources": [],
                }
            ]
        }
    ).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSEvents.PutEvents",
        "Content-Length": str(len(body)),
    }
    scope = Scope(credentials, "eu-west-1", "events", datetime(2026, 11, 27, 6, 30, 5, tzinfo=UTC))
    url = "https://events.eu-west-1.amazonaws.com/"

    ours = scope.sign("POST", url, headers, body)
    theirs = scope.botocore_signed("POST", url, headers, body)

    assert signing_headers(ours) == theirs
    assert (
        "SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"
        in (ours["Authorization"])
    )
    assert {name: ours[name] for name in headers} == headers


def encoded(text: str) -> str:
    return quote(text, safe="-_.~")


segment = st.one_of(
    st.sampled_from(["", ".", "..", "v3", "checkpoints", "a b", "ü", "%41", "~tilde", "x:y"]),
    st.text(min_size=1, max_size=8),
).map(encoded)
path = st.lists(segment, max_size=5).map(lambda segments: "/" + "/".join(segments))
query_pair = st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)).map(
    lambda pair: f"{encoded(pair[0])}={encoded(pair[1])}"
)
query = st.lists(query_pair, max_size=4).map("&".join)
header_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(
    lambda name: f"x-test-{name}"
)
header_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=20
)
endpoint = st.sampled_from(
    [
        "https://{service}.{region}.amazonaws.com",
        "https://{service}.{region}.amazonaws.com:443",
        "http://127.0.0.1:5000",
        "http://localhost",
        "https://vpce-0a1b2c3d.{service}.{region}.vpce.amazonaws.com:8443",
        "http://[::1]:4566",
    ]
)
secret = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
generated_credentials = st.builds(
    AwsCredentials,
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=20),
    secret.map(SecretStr),
    st.none() | secret.map(SecretStr),
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    service=st.sampled_from(["events", "dynamodb", "sqs", "secretsmanager"]),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"]),
    endpoint_template=endpoint,
    path=path,
    query=query,
    extra_headers=st.dictionaries(header_name, header_value, max_size=4),
    with_user_agent=st.booleans(),
    body=st.binary(max_size=256),
    credentials=generated_credentials,
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
)
def test_generated_requests_sign_like_botocore(
    method: str,
    service: str,
    region: str,
    endpoint_template: str,
    path: str,
    query: str,
    extra_headers: dict[str, str],
    with_user_agent: bool,
    body: bytes,
    credentials: AwsCredentials,
    now: datetime,
) -> None:
    url = endpoint_template.format(service=service, region=region) + path + (f"?{query}" if query else "")
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"Target.{method}",
        **extra_headers,
    }
    if with_user_agent:
        headers["User-Agent"] = "cbr-checkpointer/0.1"
    scope = Scope(credentials, region, service, now.replace(microsecond=0))

    ours = scope.sign(method, url, headers, body)
    theirs = scope.botocore_signed(method, url, headers, body)

    assert signing_headers(ours) == theirs
    assert "user-agent" not in ours["Authorization"]


def test_the_signer_signs_exactly_what_the_client_sends() -> None:
    credentials = AwsCredentials(
        "AKIAIOSFODNN7EXAMPLE", SecretStr("secret/key+EXAMPLE"), SecretStr("session-token")
    )
    now = datetime(2026, 11, 27, 6, 30, 5, tzinfo=UTC)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    signer = SigV4Signer(credentials, region="us-east-1", service="dynamodb", clock=lambda: now)
    client = http.Client(
        "http://127.0.0.1:5000",
        timeout=http.timeout(1.0),
        max_connections=1,
        transport=AnsweringTransport(answer),
    )
    client.request(
        "POST",
        "/",
        content=b'{"TableName":"ledger"}',
        headers={"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0"},
        sign=signer,
    )

    (request,) = sent
    unsigned = {
        name: value
        for name, value in request.headers.items()
        if name not in {"authorization", "x-amz-date", "x-amz-security-token"}
    }
    theirs = Scope(credentials, "us-east-1", "dynamodb", now).botocore_signed(
        "POST", str(request.url), unsigned, request.content
    )
    assert request.headers["authorization"] == theirs["Authorization"]
    assert request.headers["x-amz-date"] == "20261127T063005Z"
    assert request.headers["x-amz-security-token"] == "session-token"


def test_credentials_never_print_their_secrets() -> None:
    credentials = AwsCredentials("AKIAIOSFODNN7EXAMPLE", SecretStr("the-secret-key"), SecretStr("the-token"))

    assert "the-secret-key" not in repr(credentials)
    assert "the-token" not in repr(credentials)
    assert "the-secret-key" not in str(credentials)
