"""The plugin process: handshake, gRPC server over mutual TLS, and shutdown.

Stops when OpenBao calls ``GRPCController/Shutdown``, on SIGTERM, or when
OpenBao dies: it does not close our stdin, so we watch for the parent process
changing (the orphan is re-parented) and leave. SIGINT is ignored, as
go-plugin servers do, so an operator's Ctrl-C on OpenBao does not kill the
plugin before OpenBao has shut it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping

from grpclib.server import Server

from sidecar.plugin.backend_service import BackendService
from sidecar.plugin.broker import Broker
from sidecar.plugin.handshake import HandshakeError, check_environment, handshake_line
from sidecar.plugin.services import Controller, Multiplexing, Stdio, Version
from sidecar.plugin.tls import client_context, generate_identity, server_context

log = logging.getLogger("sidecar.plugin")

PARENT_POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 2.0


def main(env: Mapping[str, str] | None = None) -> int:
    """Serve the plugin until OpenBao is done with it; the process exit code."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        client_cert = check_environment(os.environ if env is None else env)
    except HandshakeError as exc:
        print(f"azsidecar plugin: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(client_cert, os.getppid()))
    return 0


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_POLL_SECONDS)
    log.info("the server process %d is gone; exiting", parent)
    stop.set()


async def _serve(client_cert: str, parent: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    identity = generate_identity()
    broker = Broker(client_context(identity, client_cert))
    server = Server(
        [
            BackendService(broker),
            broker,
            Controller(stop),
            Stdio(stop),
            Version(),
            Multiplexing(),
        ]
    )
    socket_dir = tempfile.mkdtemp(
        prefix="azsidecar-plugin-", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR")
    )
    socket_path = os.path.join(socket_dir, "plugin.sock")
    watcher = asyncio.create_task(_watch_parent(parent, stop))
    try:
        await server.start(path=socket_path, ssl=server_context(identity, client_cert))
        print(handshake_line(socket_path, identity.cert_der), flush=True)
        sys.stdout = sys.stderr  # stdout carried the handshake line and nothing else
        await stop.wait()
    finally:
        watcher.cancel()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), STOP_GRACE_SECONDS)
        shutil.rmtree(socket_dir, ignore_errors=True)
        log.info("plugin stopped")
