"""A real `bao agent` with the shipped config and template renders the run's ARM_* file."""

from __future__ import annotations

import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sidecar.devstack.openbao import find_bao
from tests.runner.conftest import ROOT, RunnerWorld, seed, write_file


def test_agent_renders_the_env_file_from_the_plugin_path(
    world: RunnerWorld, tmp_path: Path
) -> None:
    seed(world.store, datetime.now(UTC))
    shipped = ROOT / "vault-config"
    config = (shipped / "agent.hcl").read_text()
    config = config.replace("https://vault.internal:8200", world.addr)
    config = config.replace("/etc/azsidecar/agent/", f"{shipped}/")
    config = config.replace("/run/azsidecar/", f"{tmp_path}/")
    config_file = write_file(tmp_path / "agent.hcl", config + "\nexit_after_auth = true\n")
    write_file(tmp_path / "ci.jwt", world.jwt("A", "apply"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env |= {"AZSIDECAR_STACK": "A", "AZSIDECAR_PHASE": "apply"}
    result = subprocess.run(
        [find_bao(), "agent", f"-config={config_file}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rendered = tmp_path / "arm.env"
    assert rendered.exists(), result.stderr[-2000:]
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    expected = {
        "ARM_CLIENT_ID": "app-I2",
        "ARM_CLIENT_SECRET": "secret-of-I2",
        "ARM_TENANT_ID": "tenant-I2",
        "ARM_SUBSCRIPTION_ID": "sub-I2",
    }
    lines = dict(line.split("=", 1) for line in rendered.read_text().splitlines() if line)
    assert lines == expected
    vault_view = world.root.adapter.get("/v1/azure/creds/A/apply")["data"]
    assert lines["ARM_CLIENT_SECRET"] == vault_view["client_secret"]
