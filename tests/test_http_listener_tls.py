"""The bounded HTTP listener over TLS (the resolver's ID-token endpoint, issue 18).

The handshake happens in the selector thread, so a client that opens a
connection and never completes it holds no worker and is dropped at
``head_timeout``, as a slow request head is; headers and the peer reach the app.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sidecar.http_listener import BoundedHTTPServer
from tests.runner.test_resolver_tls import server_certificate


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
