"""A real `bao agent` with the shipped config and template renders the run's ARM_* file."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from tests.runner.conftest import RunnerWorld, guid, run_agent, seed


def test_agent_renders_the_env_file_from_the_plugin_path(
    world: RunnerWorld, tmp_path: Path
) -> None:
    seed(world.store, datetime.now(UTC))
    rendered, result = run_agent(world, tmp_path, "A", "apply")
    assert rendered.exists(), result.stderr[-2000:]
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    expected = {
        "ARM_CLIENT_ID": guid("app-I2"),
        "ARM_CLIENT_SECRET": "secret-of-I2",
        "ARM_TENANT_ID": guid("tenant-I2"),
        "ARM_SUBSCRIPTION_ID": guid("sub-I2"),
    }
    lines = dict(line.split("=", 1) for line in rendered.read_text().splitlines() if line)
    assert lines == expected
    vault_view = world.root.adapter.get("/v1/azure/creds/A/apply")["data"]
    assert lines["ARM_CLIENT_SECRET"] == vault_view["client_secret"]
