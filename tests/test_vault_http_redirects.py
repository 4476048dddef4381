"""The http.client transport answers as the urllib.request one did (issue 17).

:class:`HttpTransport` once spoke :mod:`urllib.request`; it now speaks
:mod:`http.client` and keeps urllib only to honour a proxy variable. Against
one small server that redirects, refuses and answers, both ways (the second
forced by an ``http_proxy`` that ``no_proxy`` bypasses) give the same answers,
the same errors and send the same headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

from sidecar.errors import VaultError
from sidecar.vault_http import HttpTransport


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # noqa: RUF012 - the test's record of requests

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any], **headers: str) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        record = {k.lower(): v for k, v in self.headers.items()}
        self.seen.append(record | {"method": self.command, "path": self.path, "body": body})
        path = self.path
        if path == "/v1/moved":  # a standby's redirect to the active node
            self._answer(307, {}, Location="/v1/here")
        elif path == "/v1/see-other":
            self._answer(303, {}, Location="/v1/here")
        elif path == "/v1/absolute":
            port = cast(ThreadingHTTPServer, self.server).server_port
            self._answer(301, {}, Location=f"http://127.0.0.1:{port}/v1/here")
        elif path == "/v1/loop":
            self._answer(302, {"errors": ["loop"]}, Location="/v1/loop")
        elif path == "/v1/nowhere":
            self._answer(302, {"errors": ["no location"]})
        elif path == "/v1/ftp":
            self._answer(302, {"errors": ["ftp"]}, Location="ftp://example.invalid/x")
        elif path == "/v1/here":
            self._answer(200, {"data": {"method": self.command, "body": body}})
        elif path == "/v1/denied":
            self._answer(403, {"errors": ["permission denied"]})
        else:
            self._answer(404, {"errors": []})

    do_GET = _route
    do_POST = _route


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _outcome(transport: HttpTransport, method: str, path: str) -> Any:
    try:
        if method == "GET":
            return ("ok", transport.get(path))
        return ("ok", transport.post(path, {"k": "v"}))
    except VaultError as exc:
        return (type(exc).__name__, str(exc), exc.status)


CASES = [
    ("GET", "moved"),
    ("POST", "moved"),
    ("GET", "see-other"),
    ("POST", "see-other"),
    ("POST", "absolute"),
    ("GET", "loop"),
    ("GET", "nowhere"),
    ("GET", "ftp"),
    ("GET", "denied"),
    ("GET", "missing"),
]


def test_http_client_answers_as_urllib_did(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    light = HttpTransport(server)
    light.token = "hvs.test"
    assert light._opener is None  # http.client's way
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    old = HttpTransport(server)
    old.token = "hvs.test"
    assert old._opener is not None  # urllib.request's way, the proxy bypassed
    for method, path in CASES:
        _Handler.seen.clear()
        mine = _outcome(light, method, path)
        sent_mine = list(_Handler.seen)
        _Handler.seen.clear()
        theirs = _outcome(old, method, path)
        if path == "ftp":  # urllib tries to fetch it; either way Vault is not reached
            assert mine[0] == theirs[0] == "VaultUnavailable"
        else:
            assert mine == theirs, (method, path)
        assert sent_mine == _Handler.seen, (method, path)
    assert _outcome(light, "GET", "moved") == ("ok", {"data": {"method": "GET", "body": ""}})
    assert _outcome(light, "POST", "see-other") == ("ok", {"data": {"method": "GET", "body": ""}})
    assert _outcome(light, "POST", "moved")[2] is None  # 307 on a POST: not followed, an error
