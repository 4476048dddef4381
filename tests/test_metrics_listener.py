"""The daemon's unauthenticated /metrics + /healthz listener is bounded (issue 16, point 7).

It used to start a thread per connection with no read timeout (150 half-sent
requests: 150 threads, kept) and /healthz returned whole error texts (Graph
and Vault paths, tenant ids). Here a real daemon (real OpenBao, the emulator)
serves it while 500 connections send half a request each.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from datetime import timedelta

import requests

from sidecar.daemon import Daemon
from sidecar.runtime import Runtime, make_store
from tests.tcpproxy import TcpProxy
from tests.test_rotation_e2e import create_integrations
from tests.world import World

HALF_OPEN = 500


def _half_open(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        sockets.append(sock)
    return sockets


def test_500_half_open_connections_hold_no_threads_and_time_out(world: World) -> None:
    daemon = Daemon(world.runtime, holder="t")
    server = daemon.serve_http("127.0.0.1:0")
    server.head_timeout = 2.0
    try:
        assert requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).ok
        before = threading.active_count()
        sockets = _half_open(server.port, HALF_OPEN)
        try:
            time.sleep(0.5)
            during = threading.active_count()
            # Legitimate scrapes are still answered at once.
            started = time.monotonic()
            for _ in range(5):
                answer = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
                assert answer.status_code == 200
                assert "azsidecar" in answer.text
            took = time.monotonic() - started
            after = threading.active_count()
            print(
                f"\nthreads before {before}, with {HALF_OPEN} half-open {during},"
                f" after 5 scrapes {after}; heads pending {server.pending};"
                f" 5 scrapes {took * 1000:.0f} ms"
            )
            # The fixed worker pool (4) at most, nothing per connection.
            assert during - before <= 4 and after - before <= 4
            assert server.pending <= server.max_pending
            assert took < 5
            # Idle heads are closed: every half-open socket sees EOF within the timeout.
            deadline = time.monotonic() + 10
            closed = 0
            for sock in sockets:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    closed += sock.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
            assert closed == HALF_OPEN
            assert server.pending == 0
        finally:
            for sock in sockets:
                sock.close()
    finally:
        daemon.close()


def test_healthz_names_the_kind_of_error_not_its_details(world: World) -> None:
    create_integrations(world, count=1, tenants=1)
    proxy = TcpProxy("127.0.0.1", int(world.config.vault.addr.rsplit(":", 1)[1]))
    config = replace(world.config, vault=replace(world.config.vault, addr=proxy.addr))
    daemon = Daemon(Runtime(config=config, clock=world.time, store=make_store(config)), "t")
    server = daemon.serve_http("127.0.0.1:0")
    try:
        world.time.advance(timedelta(hours=22, minutes=30))
        proxy.sever()
        assert not daemon.tick()
        detail = daemon.health.last_error
        assert ":" in detail  # the full text stays in the daemon (and its log)
        body = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert body.status_code == 503
        health = body.json()
        assert health["last_error"] == detail.split(":", 1)[0]
        assert config.vault.prefix not in body.text
        assert proxy.addr.rsplit(":", 1)[1] not in body.text
        assert detail.split(":", 1)[1].strip() not in body.text
    finally:
        proxy.restore()
        proxy.close()
        daemon.close()
