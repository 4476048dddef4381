"""SIGKILL the daemon at each step of a rotation; a restart and one tick repair everything."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from sidecar.model import CredentialKind, Phase, intent_of
from sidecar.resolve import resolve_credential
from tests.processes import run_daemon_once
from tests.test_certificate_e2e import create_integrations as create_certificate_integrations
from tests.test_certificate_e2e import our_certificates
from tests.test_certificate_e2e import run as run_with
from tests.test_rotation_e2e import create_integrations
from tests.world import UserTenant, World, run_terraform


def assert_ready_credential_works(world: World, tenant: UserTenant) -> None:
    credential = resolve_credential(
        world.store.kv, "stack-0", Phase.APPLY, world.time.now(), world.config.timing
    )
    ok, why = run_terraform(world, world.emu.session(), credential, tenant)
    assert ok, why


def assert_azure_and_vault_agree(world: World, name: str) -> None:
    record, _ = world.store.integration(name)
    ours = {
        s["keyId"]
        for s in world.azure_secrets(record.app_object_id)
        if intent_of(s["displayName"]) is not None
    }
    stored = {c.key_id for c in world.store.credentials(name)}
    assert ours == stored, f"Azure holds {sorted(ours)}, Vault {sorted(stored)}"


@pytest.mark.parametrize(
    "step", ["after_intent", "after_add_password", "after_kv_write", "after_store"]
)
def test_sigkill_at_each_step_of_a_rotation(world: World, tmp_path: Path, step: str) -> None:
    [(name, tenant)] = create_integrations(world, count=1, tenants=1)
    world.time.advance(timedelta(hours=22, minutes=30))  # the renewal is due
    before = world.store.credentials(name)
    assert len(before) == 1

    crashed = run_daemon_once(world, tmp_path / "a.toml", crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    # The crash left exactly what that step implies: an intent, and maybe a
    # credential in Azure whose text Vault may or may not have.
    record, _ = world.store.integration(name)
    ours = [s for s in world.azure_secrets(record.app_object_id) if intent_of(s["displayName"])]
    assert len(ours) == (1 if step == "after_intent" else 2)
    assert len(world.store.intents(name)[0]) == 1
    versions = world.store.kv.read_metadata(f"credentials/{name}").current_version
    assert versions == (2 if step in ("after_kv_write", "after_store") else 1)
    assert_ready_credential_works(world, tenant)

    # The restart comes once Azure's replicas agree and the intent has timed out.
    world.time.advance(timedelta(minutes=16))
    restarted = run_daemon_once(world, tmp_path / "b.toml")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert_azure_and_vault_agree(world, name)
    assert world.store.intents(name)[0] == []
    after = world.store.credentials(name)
    assert len(after) == 2, "the renewal was completed after the restart"
    assert_ready_credential_works(world, tenant)
    world.time.advance(timedelta(minutes=11))
    assert_ready_credential_works(world, tenant)


@pytest.mark.parametrize("step", ["after_intent", "after_add_key", "after_kv_write", "after_store"])
def test_sigkill_at_each_step_of_a_certificate_rotation(
    world: World, tmp_path: Path, step: str
) -> None:
    """The same for a certificate: the key made in memory dies with the process unstored."""
    [(name, tenant)] = create_certificate_integrations(
        world, count=1, tenants=1, kind=CredentialKind.CERTIFICATE
    )
    world.time.advance(timedelta(hours=22, minutes=30))  # the renewal is due
    assert len(world.store.credentials(name)) == 1
    record, _ = world.store.integration(name)

    crashed = run_daemon_once(world, tmp_path / "a.toml", crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert len(our_certificates(world, record.app_object_id)) == (
        1 if step == "after_intent" else 2
    )
    assert len(world.store.intents(name)[0]) == 1
    versions = world.store.kv.read_metadata(f"credentials/{name}").current_version
    assert versions == (2 if step in ("after_kv_write", "after_store") else 1)
    session = world.emu.session()
    assert run_with(world, session, name, tenant, CredentialKind.CERTIFICATE)[0]

    world.time.advance(timedelta(minutes=16))
    restarted = run_daemon_once(world, tmp_path / "b.toml")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    stored = {c.key_id for c in world.store.credentials(name)}
    ours = our_certificates(world, record.app_object_id)
    assert ours == stored, f"Azure holds {sorted(ours)}, Vault {sorted(stored)}"
    assert world.store.intents(name)[0] == []
    assert len(stored) == 2, "the renewal was completed after the restart"
    assert {c.kind for c in world.store.credentials(name)} == {CredentialKind.CERTIFICATE}
    assert run_with(world, session, name, tenant, CredentialKind.CERTIFICATE)[0]
    world.time.advance(timedelta(minutes=11))
    ok, why, kind = run_with(world, session, name, tenant, CredentialKind.CERTIFICATE)
    assert ok and kind is CredentialKind.CERTIFICATE, why
