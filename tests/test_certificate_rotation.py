"""The management certificate renews itself across 100 emulated days."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from sidecar.certs import renewal
from sidecar.daemon import Daemon
from sidecar.errors import GraphError
from sidecar.management import (
    CertificateVersion,
    choose_active,
    generate_key_pair,
    load_certificates,
    store_certificate,
)
from sidecar.model import intent_of
from tests.processes import run_daemon_once
from tests.test_rotation_e2e import create_integrations
from tests.world import World


def keys_on_app(world: World) -> list[dict[str, object]]:
    app = world.emu.state.application(world.mgmt.object_id)
    assert app is not None
    return list(world.emu.state.app_admin_dict(app)["keyCredentials"])


@pytest.mark.slow
def test_100_days_of_renewals_without_a_failed_graph_call(world: World) -> None:
    [(name, _)] = create_integrations(world, count=1, tenants=1)
    daemon = Daemon(world.runtime, holder="t")
    since = len(world.emu.state.calls.query())
    max_keys = 0
    thumbprints: set[str] = set()
    renewals = 0
    for _ in range(100 * 24):
        assert daemon.tick(), daemon.health.last_error
        renewals += len(daemon.certificate_reports[-1].renewed)
        max_keys = max(max_keys, len(keys_on_app(world)))
        certificates = load_certificates(world.store)
        active = choose_active(certificates, world.time.now(), world.config.timing)
        assert active is not None
        thumbprints.add(active.thumbprint)
        world.time.advance(timedelta(hours=1))
    calls = world.emu.state.calls.query(since=since)
    mgmt_calls = [c for c in calls if c.client == world.mgmt.app_id]
    failed = [c for c in mgmt_calls if c.status in (400, 401, 403)]
    print(
        f"\nrenewals={renewals} certificates used={len(thumbprints)} max keys={max_keys}"
        f" management calls={len(mgmt_calls)} failed={len(failed)}"
    )
    assert renewals >= 3
    assert len(thumbprints) == renewals + 1, "the daemon switched to each renewed certificate"
    assert failed == []
    assert max_keys <= 2
    assert len(world.store.credentials(name)) >= 1


def test_new_certificate_is_used_only_after_the_switch_delay(world: World) -> None:
    daemon = Daemon(world.runtime, holder="t")
    assert daemon.tick()
    first = load_certificates(world.store)[0]
    world.time.advance(first.not_after - world.time.now() - timedelta(days=7))
    assert daemon.tick()
    certificates = load_certificates(world.store)
    assert len(certificates) == 2
    new = max(certificates, key=lambda c: c.version)
    policy = world.config.timing
    assert choose_active(certificates, world.time.now(), policy) == first
    assert len(keys_on_app(world)) == 2
    world.time.advance(policy.cert_switch_delay)
    assert choose_active(certificates, world.time.now(), policy) == new
    assert daemon.tick()
    # Once the new key is in use the old one is removed from Azure and Vault.
    assert [k["keyId"] for k in keys_on_app(world)] == [new.key_id]
    assert [c.version for c in load_certificates(world.store)] == [new.version]
    assert intent_of(str(keys_on_app(world)[0]["displayName"])) == new.intent_id


def test_proof_signed_by_an_unknown_key_is_refused_and_reported(world: World) -> None:
    graph = world.runtime.graph()
    stranger = generate_key_pair("stranger", world.time.now(), timedelta(days=1))
    signer = CertificateVersion(
        version=0,
        cert_pem=stranger.cert_pem,
        key_pem=stranger.key_pem,
        thumbprint=stranger.thumbprint,
        key_id="",
        intent_id="",
        not_before=stranger.not_before,
        not_after=stranger.not_after,
        uploaded_at=world.time.now(),
    )
    new = generate_key_pair("new", world.time.now(), timedelta(days=30))
    with pytest.raises(GraphError) as info:
        graph.add_key(world.mgmt.object_id, new.cert_der, "x", signer.credential())
    assert info.value.status in (400, 401)
    assert "add_key failed" in str(info.value)
    assert "proof" in str(info.value).lower()
    assert len(keys_on_app(world)) == 1


def test_expired_certificate_is_stuck_with_recovery_advice(world: World) -> None:
    daemon = Daemon(world.runtime, holder="t")
    world.time.advance(timedelta(days=40))
    assert not daemon.tick()
    assert "no valid management certificate" in daemon.health.certificate_stuck
    assert not daemon.health.healthy(world.time.now(), world.config.timing.tick)
    # The operator uploads a certificate by hand and stores it: rotation resumes.
    pair = generate_key_pair("by-hand", world.time.now(), timedelta(days=30))
    response = world.emu.session().post(
        f"{world.emu.base_url}/_emulator/applications/{world.mgmt.object_id}/certificates",
        json={"certificatePem": pair.cert_pem},
        timeout=10,
    )
    assert response.status_code == 201
    key_id = response.json()["keyId"]
    world.time.advance(timedelta(minutes=11))  # let it replicate, as the portal would
    store_certificate(world.store, pair, key_id=key_id, uploaded_at=world.time.now())
    assert daemon.tick(), daemon.health.last_error
    assert daemon.health.certificate_stuck == ""
    assert renewal.RECOVERY.startswith("manual recovery")


@pytest.mark.parametrize("step", ["cert_after_intent", "cert_after_add_key", "cert_after_store"])
def test_sigkill_during_a_renewal(world: World, tmp_path: Path, step: str) -> None:
    first = load_certificates(world.store)[0]
    world.time.advance(first.not_after - world.time.now() - timedelta(days=6))
    crashed = run_daemon_once(world, tmp_path / "a.toml", crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    world.time.advance(timedelta(minutes=16))
    restarted = run_daemon_once(world, tmp_path / "b.toml")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    stored = {c.key_id for c in load_certificates(world.store)}
    on_app = {str(k["keyId"]) for k in keys_on_app(world)}
    assert on_app == stored, "no orphan key in Azure, no stored certificate unknown to Azure"
    if step == "cert_after_store":
        # The renewal had finished but for its intent; the new certificate has been
        # in Azure past the switch delay, so it is active and the old key is gone.
        assert first.key_id not in stored and len(stored) == 1
    else:
        assert len(stored) == 2, "the renewal was redone after the restart"
    assert world.store.certificate_intents() == []
    # Graph access was never lost: the daemon signs in and lists applications.
    world.runtime.graph().list_applications()
