"""The TLS context every HTTP client shares: certificates and host names are always checked."""

from __future__ import annotations

import ssl

from cbr_checkpointer.tls import verified_tls_context


def test_the_shared_context_verifies_peers_against_loaded_certificate_authorities() -> None:
    context = verified_tls_context()

    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.cert_store_stats()["x509_ca"] > 0
    assert verified_tls_context() is context
