"""A small HTTP listener for ``/metrics`` and ``/healthz`` that a slow client cannot exhaust.

The listener is unauthenticated and often reachable by anyone on the network,
so it must not give each connection a thread of its own (a few hundred
half-sent requests would hold as many threads forever). One selector thread
accepts connections and reads request heads without blocking; a connection
whose head is not complete within ``head_timeout`` is closed, and when more
than ``max_pending`` heads are being read the oldest is dropped. A complete
request goes to a fixed pool of ``workers`` threads, which run the WSGI app
and send the answer with a socket timeout. Only GET and HEAD, no bodies.

With an ``ssl_context`` the listener speaks HTTPS: each accepted connection
is wrapped server-side and its TLS handshake runs on the selector thread,
non-blocking, within the same ``head_timeout`` as the request head. Request
headers reach the app as ``HTTP_*`` environ keys and the peer as ``REMOTE_ADDR``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import selectors
import socket
import ssl
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
MAX_HEAD = 8192


class BoundedHTTPServer:
    """Serve ``app`` on ``host:port`` with a bounded number of threads and open heads."""

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApp,
        *,
        workers: int = 4,
        max_pending: int = 256,
        head_timeout: float = 5.0,
        send_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.app = app
        # A callable is asked for each accepted connection: a rotated certificate
        # (sidecar.tls_files.ReloadingServerContext) serves new connections at once.
        self.ssl_context = ssl_context
        self._handshaking: set[socket.socket] = set()
        self.head_timeout = head_timeout
        self.send_timeout = send_timeout
        self.max_pending = max_pending
        self._listener = socket.create_server((host, port), backlog=128)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pending: OrderedDict[socket.socket, tuple[float, bytearray]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="http-accept", daemon=True)

    def start(self) -> BoundedHTTPServer:
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        """Connections whose request head is still being read."""
        return len(self._pending)

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the selector thread -----------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                for key, _ in self._selector.select(timeout=0.2):
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._read(key.fileobj)  # type: ignore[arg-type]
                self._expire(time.monotonic())
        finally:
            for conn in list(self._pending):
                self._drop(conn)
            self._selector.close()
            self._listener.close()

    def _accept(self) -> None:
        for _ in range(64):
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the rest
                log.warning("metrics listener cannot accept: %s", exc.strerror)
                return
            conn.setblocking(False)
            if self.ssl_context is not None:
                context = self.ssl_context
                try:
                    if not isinstance(context, ssl.SSLContext):
                        context = context()
                    conn = context.wrap_socket(
                        conn, server_side=True, do_handshake_on_connect=False
                    )
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
                self._handshaking.add(conn)
            self._pending[conn] = (time.monotonic() + self.head_timeout, bytearray())
            self._selector.register(conn, selectors.EVENT_READ)
            while len(self._pending) > self.max_pending:
                self._drop(next(iter(self._pending)))

    def _read(self, conn: socket.socket) -> None:
        entry = self._pending.get(conn)
        if entry is None:
            return
        if conn in self._handshaking and not self._handshake(conn):
            return
        head = entry[1]
        while True:
            try:
                chunk = conn.recv(4096)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._drop(conn)
                return
            head += chunk
            # TLS may hold decrypted bytes the selector cannot see: read them now.
            if not isinstance(conn, ssl.SSLSocket) or not conn.pending() or len(head) > MAX_HEAD:
                break
        if b"\r\n\r\n" in head:
            self._selector.unregister(conn)
            del self._pending[conn]
            self._pool.submit(self._answer, conn, bytes(head))
        elif len(head) > MAX_HEAD:
            self._drop(conn)

    def _handshake(self, conn: socket.socket) -> bool:
        """Advance a TLS handshake; True once it is done (a failed one drops the connection)."""
        assert isinstance(conn, ssl.SSLSocket)
        try:
            conn.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False  # more bytes to come; head_timeout bounds the wait
        except (ssl.SSLError, OSError):
            self._drop(conn)
            return False
        self._handshaking.discard(conn)
        return True

    def _expire(self, now: float) -> None:
        for conn, (deadline, _) in list(self._pending.items()):
            if deadline > now:
                break  # ordered by arrival, so by deadline
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._pending.pop(conn, None)
        self._handshaking.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        conn.close()

    # -- a worker ----------------------------------------------------------------------

    def _answer(self, conn: socket.socket, head: bytes) -> None:
        with conn:
            conn.setblocking(True)
            conn.settimeout(self.send_timeout)
            with contextlib.suppress(OSError):
                conn.sendall(self._respond(head, _peer(conn)))

    def _respond(self, head: bytes, peer: str = "") -> bytes:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _plain(400, "Bad Request")
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return _plain(405, "Method Not Allowed")
        path, _, query = target.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": str(self.host),
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "REMOTE_ADDR": peer,
            "wsgi.url_scheme": "http" if self.ssl_context is None else "https",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for line in head.split(b"\r\n")[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if sep and name and name.strip() == name:
                key = "HTTP_" + name.upper().replace("-", "_")
                if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                    environ.setdefault(key, value.strip())
        status_line: list[str] = []
        headers: list[tuple[str, str]] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
            status_line.append(status)
            headers.extend(response_headers)
            return lambda data: None

        try:
            body = b"".join(self.app(environ, start_response))
        except Exception:  # the unauthenticated answer never carries error details
            log.exception("metrics listener: the app failed")
            return _plain(500, "Internal Server Error")
        head_out = [f"HTTP/1.1 {status_line[0]}"]
        head_out += [f"{k}: {v}" for k, v in headers if k.lower() != "content-length"]
        head_out += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        return "\r\n".join(head_out).encode("latin-1") + (b"" if method == "HEAD" else body)


def _peer(conn: socket.socket) -> str:
    try:
        return str(conn.getpeername()[0])
    except (OSError, IndexError):
        return ""


def _plain(status: int, reason: str) -> bytes:
    body = reason.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
