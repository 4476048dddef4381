"""A loopback TCP balancer in front of an OpenBao cluster that sends clients to the active node.

What a production load balancer in front of Vault does (HAProxy with
``option httpchk GET /v1/sys/health`` and ``on-marked-down shutdown-sessions``):
only the active node answers ``/v1/sys/health`` with 200 (standbys 429), so each
new connection goes to the node last seen active. The choice is cached briefly;
a failed connect re-probes at once; a background check every ``interval``
notices a failover and cuts the connections still open to a node that is no
longer active, so kept-alive clients reconnect through the new choice.

Why not any live node: an OpenBao 2.7 standby serves KV reads from its own,
slightly lagging copy and answers writes with a 307 to the active node while a
new leader is being elected; the product's read-then-check-and-set would see
stale versions. When no node is active, a new connection is closed at once
(a client sees a connection error and retries), as an LB without a healthy
backend refuses service.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence

import requests

from tests.tcpproxy import loopback_listener, splice


class ActiveNodeBalancer:
    def __init__(
        self,
        backends: Sequence[tuple[str, int]],
        *,
        interval: float = 0.25,
        cache_for: float = 0.5,
    ) -> None:
        self.backends = list(backends)
        self.interval = interval
        self.cache_for = cache_for
        self.listener = loopback_listener(128)
        self.port = int(self.listener.getsockname()[1])
        #: How many connections went to each backend, and how many found none active.
        self.connections = [0] * len(self.backends)
        self.refused = 0
        #: (monotonic time, backend index or None) each time the choice changed.
        self.changes: list[tuple[float, int | None]] = []
        self._active: int | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._conns: dict[int, list[socket.socket]] = {i: [] for i in range(len(self.backends))}
        self._closed = threading.Event()
        self._http = threading.local()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- health ----------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._http, "session", None)
        if session is None:
            session = requests.Session()
            self._http.session = session
        return session

    def _probe(self) -> int | None:
        """The first backend whose ``/v1/sys/health`` answers 200 (active), or None."""
        for i, (host, port) in enumerate(self.backends):
            try:
                response = self._session().get(f"http://{host}:{port}/v1/sys/health", timeout=1)
            except requests.RequestException:
                continue
            if response.status_code == 200:
                return i
        return None

    def active(self, refresh: bool = False) -> int | None:
        """The backend new connections go to; None while no node is active (re-probed)."""
        with self._lock:
            fresh = time.monotonic() - self._checked < self.cache_for
            if not refresh and fresh and self._active is not None:
                return self._active
        found = self._probe()
        self._record(found)
        return found

    def _record(self, found: int | None) -> None:
        stale: list[socket.socket] = []
        with self._lock:
            self._checked = time.monotonic()
            if found == self._active:
                return
            self._active = found
            self.changes.append((self._checked, found))
            for i, conns in self._conns.items():
                if i != found:
                    stale += conns
                    conns.clear()
        for s in stale:
            _shut(s)

    def _watch(self) -> None:
        while not self._closed.wait(self.interval):
            self._record(self._probe())

    # -- proxying --------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        index = self.active()
        for attempt in range(2):
            if index is None:
                break
            try:
                upstream = socket.create_connection(self.backends[index], timeout=2)
                break
            except OSError:
                index = self.active(refresh=True) if attempt == 0 else None
        if upstream is None or index is None:
            with self._lock:
                self.refused += 1
            _shut(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self._closed.is_set():
                _shut(client)
                _shut(upstream)
                return
            self.connections[index] += 1
            self._conns[index] += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b, index), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, index: int) -> None:
        splice(src, dst)
        with self._lock:
            conns = self._conns.get(index, [])
            for s in (src, dst):
                if s in conns:
                    conns.remove(s)
        src.close()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            conns = [s for group in self._conns.values() for s in group]
            for group in self._conns.values():
                group.clear()
        for s in conns:
            _shut(s)
        self.listener.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
