"""The connection pool over TLS on loopback: the peer's certificate and host name are checked, and a
handshake that fails is a ConnectError like any other connection that could not be made."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cbr_checkpointer import http as cbr_http
from cbr_checkpointer.tls import trusting_no_one

TIMEOUT = cbr_http.timeout(5.0)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"over": "tls"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback with a certificate for `localhost` only, from a CA of its own;
    yields its URL and the CA's certificate file."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test authority", ca_key, None, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("localhost", server_key, ca, ca_key)
    directory = tmp_path_factory.mktemp("tls")
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(
        server_cert.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(directory / "server.pem")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}", directory / "ca.pem"
    finally:
        server.shutdown()
        server.server_close()


def test_a_peer_with_a_trusted_certificate_for_its_name_is_answered(authority: tuple[str, Path]) -> None:
    url, ca_file = authority
    pool = cbr_http.ConnectionPool(ssl_context=ssl.create_default_context(cafile=ca_file), max_connections=1)

    response = pool.send(cbr_http.Request("GET", f"{url}/"), TIMEOUT)

    assert (response.status_code, response.json()) == (200, {"over": "tls"})
    pool.close()


def test_a_peer_whose_certificate_no_authority_vouches_for_is_a_connect_error(
    authority: tuple[str, Path],
) -> None:
    url, _ = authority
    pool = cbr_http.ConnectionPool(ssl_context=trusting_no_one(), max_connections=1)

    with pytest.raises(cbr_http.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        pool.send(cbr_http.Request("GET", f"{url}/"), TIMEOUT)
    pool.close()


def test_a_peer_whose_certificate_names_another_host_is_a_connect_error(authority: tuple[str, Path]) -> None:
    url, ca_file = authority
    pool = cbr_http.ConnectionPool(ssl_context=ssl.create_default_context(cafile=ca_file), max_connections=1)
    by_address = url.replace("localhost", "127.0.0.1")  # the same server, a name its certificate lacks

    with pytest.raises(cbr_http.ConnectError, match="mismatch"):
        pool.send(cbr_http.Request("GET", f"{by_address}/"), TIMEOUT)
    pool.close()
