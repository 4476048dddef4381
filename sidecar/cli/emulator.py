"""``azsidecar emulator``: run the Entra ID / Graph / ARM emulator, or its demo scenario."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from sidecar.emulator.clock import parse_time
from sidecar.emulator.replicas import PROFILES
from sidecar.emulator.scenario import run_scenario
from sidecar.emulator.server import EmulatorConfig, EmulatorServer
from sidecar.emulator.throttle import ThrottleConfig


@click.group()
def emulator() -> None:
    """Entra ID / Microsoft Graph / ARM emulator with replication lag."""


@emulator.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=0, show_default=True, help="0 picks a free port.")
@click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write (or reuse) ca.pem; default: a temporary directory.",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON snapshot loaded at start and written on change and at shutdown.",
)
@click.option("--replicas", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option(
    "--lag-profile", type=click.Choice(sorted(PROFILES)), default="default", show_default=True
)
@click.option(
    "--lag-fast-fraction",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of writes that replicate within --lag-fast-max.",
)
@click.option("--lag-fast-max", type=float, default=None, help="Seconds.")
@click.option("--lag-tail-max", type=float, default=None, help="Seconds; the longest lag.")
@click.option(
    "--clock-mode",
    type=click.Choice(["real", "accelerated", "manual"]),
    default=None,
    help="Default: accelerated if --clock-factor != 1, else real.",
)
@click.option(
    "--clock-factor",
    type=float,
    default=1.0,
    show_default=True,
    help="Emulated seconds per real second.",
)
@click.option("--clock-start", default=None, help="Emulated start time (ISO 8601 or epoch).")
@click.option("--seed", type=int, default=None, help="Seed for replica choice and lags.")
@click.option("--throttle-writes", type=float, default=None)
@click.option("--throttle-reads", type=float, default=None)
@click.option("--throttle-per-seconds", type=float, default=150.0, show_default=True)
@click.option(
    "--throttle-tenant-writes",
    type=float,
    default=None,
    help="Writes per --throttle-per-seconds for one tenant across all applications.",
)
@click.option(
    "--sticky/--per-request-routing",
    default=True,
    show_default=True,
    help="One replica per keep-alive connection (as Azure's front ends), or per request.",
)
@click.option(
    "--gateway-fault-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of Graph requests a gateway fails (503; 504 with HTML, committed for writes).",
)
@click.option(
    "--issuer-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar="AZSIDECAR_EMULATOR_ISSUER_CA",
    help="PEM CA bundle trusted for external OIDC issuers of federated client assertions "
    "(default: the system trust store).",
)
@click.option(
    "--issuer-key-cache",
    type=click.FloatRange(min=0.0),
    default=300.0,
    show_default=True,
    envvar="AZSIDECAR_EMULATOR_ISSUER_KEY_CACHE",
    help="Emulated seconds an external issuer's keys are cached.",
)
@click.option(
    "--allow-remote-admin", is_flag=True, help="Serve /_emulator/ to non-loopback clients."
)
@click.option("--access-log", is_flag=True, help="Log every request line to stderr.")
@click.option(
    "--san", "extra_hosts", multiple=True, help="Extra DNS name / IP for the server cert."
)
def serve(
    host: str,
    port: int,
    ca_dir: Path | None,
    state_file: Path | None,
    replicas: int,
    lag_profile: str,
    lag_fast_fraction: float | None,
    lag_fast_max: float | None,
    lag_tail_max: float | None,
    clock_mode: str | None,
    clock_factor: float,
    clock_start: str | None,
    seed: int | None,
    throttle_writes: float | None,
    throttle_reads: float | None,
    throttle_per_seconds: float,
    throttle_tenant_writes: float | None,
    sticky: bool,
    gateway_fault_rate: float,
    issuer_ca: Path | None,
    issuer_key_cache: float,
    allow_remote_admin: bool,
    access_log: bool,
    extra_hosts: tuple[str, ...],
) -> None:
    """Serve over HTTPS; print one JSON line with base_url and ca_path once listening."""
    overrides = {
        k: v
        for k, v in (
            ("fast_fraction", lag_fast_fraction),
            ("fast_max", lag_fast_max),
            ("tail_max", lag_tail_max),
        )
        if v is not None
    }
    mode = clock_mode or ("accelerated" if clock_factor != 1.0 else "real")
    try:
        config = EmulatorConfig(
            host=host,
            port=port,
            ca_dir=ca_dir,
            state_file=state_file,
            replicas=replicas,
            lag_profile=lag_profile,
            lag_overrides=overrides,
            clock_mode=mode,  # type: ignore[arg-type]
            clock_factor=clock_factor,
            clock_start=parse_time(clock_start) if clock_start else None,
            seed=seed,
            throttle=ThrottleConfig(
                writes=throttle_writes,
                reads=throttle_reads,
                per_seconds=throttle_per_seconds,
                tenant_writes=throttle_tenant_writes,
            ),
            sticky_connections=sticky,
            gateway_fault_rate=gateway_fault_rate,
            issuer_ca=issuer_ca,
            issuer_key_cache_seconds=issuer_key_cache,
            allow_remote_admin=allow_remote_admin,
            access_log=access_log,
            extra_hosts=extra_hosts,
        )
        config.lag()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = EmulatorServer(config).start()
    try:
        line = {
            "base_url": server.base_url,
            "ca_path": str(server.ca_path),
            "graph_url": server.graph_url,
            "arm_url": server.arm_url,
            "admin_url": f"{server.base_url}/_emulator",
            "port": server.port,
            "pid": os.getpid(),
            "state_file": str(state_file) if state_file else None,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    click.echo("emulator stopped", err=True)


@emulator.command()
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--lag-profile", type=click.Choice(sorted(PROFILES)), default="default", show_default=True
)
def scenario(seed: int, lag_profile: str) -> None:
    """Demo: a new secret is rejected by lagging replicas, then accepted, then expires."""
    result = run_scenario(click.echo, seed=seed, lag_profile=lag_profile)
    if not result.ok:
        raise click.ClickException("the scenario did not behave as expected")
