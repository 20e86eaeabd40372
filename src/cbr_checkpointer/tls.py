"""The TLS contexts of the function's HTTP clients: certificates and host names are always checked.

Every client of an https endpoint shares one context with the operating system's CA bundle. Parsing
that bundle is the largest single cost of a cold start (~140 certificates), so it is done once, and
only when some endpoint speaks TLS. A plain-http endpoint (the local emulator, a moto server, the
secrets extension on localhost) never negotiates TLS: its client gets a context that still demands a
verified certificate but trusts no authority, so no bundle is parsed for it and it could never
complete a handshake with anyone.
"""

from __future__ import annotations

import os
import ssl
from functools import cache
from urllib.parse import urlsplit


class NoCertificateAuthorities(RuntimeError):
    """The operating system has no CA bundle where OpenSSL looks for one."""


@cache
def verified_tls_context() -> ssl.SSLContext:
    # The bundle OpenSSL was built to read, as httpx2 reads it with the environment ignored:
    # `load_default_certs()` would also follow SSL_CERT_FILE and SSL_CERT_DIR, and CA bundles come from
    # configuration, not the environment.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    if cafile is None and capath is None:
        missing = f"{paths.openssl_cafile} or {paths.openssl_capath}"
        raise NoCertificateAuthorities(f"no CA bundle at {missing}: no https endpoint can be verified")
    context.load_verify_locations(cafile, capath)
    return context


@cache
def trusting_no_one() -> ssl.SSLContext:
    # PROTOCOL_TLS_CLIENT requires a certificate and checks the host name; no CA is ever loaded.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def tls_context_for(endpoint: str) -> ssl.SSLContext:
    """The context for a client whose requests all go to `endpoint` (redirects are never followed)."""
    if urlsplit(endpoint).scheme.lower() == "http":
        return trusting_no_one()
    return verified_tls_context()
