"""``azsidecar soak``: the demo's set-up for real minutes with short-lived logins everywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sidecar.cli.common import friendly_errors, setup_logging
from sidecar.cli.interrupts import positive_duration, run_interruptibly
from sidecar.demo.soak import SoakOptions, run_soak


@click.command()
@click.option("--minutes", type=click.FloatRange(min=1.0), default=10.0, show_default=True)
@click.option("--token-ttl", default="30s", show_default=True, callback=positive_duration)
@click.option("--token-max-ttl", default="90s", show_default=True, callback=positive_duration)
@click.option(
    "--cert-every",
    default="3m",
    show_default=True,
    callback=positive_duration,
    help="Real time between the resolver's certificate rotations (each lives twice that).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1.0),
    default=144.0,
    show_default=True,
    help="Emulated seconds per real second for the rotations (144: a day in 10 minutes).",
)
@click.option(
    "--logs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep every process's log in this directory.",
)
@friendly_errors
def soak(
    minutes: float,
    token_ttl: object,
    token_max_ttl: object,
    cert_every: object,
    speed: float,
    logs: Path | None,
) -> None:
    """Run OpenBao, the emulator, the daemon, the plugin, a TLS resolver and CI runs for
    MINUTES of real time with AppRole tokens of TOKEN_TTL (at most TOKEN_MAX_TTL) for every
    component; exit non-zero on any failed run, failed daemon operation or token problem."""
    setup_logging("warning")
    options = SoakOptions(
        minutes=minutes,
        token_ttl=token_ttl,  # type: ignore[arg-type]
        token_max_ttl=token_max_ttl,  # type: ignore[arg-type]
        cert_every=cert_every,  # type: ignore[arg-type]
        speed=speed,
        logs=logs,
    )
    result = run_interruptibly("the soak", lambda: run_soak(options, click.echo))
    click.echo("")
    if not result.ok:
        click.echo("FAILED: see the figures above")
        sys.exit(1)
    click.echo("OK: no run, daemon operation or token failed")
