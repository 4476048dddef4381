"""The HTTPS server around the emulator, usable in-process or as ``azsidecar emulator serve``.

::

    with EmulatorServer(EmulatorConfig(clock_mode="manual", seed=7)) as emu:
        tenant = emu.state.seed_tenant(display_name="Contoso")
        mgmt = emu.state.seed_management_app(tenant.tenant_id)
        session = requests.Session(); session.verify = str(emu.ca_path)
        ...
        emu.state.clock.advance(600)
"""

from __future__ import annotations

import io
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sidecar.emulator.app import CLOSE_KEY, CLOSE_SENT_KEY, create_app
from sidecar.emulator.clock import Clock, ClockMode
from sidecar.emulator.issuer_keys import DEFAULT_CACHE_SECONDS, DEFAULT_REFETCH_SECONDS
from sidecar.emulator.replicas import LagProfile, named_profile
from sidecar.emulator.state import AssertionClock, EmulatorState
from sidecar.emulator.throttle import ThrottleConfig
from sidecar.emulator.tls import prepare_server_tls

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger(__name__)


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with TCP_NODELAY and HTTP/1.1 keep-alive.

    Werkzeug closes every connection after one response; Azure's front ends
    keep them open, and which replica serves a client depends on that (see
    ``emulator.routing``). The handler drops werkzeug's ``Connection: close``
    unless the answer itself asks to close (a gateway fault) or keep-alive is
    off; :class:`~sidecar.emulator.app.FaultMiddleware` reads each request body
    in full first, so nothing is left on the stream before the next request.
    Idle connections are closed after ``timeout`` seconds.
    """

    disable_nagle_algorithm = True
    keep_alive = True
    timeout = 60

    def make_environ(self) -> WSGIEnvironment:
        fake = self.rfile
        if isinstance(fake, _Exhausted):
            self.rfile = fake.real
        try:
            return self._environ_with_body()
        finally:
            self.rfile = fake

    def _environ_with_body(self) -> WSGIEnvironment:
        environ = super().make_environ()
        if self.keep_alive:
            # The whole body now, from the real stream, so none is left for the next request.
            stream = environ["wsgi.input"]
            if environ.get("wsgi.input_terminated"):
                body = stream.read()
            else:
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = 0
                body = stream.read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ.pop("wsgi.input_terminated", None)
            environ["CONTENT_LENGTH"] = str(len(body))
        return environ

    def run_wsgi(self) -> None:
        if not self.keep_alive:
            super().run_wsgi()
            return
        # After answering, werkzeug discards whatever the client sent next, which
        # on a keep-alive connection is the next request; give it nothing to read.
        real = self.rfile
        self.rfile = _Exhausted(real)  # type: ignore[assignment]
        try:
            super().run_wsgi()
        finally:
            self.rfile = real

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close":
            environ = getattr(self, "environ", None) or {}
            if self.keep_alive and not environ.get(CLOSE_KEY):
                return
            if environ.get(CLOSE_SENT_KEY):
                return
            environ[CLOSE_SENT_KEY] = True
        super().send_header(keyword, value)


class _Exhausted:
    """Stands in for the request stream while werkzeug runs the app: reads see no data.

    ``make_environ`` runs inside ``run_wsgi`` too; it puts :attr:`real` back
    while it reads the body.
    """

    def __init__(self, real: Any) -> None:
        self.real = real

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""


class QuietRequestHandler(RequestHandler):
    """No per-request access log lines (the emulator keeps its own call log)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    ca_dir: Path | None = None
    state_file: Path | None = None
    replicas: int = 3
    lag_profile: str | LagProfile = "default"
    clock_mode: ClockMode = "real"
    clock_factor: float = 1.0
    clock_start: float | None = None
    seed: int | None = None
    throttle: ThrottleConfig | None = None
    assertion_clock: AssertionClock = "either"
    allow_remote_admin: bool = False
    access_log: bool = False
    extra_hosts: tuple[str, ...] = ()
    snapshot_interval: float = 1.0
    lag_overrides: dict[str, Any] = field(default_factory=dict)
    #: One replica per keep-alive connection, as Azure's front ends do (False: per request).
    sticky_connections: bool = True
    #: HTTP/1.1 keep-alive (werkzeug alone closes every connection after one answer).
    keep_alive: bool = True
    #: Share of Graph requests answered by a failing gateway (see ``emulator.gateway``).
    gateway_fault_rate: float = 0.0
    #: CA bundle (PEM) trusted when fetching external OIDC issuers' discovery documents
    #: and JWKS for federated client assertions; None: the system trust store.
    issuer_ca: Path | None = None
    #: Emulated seconds an issuer's keys are cached (see ``emulator.issuer_keys``).
    issuer_key_cache_seconds: float = DEFAULT_CACHE_SECONDS
    #: At most one refetch per this many emulated seconds for a token with an unknown kid.
    issuer_key_refetch_seconds: float = DEFAULT_REFETCH_SECONDS

    def lag(self) -> LagProfile:
        if isinstance(self.lag_profile, LagProfile):
            base = self.lag_profile
        else:
            found = named_profile(self.lag_profile)
            if found is None:
                raise ValueError(f"unknown lag profile {self.lag_profile!r}")
            base = found
        if self.lag_overrides:
            return LagProfile.from_dict({**base.to_dict(), **self.lag_overrides})
        return base

    def clock(self) -> Clock:
        if self.clock_mode == "real" and self.clock_start is None and self.clock_factor == 1.0:
            return Clock("real")
        if self.clock_mode == "manual":
            return Clock("manual", origin_virtual=self.clock_start)
        return Clock("accelerated", factor=self.clock_factor, origin_virtual=self.clock_start)


