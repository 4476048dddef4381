"""The issuer's discovery document and JWKS over HTTPS, for the emulator to fetch.

Entra (and the emulator standing in for it) reads an external issuer's
``/.well-known/openid-configuration`` and its ``jwks_uri`` over HTTPS. The
daemon's own listener for them is built elsewhere; tests serve
:meth:`sidecar.issuer.signing.Issuer.discovery` and
:meth:`~sidecar.issuer.signing.Issuer.jwks` with this small ``http.server``
thread, under a certificate of a CA made for the test (``ca_path``, which the
emulator is told to trust).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sidecar.emulator.tls import prepare_server_tls
from sidecar.issuer.signing import Issuer


class IssuerSite:
    """An HTTPS server on a loopback port; :meth:`serve` names the issuer it publishes."""

    def __init__(self, ca_dir: Path) -> None:
        tls = prepare_server_tls(ca_dir)
        self.ca_path = tls.ca_path
        self.issuer: Issuer | None = None
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                body = site.document(self.path)
                if body is None:
                    self.send_error(404)
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = tls.ssl_context().wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, issuer: Issuer) -> None:
        """Publish ``issuer``'s documents (its URL must be :attr:`url`)."""
        if issuer.identity.url != self.url:
            raise ValueError(f"the issuer's URL must be {self.url}")
        self.issuer = issuer

    def document(self, path: str) -> dict[str, Any] | None:
        issuer = self.issuer
        if issuer is None:
            return None
        if path == urlsplit(issuer.identity.discovery_url).path:
            return issuer.discovery()
        if path == urlsplit(issuer.identity.jwks_uri).path:
            return issuer.jwks()
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
