"""A loopback TCP proxy that a test can cut and restore, to make a server unreachable."""

from __future__ import annotations

import contextlib
import socket
import threading


def loopback_listener(backlog: int = 64) -> socket.socket:
    """A listening socket on a free 127.0.0.1 port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    return listener


def splice(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either ends, then shut both down."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = loopback_listener()
        self.port = int(self.listener.getsockname()[1])
        self.cut = threading.Event()
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=splice, args=(a, b), daemon=True).start()

    def sever(self) -> None:
        """New connections are closed at once and open ones are cut."""
        self.cut.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.cut.clear()

    def close(self) -> None:
        self._closed.set()
        self.sever()
        self.listener.close()
