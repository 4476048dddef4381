"""`azsidecar doctor`: a healthy set-up passes; a broken one is named, with what to do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sidecar.cli.doctor import doctor
from sidecar.doctor import run_checks
from sidecar.emulator import EmulatorServer
from sidecar.integrations import Integrations
from sidecar.store import Store
from sidecar.vault import VaultKV
from tests.plugin.conftest import PluginBao, start_plugin_bao
from tests.processes import write_config
from tests.test_rotation_e2e import create_integrations
from tests.world import World, make_world


@pytest.fixture
def plugin_bao(tmp_path: Path) -> Iterator[PluginBao]:
    """An OpenBao of its own with the plugin installed and mounted at azure/."""
    pb = start_plugin_bao(tmp_path / "plugins")
    try:
        pb.install()
        yield pb
    finally:
        pb.server.cleanup()


@pytest.fixture
def healthy(plugin_bao: PluginBao, emulator: EmulatorServer) -> World:
    """The management set-up, the plugin configured, two integrations consented and ready."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    store = Store(VaultKV(plugin_bao.client, "secret", prefix))
    server = plugin_bao.server
    world = make_world(emulator, store, server.addr, server.root_token)
    plugin_bao.client.write_data(
        "azure/config",
        data={"vault_addr": server.addr, "token": server.root_token, "prefix": prefix},
    )
    create_integrations(world, count=2, tenants=2)
    return world


def invoke(world: World, tmp_path: Path) -> Result:
    config = write_config(world, tmp_path / "doctor.toml")
    return CliRunner().invoke(
        doctor,
        ["--config", str(config), "--no-daemon", "--plugin-mount", "azure"],
        env={"VAULT_TOKEN": world.config.vault.token or "", "AZSIDECAR_CONFIG": None},
    )


def test_healthy_setup_passes(healthy: World, tmp_path: Path) -> None:
    checks = list(run_checks(healthy.runtime, plugin_mount="azure"))
    assert [c for c in checks if c.status != "ok"] == []
    lines = "\n".join(c.line for c in checks)
    assert "unsealed" in lines
    assert "KV version 2" in lines
    assert "plugin azsidecar registered" in lines
    assert "plugin mounted at azure/" in lines
    assert "Graph reachable" in lines
    assert "days left" in lines
    for name in ("int-0", "int-1"):
        assert f"integration {name}: consent granted" in lines
        assert f"integration {name} (used by stack-" in lines
    result = invoke(healthy, tmp_path)
    assert result.exit_code == 0, result.output
    assert "everything checked is working" in result.output


def test_plugin_not_mounted_is_named(healthy: World, plugin_bao: PluginBao, tmp_path: Path) -> None:
    plugin_bao.client.sys.disable_secrets_engine("azure")  # type: ignore[no-untyped-call]
    result = invoke(healthy, tmp_path)
    assert result.exit_code == 1, result.output
    assert "FAIL  plugin not mounted: nothing at azure/" in result.output
    assert "fix: azsidecar plugin install" in result.output
    assert "1 problem(s) to fix" in result.output


def test_expired_certificate_is_named(healthy: World, tmp_path: Path) -> None:
    healthy.time.advance(timedelta(days=31))  # past the management certificate's 30 days
    result = invoke(healthy, tmp_path)
    assert result.exit_code == 1, result.output
    assert "FAIL  management certificate expired" in result.output
    assert "manual recovery" in result.output
    assert "Graph reachable" not in result.output


def test_missing_consent_is_named(healthy: World, tmp_path: Path) -> None:
    rt = healthy.runtime
    tenant = healthy.add_tenant()
    service = Integrations(rt.store, rt.graph(), rt.clock, rt.config.timing)
    service.create("no-consent", tenant.tenant_id, tenant.subscription_id)
    healthy.time.advance(timedelta(minutes=15))
    checks = list(run_checks(rt, plugin_mount="azure"))
    warned = [c for c in checks if c.status == "warn"]
    assert any("no consent in tenant" in c.line and "AADSTS700016" in c.line for c in warned)
    assert any("consent-url no-consent" in c.fix for c in warned)
    assert not any(c.failed for c in checks), "no stack uses it yet: a warning, not a failure"
