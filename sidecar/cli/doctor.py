"""``azsidecar doctor``: one line per check, what to do for each problem, non-zero on failure."""

from __future__ import annotations

import sys

import click

from sidecar.cli.common import config_option, friendly_errors, load
from sidecar.doctor import Check, run_checks, summary
from sidecar.runtime import make_runtime

_MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def _show(check: Check) -> None:
    click.echo(f"  {_MARKS[check.status]}  {check.line}")
    if check.fix and check.status in ("fail", "warn"):
        click.echo(f"        fix: {check.fix}")


@click.command()
@config_option
@click.option(
    "--plugin-mount",
    default=None,
    help="Where the plugin should be mounted (default: daemon.resolver_mount, i.e. azsidecar).",
)
@click.option("--plugin-name", default="azsidecar", show_default=True, help="Catalog name.")
@click.option("--no-plugin", is_flag=True, help="Runners use the resolver only: skip the plugin.")
@click.option(
    "--daemon-url",
    default=None,
    help="The daemon's metrics/health address (default: http://<daemon.metrics_addr>).",
)
@click.option("--no-daemon", is_flag=True, help="Do not ask the daemon's /healthz.")
@friendly_errors
def doctor(
    config_path: str | None,
    plugin_mount: str | None,
    plugin_name: str,
    no_plugin: bool,
    daemon_url: str | None,
    no_daemon: bool,
) -> None:
    """Check Vault, the token, KV, the plugin, Graph, the certificate and every integration.

    Uses the configuration the daemon uses (and its token). Exits 1 when
    something is wrong; each problem comes with what to do about it.
    """
    config = load(config_path)
    click.echo(
        f"azsidecar doctor: Vault {config.vault.addr}, KV {config.vault.kv_mount}/"
        f"{config.vault.prefix}, Graph {config.azure.graph_url}"
    )
    runtime = make_runtime(config)
    mount = None if no_plugin else (plugin_mount or config.daemon.resolver_mount)
    url = None if no_daemon else (daemon_url or f"http://{config.daemon.metrics_addr}")
    checks = []
    for check in run_checks(runtime, plugin_mount=mount, plugin_name=plugin_name, daemon_url=url):
        _show(check)
        checks.append(check)
    click.echo(summary(checks))
    if any(c.failed for c in checks):
        sys.exit(1)
