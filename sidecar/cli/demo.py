"""``azsidecar demo``: the whole product on this machine, days of emulated time in a minute."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click

from sidecar.cli.common import friendly_errors, setup_logging
from sidecar.cli.interrupts import positive_duration, run_interruptibly
from sidecar.demo.orchestration import DemoOptions, run_demo
from sidecar.emulator.replicas import PROFILES


@click.command()
@click.option(
    "--hours",
    type=click.FloatRange(min=0.5),
    default=48.0,
    show_default=True,
    help="Emulated hours to run the daemon for (26 or more shows a rotation).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1.0),
    default=2880.0,
    show_default=True,
    help="Emulated seconds per real second (2880: 48 h in a minute).",
)
@click.option(
    "--lag-profile",
    type=click.Choice(sorted(PROFILES)),
    default="default",
    show_default=True,
    help="Azure AD replication lag: none, default (85% within 60 s, up to 8 min),"
    " heavy, or stuck-replica (one replica 30 min behind).",
)
@click.option(
    "--runs-every",
    default="10m",
    show_default=True,
    callback=positive_duration,
    help="Emulated time between run slots (a plan and an apply run each).",
)
@click.option(
    "--progress-every",
    default="4h",
    show_default=True,
    callback=positive_duration,
    help="Emulated time between progress lines.",
)
@click.option("--replicas", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the lag draws.")
@click.option(
    "--logs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the logs of OpenBao, the emulator and the daemon in this directory.",
)
@friendly_errors
def demo(
    hours: float,
    speed: float,
    lag_profile: str,
    runs_every: timedelta,
    progress_every: timedelta,
    replicas: int,
    seed: int,
    logs: Path | None,
) -> None:
    """Run OpenBao, the Entra/Graph emulator and the daemon, with CI runs, then summarise.

    Starts a real OpenBao dev server with the plugin, the emulator and the
    daemon, sets everything up as an operator would, and runs the daemon on
    an accelerated clock while simulated runs plan and apply through the
    plugin and the resolver. Exits non-zero if any run failed. Every process
    it starts is stopped when it ends, also on Ctrl-C.
    """
    setup_logging("warning")
    options = DemoOptions(
        hours=hours,
        speed=speed,
        lag_profile=lag_profile,
        runs_every=runs_every,
        progress_every=progress_every,
        replicas=replicas,
        seed=seed,
        logs=logs,
    )
    result = run_interruptibly("the demo", lambda: run_demo(options, click.echo))
    click.echo("")
    if not result.ok:
        why = f"{result.failed} of {result.runs} runs failed"
        if not result.doctor_ok:
            why += "; azsidecar doctor found a problem"
        click.echo(f"FAILED: {why}")
        sys.exit(1)
    click.echo(
        f"OK: {result.runs} runs, none failed; {result.rotations} rotations and"
        f" {result.certificate_renewals} certificate renewals in {result.real_seconds:.0f} s."
        " Every process the demo started has been stopped."
    )
