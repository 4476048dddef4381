"""The azsidecar command line: help, version, integration commands, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sidecar import __version__
from sidecar.cli.main import main
from tests.processes import write_config
from tests.world import World


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)
    return result.exit_code, result.output


def test_help_lists_subcommands_and_version() -> None:
    code, out = invoke(["--help"])
    assert code == 0
    for command in ("daemon", "emulator", "integration", "management", "plugin"):
        assert command in out
    assert invoke(["--version"]) == (0, f"azsidecar, version {__version__}\n")


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[daemon]\nconcurrency = 'lots'\n")
    code, out = invoke(["integration", "list", "--config", str(path)])
    assert code == 1
    assert "daemon.concurrency" in out and "whole number" in out
    assert "Traceback" not in out


def test_integration_lifecycle_through_the_cli(world: World, tmp_path: Path) -> None:
    tenant = world.add_tenant()
    env = {
        "AZSIDECAR_CONFIG": str(write_config(world, tmp_path / "c.toml")),
        "VAULT_TOKEN": world.config.vault.token or "",
    }
    code, out = invoke(
        ["integration", "create", "--name", "web", "--tenant", tenant.tenant_id], env
    )
    assert code == 0, out
    assert "/adminconsent?client_id=" in out
    record, _ = world.store.integration("web")
    secret = world.store.secret("web", 1).secret.reveal()

    code, out = invoke(["integration", "list", "--json"], env)
    assert code == 0
    [row] = json.loads(out)
    assert row["name"] == "web" and row["secrets"] == 1 and row["status"] == "ready"

    code, out = invoke(["integration", "show", "web"], env)
    assert code == 0
    assert record.client_id in out and secret not in out

    code, out = invoke(["integration", "consent-url", "web"], env)
    assert out.strip().endswith(
        "state=web&redirect_uri=https%3A%2F%2Flocalhost%2Fazsidecar%2Fconsent"
    )

    code, out = invoke(
        ["integration", "create", "--name", "web", "--tenant", tenant.tenant_id], env
    )
    assert code == 1 and "already exists" in out

    code, out = invoke(["integration", "create", "--name", "x/..", "--tenant", "nope"], env)
    assert code == 1 and "invalid integration name" in out

    code, out = invoke(["management", "status"], env)
    assert code == 0 and "<- active" in out and "PRIVATE" not in out

    code, out = invoke(["integration", "delete", "web"], env)
    assert code == 0, out
    assert f"deleted application {record.display_name}" in out
    assert "destroyed 1 stored secret(s)" in out
    assert world.emu.state.application(record.app_object_id) is None

    code, out = invoke(["integration", "show", "web"], env)
    assert code == 1 and "no integration named" in out
