"""``azsidecar daemon``: rotation, leader lease, metrics and health."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from types import FrameType

import click

from sidecar import metrics
from sidecar.cli.common import config_option, friendly_errors, load, setup_logging
from sidecar.daemon import Daemon
from sidecar.issuer.listener import tls_context
from sidecar.resolver.server import start_resolver
from sidecar.runtime import make_runtime

log = logging.getLogger(__name__)


@click.command()
@config_option
@click.option("--metrics-addr", default=None, help="host:port for /metrics and /healthz.")
@click.option("--no-metrics", is_flag=True, help="Do not serve metrics and health.")
@click.option("--once", is_flag=True, help="Run one tick (if leader) and exit.")
@click.option("--no-resolver", is_flag=True, help="Do not serve the gRPC resolver.")
@click.option(
    "--issuer-addr",
    default=None,
    help="host:port for the OIDC issuer's discovery document and JWKS over HTTPS "
    "(overrides issuer.listen; needs issuer.url, tls_cert and tls_key).",
)
@friendly_errors
def daemon(
    config_path: str | None,
    metrics_addr: str | None,
    no_metrics: bool,
    once: bool,
    no_resolver: bool,
    issuer_addr: str | None,
) -> None:
    """Keep every integration supplied with replicated client secrets."""
    config = load(config_path)
    setup_logging(config.daemon.log_level, config.daemon.log_format)
    rt = make_runtime(config)
    if rt.vault_login is not None:
        rt.vault_login.start()
    worker = Daemon(rt)
    if worker.issuer is not None:
        # Checked before anything starts: a daemon that cannot serve its issuer refuses.
        settings = config.issuer
        if issuer_addr is not None:
            settings = dataclasses.replace(settings, listen=issuer_addr)
        if settings.listener() is not None:
            tls_context(settings.tls_cert, settings.tls_key)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not no_metrics:
        server = worker.serve_http(metrics_addr or config.daemon.metrics_addr)
        log.info("metrics and /healthz on %s:%d", server.host, server.port)
    issuer_server = None if once else worker.serve_issuer(issuer_addr)
    if issuer_server is not None:
        log.info("OIDC issuer documents on https://%s:%d", issuer_server.host, issuer_server.port)
    resolver = None
    if config.daemon.resolver_enabled and not no_resolver and not once:
        resolver = start_resolver(
            config,
            rt.store,
            rt.clock,
            mount=config.daemon.resolver_mount,
            vault_login=rt.vault_login,
        )
        log.info("gRPC resolver on %s", config.daemon.resolver_addr)
        if resolver.certificate is not None:
            metrics.RESOLVER_CERT_REMAINING.set_function(resolver.certificate.remaining_seconds)
    log.info("daemon %s started", worker.holder)
    try:
        worker.run(stop, ticks=1 if once else None)
    finally:
        if resolver is not None:
            resolver.stop()
        worker.close()
        if rt.vault_login is not None:
            rt.vault_login.stop()
