"""An external party's JSON documents over HTTPS: an OIDC issuer's site, as Entra fetches it.

Entra (and :mod:`sidecar.emulator.federation` standing in for it) reads an
external issuer's ``/.well-known/openid-configuration`` and ``jwks_uri`` over
HTTPS before it accepts a federated client assertion
(learn.microsoft.com/entra/workload-id/workload-identity-federation). Tests and
benchmarks that need such an issuer, without the daemon's own listener, serve
its documents with this small ``http.server`` thread on a loopback port, under
a certificate of a CA made in ``ca_dir`` (:attr:`JsonSite.ca_path`, which the
emulator is told to trust: ``EmulatorConfig.issuer_ca``). What is served is
the caller's business: ``document(path)`` answers each GET, None being a 404.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from sidecar.emulator.tls import prepare_server_tls

Documents = Callable[[str], "dict[str, Any] | None"]


class JsonSite:
    """``https://127.0.0.1:<port>`` answering each GET with ``document(path)`` as JSON."""

    def __init__(self, ca_dir: Path, document: Documents) -> None:
        tls = prepare_server_tls(ca_dir)
        self.ca_path = tls.ca_path
        #: Paths fetched, in order.
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                body = document(self.path)
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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = tls.ssl_context().wrap_socket(self._server.socket, server_side=True)
        self.origin = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> JsonSite:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
