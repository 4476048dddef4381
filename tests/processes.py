"""Run product commands as separate processes against a test world.

The emulator's clock is switched to running time (factor 1) and the child is
given the same origin, so both agree on "now" without sharing memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.world import World


def write_config(
    world: World, path: Path, *, timing: dict[str, Any] | None = None, **daemon: Any
) -> Path:
    clock = world.emu.state.clock
    if clock.mode == "manual":
        clock.set_mode("accelerated")
    state = clock.to_dict()
    origin = datetime.fromtimestamp(state["origin_virtual"]).astimezone().isoformat()
    lines = [
        "[vault]",
        f'addr = "{world.config.vault.addr}"',
        f'prefix = "{world.config.vault.prefix}"',
        "[azure]",
        f'login_url = "{world.config.azure.login_url}"',
        f'graph_url = "{world.config.azure.graph_url}"',
        f'arm_url = "{world.config.azure.arm_url}"',
        f'ca_bundle = "{world.config.azure.ca_bundle}"',
        "backoff_base = 0.2",
        "[timing]",
        *(f'{k} = "{v}"' for k, v in (timing or {}).items()),
        "[clock]",
        f"factor = {state['factor']}",
        f'origin = "{origin}"',
        f"origin_real = {state['origin_real']}",
        "[daemon]",
        *(f"{k} = {_toml(v)}" for k, v in daemon.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return f'"{value}"'


def azsidecar_env(token: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZSIDECAR_", "VAULT_"))}
    env["VAULT_TOKEN"] = token
    env.update(extra)
    return env


def azsidecar(*args: str) -> list[str]:
    return [sys.executable, "-m", "sidecar.cli.main", *args]


def run(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_daemon_once(
    world: World, config_path: Path, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One ``azsidecar daemon --once`` as its own process; ``crash_at`` sets a failpoint."""
    env = azsidecar_env(world.config.vault.token or "")
    if crash_at:
        env["AZSIDECAR_TEST_CRASH_AT"] = crash_at
    args = azsidecar(
        "daemon", "--once", "--no-metrics", "--config", str(write_config(world, config_path))
    )
    return run(args, env)
