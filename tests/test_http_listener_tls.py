"""The bounded HTTP listener over TLS (the resolver's ID-token endpoint, issue 18).

The handshake happens in the selector thread, so a client that opens a
connection and never completes it holds no worker and is dropped at
``head_timeout``, as a slow request head is; headers and the peer reach the app.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sidecar.errors import ConfigError
from sidecar.http_listener import BoundedHTTPServer
from sidecar.tls_files import ReloadingServerContext
from tests.runner.test_resolver_tls import server_certificate
from tests.runner.test_resolver_tls_reload import install


def _app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    seen = {
        "authorization": environ.get("HTTP_AUTHORIZATION"),
        "accept": environ.get("HTTP_ACCEPT"),
        "peer": environ.get("REMOTE_ADDR"),
        "scheme": environ.get("wsgi.url_scheme"),
        "query": environ.get("QUERY_STRING"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[BoundedHTTPServer, Path]]:
    cert, key = server_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server = BoundedHTTPServer(
        "127.0.0.1", 0, _app, workers=2, head_timeout=1.0, ssl_context=context
    ).start()
    yield server, cert
    server.shutdown()


def test_https_requests_reach_the_app_with_their_headers(
    tls_server: tuple[BoundedHTTPServer, Path],
) -> None:
    server, cert = tls_server
    session = requests.Session()
    session.trust_env = False
    for _ in range(3):  # each on its own connection (the listener closes after one answer)
        answer = session.get(
            f"https://127.0.0.1:{server.port}/oidc/token?stack=A&phase=plan",
            headers={"Authorization": "Bearer abc", "Accept": "application/json"},
            verify=str(cert),
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.json() == {
            "authorization": "Bearer abc",
            "accept": "application/json",
            "peer": "127.0.0.1",
            "scheme": "https",
            "query": "stack=A&phase=plan",
        }


def test_a_handshake_never_finished_is_dropped_at_the_head_timeout(
    tls_server: tuple[BoundedHTTPServer, Path],
) -> None:
    server, cert = tls_server
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    deadline = time.monotonic() + 5
    while server.pending < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.pending == 20
    while server.pending and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.pending == 0
    for conn in idle:
        conn.settimeout(2)
        assert conn.recv(1) == b""  # closed by the server
        conn.close()
    # And the listener still serves.
    answer = requests.get(f"https://127.0.0.1:{server.port}/", verify=str(cert), timeout=10)
    assert answer.status_code == 200


def test_plain_http_on_the_tls_port_gets_no_answer(
    tls_server: tuple[BoundedHTTPServer, Path],
) -> None:
    server, _ = tls_server
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(5)
        received = b""
        try:
            while chunk := conn.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"HTTP/1.1 200" not in received


def test_a_certificate_rotated_in_place_serves_the_next_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As cert-manager or Vault PKI rotate the files (each replaced by rename): the next
    connection gets the new pair, a half-done rotation (a key of another pair) is refused
    with the old pair still serving. The ID-token endpoint and the issuer's documents
    are served this way; before, they kept the pair loaded at start until it expired."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = server_certificate(tmp_path / "a")
    second = server_certificate(tmp_path / "b")
    cert, key = tmp_path / "tls.pem", tmp_path / "tls-key.pem"
    install(first, cert, key)
    context = ReloadingServerContext(str(cert), str(key), setting="issuer.tls_cert", label="t")
    server = BoundedHTTPServer("127.0.0.1", 0, _app, workers=2, ssl_context=context).start()
    caplog.set_level(logging.INFO, logger="sidecar.tls_files")

    def serving(ca: Path) -> bool:
        session = requests.Session()
        session.trust_env = False
        try:
            session.get(f"https://127.0.0.1:{server.port}/", verify=str(ca), timeout=10)
        except requests.exceptions.SSLError:
            return False
        finally:
            session.close()
        return True

    try:
        assert serving(first[0]) and not serving(second[0])
        shutil.copyfile(second[0], cert)  # the new certificate, the old key: refused
        assert serving(first[0]) and not serving(second[0])
        assert context.pair.refusals == 1
        assert any("does not belong" in r.getMessage() for r in caplog.records)
        install(second, cert, key)
        assert serving(second[0]) and not serving(first[0])
        assert context.pair.reloads == 1
    finally:
        server.shutdown()


def test_an_unusable_pair_is_refused_at_start_by_its_setting(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    _, key = server_certificate(tmp_path)
    with pytest.raises(ConfigError, match=r"daemon\.tls_cert.*no PEM certificate"):
        ReloadingServerContext(str(junk), str(key), setting="daemon.tls_cert", label="t")
