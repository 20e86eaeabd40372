"""The TLS contexts of the HTTP clients: certificates and host names are always checked, and the CA
bundle is parsed only for endpoints that speak TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from cbr_checkpointer.tls import (
    NoCertificateAuthorities,
    tls_context_for,
    trusting_no_one,
    verified_tls_context,
)


def test_the_shared_context_verifies_peers_against_loaded_certificate_authorities() -> None:
    context = verified_tls_context()

    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.cert_store_stats()["x509_ca"] > 0
    assert verified_tls_context() is context


@pytest.mark.parametrize(
    "endpoint",
    ["https://cbr.ap-southeast-1.myhuaweicloud.com", "HTTPS://iam.example.com/v3", "cbr.example.com"],
)
def test_an_endpoint_that_may_speak_tls_gets_the_verified_context(endpoint: str) -> None:
    assert tls_context_for(endpoint) is verified_tls_context()


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "HTTP://localhost:2773/"])
def test_a_plain_http_endpoint_gets_a_context_that_verifies_and_trusts_no_one(endpoint: str) -> None:
    context = tls_context_for(endpoint)

    assert context is trusting_no_one()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.cert_store_stats()["x509_ca"] == 0


def test_without_a_ca_bundle_where_openssl_looks_no_context_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an OpenSSL whose compiled-in bundle file and directory do not exist
    missing = ssl.get_default_verify_paths()._replace(
        openssl_cafile=str(tmp_path / "cert.pem"), openssl_capath=str(tmp_path / "certs")
    )
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: missing)
    verified_tls_context.cache_clear()

    # Then asking for the verified context says so, naming where it looked
    try:
        with pytest.raises(NoCertificateAuthorities, match=r"cert\.pem"):
            verified_tls_context()
    finally:
        verified_tls_context.cache_clear()