class EmulatorServer:
    """Entra ID + Graph + ARM over HTTPS on one port, served from a background thread."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(
            replicas=self.config.replicas,
            lag=self.config.lag(),
            clock=self.config.clock(),
            seed=self.config.seed,
            throttle=self.config.throttle,
            assertion_clock=self.config.assertion_clock,
            sticky_connections=self.config.sticky_connections,
        )
        self.state.issuer_keys.configure(
            ca_file=self.config.issuer_ca,
            cache_seconds=self.config.issuer_key_cache_seconds,
            refetch_seconds=self.config.issuer_key_refetch_seconds,
        )
        if self.config.gateway_fault_rate:
            self.state.faults.gateway_errors(self.config.gateway_fault_rate)
        state_file = self.config.state_file
        if state_file is not None and state_file.is_file():
            self.state.load(state_file)
            log.info("emulator state loaded from %s", state_file)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saver: threading.Thread | None = None
        self._stopping = threading.Event()
        self._saved_changes = -1
        self.ca_path: Path = Path()
        self.port = 0

    @property
    def base_url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
        return f"https://{shown}:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/graph"

    @property
    def arm_url(self) -> str:
        return f"{self.base_url}/arm"

    def session(self) -> requests.Session:
        """A ``requests.Session`` that trusts the emulator's CA.

        ``trust_env`` is off because ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the
        environment would otherwise override ``Session.verify``.
        """
        session = requests.Session()
        session.verify = str(self.ca_path)
        session.trust_env = False
        return session

    def authority(self, tenant_id: str) -> str:
        return f"{self.base_url}/{tenant_id}"

    def start(self) -> EmulatorServer:
        if self._server is not None:
            return self
        if self.config.ca_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="azsidecar-emulator-")
            ca_dir = Path(self._tmp.name)
        else:
            ca_dir = self.config.ca_dir
        tls = prepare_server_tls(ca_dir, self.config.extra_hosts)
        self.ca_path = tls.ca_path
        app = create_app(self.state, allow_remote_admin=self.config.allow_remote_admin)
        base = RequestHandler if self.config.access_log else QuietRequestHandler
        handler = type(base.__name__, (base,), {"keep_alive": self.config.keep_alive})
        self._server = make_server(
            self.config.host,
            self.config.port,
            app,
            threaded=True,
            request_handler=handler,
            ssl_context=tls.ssl_context(),
        )
        self.port = self._server.server_port
        self._stopping.clear()
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05),
            name="emulator-http",
            daemon=True,
        )
        self._thread.start()
        if self.config.state_file is not None:
            self._saved_changes = self.state.changes
            self._saver = threading.Thread(
                target=self._save_loop, name="emulator-save", daemon=True
            )
            self._saver.start()
        return self

    def _save_loop(self) -> None:
        # Back off when saving is slow (large directories) so the lock stays mostly free.
        wait = self.config.snapshot_interval
        while not self._stopping.wait(wait):
            started = time.monotonic()
            try:
                self.save_if_changed()
            except OSError:
                log.exception("could not write the emulator state file")
            wait = max(self.config.snapshot_interval, 4 * (time.monotonic() - started))

    def save_if_changed(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        with self.state.lock:
            changes = self.state.changes
        if changes != self._saved_changes:
            self.state.save(path)
            self._saved_changes = changes

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._saver is not None:
            self._saver.join(timeout=10)
        if self.config.state_file is not None:
            self.state.save(self.config.state_file)
        self._server = self._thread = self._saver = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
