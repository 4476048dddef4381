"""The chaos set-up rides out an election (seed 4's set-up, retried twice before it passed).

Seed 4 failed in set-up, before any fault: ``cannot reach Vault (ConnectionError)``
on the first write through the load balancer, which closes a new connection at
once while no node is active. On two shared cores a raft cluster with
``performance_multiplier = 1`` may still elect while its joined nodes become
voters. The set-up's Vault calls now go through a session that tries a
connection closed that way again.
"""

from __future__ import annotations

import socket
import threading

from bench.chaos.harness import setup_session
from tests.tcpproxy import loopback_listener

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
    b'Connection: close\r\n\r\n{"ok": true}'
)


def _serve(listener: socket.socket, refuse: int, seen: list[bytes]) -> None:
    """Close the first ``refuse`` connections unanswered (as the balancer does with no
    active node), then answer one request."""
    for n in range(refuse + 1):
        conn, _ = listener.accept()
        with conn:
            data = conn.recv(65536)
            if n < refuse:
                continue
            seen.append(data)
            conn.sendall(ANSWER)


def test_a_write_refused_while_no_node_is_active_is_sent_again() -> None:
    listener = loopback_listener()
    port = listener.getsockname()[1]
    seen: list[bytes] = []
    server = threading.Thread(target=_serve, args=(listener, 2, seen), daemon=True)
    server.start()
    try:
        response = setup_session().put(
            f"http://127.0.0.1:{port}/v1/secret/data/x", json={"data": {"a": 1}}, timeout=5
        )
    finally:
        server.join(timeout=10)
        listener.close()
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert len(seen) == 1 and seen[0].startswith(b"PUT /v1/secret/data/x")
