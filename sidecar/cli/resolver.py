"""``azsidecar resolver``: serve the gRPC resolver alone (the daemon can embed it too)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from sidecar.cli.common import config_option, friendly_errors, load, setup_logging
from sidecar.model import DEFAULT_CREDS_MOUNT
from sidecar.resolver.server import start_resolver
from sidecar.runtime import make_runtime


@click.command()
@click.option("--addr", default=None, help="Listen address (default: daemon.resolver_addr).")
@click.option(
    "--mount",
    default=None,
    help="Mount whose creds/<stack>/<phase> path callers' policies name"
    f" (default: daemon.resolver_mount, i.e. {DEFAULT_CREDS_MOUNT}).",
)
@config_option
@friendly_errors
def resolver(addr: str | None, mount: str | None, config_path: str | None) -> None:
    """Answer runners' requests for the ready credential of a stack's phase.

    Reads KV with its own token (give it the read-only `azsidecar-plugin`
    policy) and authorises each caller with the caller's own token.
    """
    config = load(config_path)
    setup_logging(config.daemon.log_level, config.daemon.log_format)  # before the first login
    rt = make_runtime(config)
    if rt.vault_login is not None:
        rt.vault_login.start()  # renew / log in again for as long as it serves
    handle = start_resolver(
        rt.config,
        rt.store,
        rt.clock,
        mount=mount or rt.config.daemon.resolver_mount,
        addr=addr,
        vault_login=rt.vault_login,
    )
    click.echo(f"resolver serving on port {handle.port}", err=True)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    serving = True
    while not stopping.wait(1.0):
        if rt.vault_login is not None:
            # The health service tells load balancers when the resolver's own token fails.
            problem = rt.vault_login.status().problem
            if bool(problem) == serving:
                serving = not problem
                handle.set_serving(serving)
    handle.stop()
    if rt.vault_login is not None:
        rt.vault_login.stop()
