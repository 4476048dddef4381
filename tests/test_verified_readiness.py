"""Verified readiness end to end: the daemon probes new secrets against the emulator
(HTTPS, msal) and a real OpenBao, and readers hand out only what the probes verified."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from sidecar import metrics
from sidecar.daemon import Daemon
from sidecar.doctor import observed_lag
from sidecar.emulator.replicas import PROFILES, named_profile
from sidecar.errors import NotReadyError, SidecarError
from sidecar.integrations import Integrations
from sidecar.model import Phase
from sidecar.probes import lag, rule
from sidecar.probes.rule import ProbeState
from sidecar.probing import ProbeExecutor
from sidecar.ready import NotReady, choose_ready
from sidecar.resolve import resolve_credential
from sidecar.store import StackRecord
from tests.test_rotation_e2e import create_integrations
from tests.world import World, run_terraform

M = timedelta(minutes=1)


def replicas_holding(world: World, object_id: str, key_id: str) -> list[int]:
    """Test-only knowledge from the emulator's admin side: which replicas list the key."""
    state = world.emu.state
    now = state.now()
    holding = []
    for replica in range(state.replicas):
        app = state.app_view(object_id, replica, now)
        if app is not None and any(p.key_id == key_id for p in app.passwords):
            holding.append(replica)
    return holding


def rotate_until_a_replica_lags(world: World, daemon: Daemon, name: str) -> tuple[int, str]:
    """Move to the next renewal and rotate; again while the stuck replica took the write."""
    state = world.emu.state
    for _ in range(4):
        stored = world.store.credentials(name)
        newest = max(stored, key=lambda c: c.expires)
        world.time.advance(newest.expires - world.time.now() - timedelta(hours=2) + M)
        assert daemon.tick(), daemon.health.last_error
        new = max(world.store.credentials(name), key=lambda c: c.version)
        assert new.version != newest.version
        record, _ = world.store.integration(name)
        stuck = state.replicas - 1  # the profile's replica -1
        if stuck not in replicas_holding(world, record.app_object_id, new.key_id):
            return new.version, new.key_id
        # The stuck replica took this write itself (the daemon's keep-alive connection
        # is pinned to it): reconnect, let the secret verify, and renew again.
        daemon.graph().session.close()
        for _ in range(60):
            world.time.advance(M)
            daemon.probe()
            if rule.verified(world.store.probes(name)[new.version], world.config.timing):
                break
    raise AssertionError("every renewal landed on the stuck replica")


def _sample(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


def test_stuck_replica_unverified_secret_is_not_handed_out(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Against the emulator's stuck-replica profile (one replica 30 min behind), default timing.

    At every emulated minute after a renewal, a run resolves its credential
    and signs in on a fresh connection (a random replica). The new secret
    passes the 10-minute time rule while the stuck replica still lacks it;
    probes (refused there) keep it unready, the previous secret carries every
    run, health names the integration, and the answer for the new secret
    alone says "refused". Once the replica catches up and the window is
    covered, the new secret is handed out and probing of it stops.
    """
    [(name, tenant)] = create_integrations(world, count=1, tenants=1)
    world.emu.state.set_replication(profile=named_profile("stuck-replica"))
    stuck_for = PROFILES["stuck-replica"].max_lag
    daemon = Daemon(world.runtime, holder="probe-test")
    policy = world.config.timing
    assert policy.probes and policy.probe_window == 10 * M  # the defaults
    version, key_id = rotate_until_a_replica_lags(world, daemon, name)
    new = next(c for c in world.store.credentials(name) if c.version == version)
    record, _ = world.store.integration(name)
    assert world.store.probes(name)[version].sign_ins == 0  # adopted at creation
    late_before = _sample("azsidecar_probe_late_failures_total")
    measured_before = _sample("azsidecar_lag_last_failure_seconds_count")
    runs = failures = held_back = 0
    saw_failing_health = False
    while world.time.now() < new.created + timedelta(seconds=stuck_for) + 15 * M:
        daemon.probe()
        now = world.time.now()
        credential = resolve_credential(world.store.kv, "stack-0", Phase.APPLY, now, policy)
        lagging = len(replicas_holding(world, record.app_object_id, key_id)) < 3
        if now >= new.created + policy.propagation_delay and lagging:
            # The time rule alone would hand the new secret out now; probes must not.
            held_back += 1
            assert credential.key_id != key_id, f"unverified secret handed out at {now}"
            alone = choose_ready([new], now, policy, world.store.probes(name))
            assert isinstance(alone, NotReady) and "refused" in alone.reason, alone
            assert alone.ready_at is not None and alone.ready_at > now
            saw_failing_health |= name in daemon.health.probe_failing
        with world.emu.session() as session:  # a run: a new process, a new connection
            ok, why = run_terraform(world, session, credential, tenant)
        runs += 1
        failures += 0 if ok else 1
        assert ok, f"run at {now} with version {credential.key_id} failed: {why}"
        world.time.advance(M)
    probe = world.store.probes(name)[version]
    print(
        f"\nruns={runs} failures={failures} held_back_by_probes={held_back}"
        f" probe_sign_ins={probe.sign_ins} refused={probe.failures}"
        f" last_refusal_after={probe.last_failure - new.created if probe.last_failure else None}"
    )
    assert held_back >= 15 and runs >= 40 and failures == 0
    assert saw_failing_health
    verdict = rule.state(probe, new.created, policy, world.time.now())
    assert probe.failures > 0 and verdict is ProbeState.VERIFIED
    assert probe.last_failure is not None
    assert probe.last_failure - new.created >= policy.propagation_delay
    final = resolve_credential(world.store.kv, "stack-0", Phase.APPLY, world.time.now(), policy)
    assert final.key_id == key_id
    # Verified: probing it has stopped, and its lag is on record.
    count = daemon.probes().sign_ins
    for _ in range(5):
        world.time.advance(M)
        daemon.probe()
    assert daemon.probes().sign_ins == count
    # The refusals past the delay raised the metric and a warning; the lag was observed.
    assert _sample("azsidecar_probe_late_failures_total") > late_before
    assert _sample("azsidecar_lag_last_failure_seconds_count") == measured_before + 1
    assert any(
        r.levelname == "WARNING" and "refused at sign-in" in r.getMessage() for r in caplog.records
    )
    samples, _ = world.store.lag_samples()
    assert samples and samples[-1].last_failure >= policy.propagation_delay.total_seconds()
    assert name not in daemon.health.probe_failing


def test_probing_stops_when_the_secret_is_removed_or_the_lease_is_lost(world: World) -> None:
    [(name, _)] = create_integrations(world, count=1, tenants=1)
    world.emu.state.set_replication(profile=named_profile("none"))
    policy = world.config.timing
    calls: list[str] = []

    def counting(tenant: str, client_id: str, secret: object) -> bool | None:
        calls.append(tenant)
        return True

    lost = False

    def guard() -> None:
        if lost:
            raise SidecarError("lease held by another daemon")

    probes = ProbeExecutor(
        world.store, world.time, policy, counting, world.platform_tenant, guard=guard
    )
    [first] = world.store.credentials(name)
    # A record whose delay is still ahead (create_integrations let the secret age past
    # the default one, and the time rule never takes back what it released).
    ahead = world.time.now() - first.created + policy.propagation_delay
    world.store.save_probe(name, rule.pending(first.version, ahead))
    probes.run_due()
    assert len(calls) == policy.probe_sign_ins
    # Consent exists, so the customer's tenant answers and the platform's is not asked.
    record, _ = world.store.integration(name)
    assert set(calls) == {record.tenant_id}
    lost = True
    world.time.advance(M)
    with pytest.raises(SidecarError, match="stopped probing"):
        probes.run_due()
    assert len(calls) == policy.probe_sign_ins
    lost = False
    world.store.destroy_secret(name, first.version)
    assert world.store.probes(name) == {}  # the record goes with its index entry
    world.time.advance(M)
    assert probes.run_due() is None
    assert len(calls) == policy.probe_sign_ins and name not in probes.watch
    with pytest.raises(NotReadyError):
        resolve_credential(world.store.kv, "stack-0", Phase.PLAN, world.time.now(), policy)


def test_a_secret_released_without_evidence_is_never_probed_back(world: World) -> None:
    """A pending record nobody probed by the delay: the time rule released it, and a
    daemon starting later leaves it alone instead of taking it back for a window."""
    [(name, _)] = create_integrations(world, count=1, tenants=1)
    policy = world.config.timing
    [first] = world.store.credentials(name)
    world.store.save_probe(name, rule.pending(first.version, policy.propagation_delay))
    world.time.advance(policy.propagation_delay + M)
    calls: list[str] = []

    def counting(tenant: str, client_id: str, secret: object) -> bool | None:
        calls.append(tenant)
        return True

    probes = ProbeExecutor(world.store, world.time, policy, counting, world.platform_tenant)
    probes.adopt(name, [first])
    assert probes.run_due() is None and calls == []
    found = resolve_credential(world.store.kv, "stack-0", Phase.PLAN, world.time.now(), policy)
    assert found.key_id == first.key_id


def test_measured_lag_in_vault_drives_doctor_and_the_raised_delay(world: World) -> None:
    """Samples in Vault: doctor prints quantiles and says the delay is unsafe; with
    raise_delay a new secret's record carries worst lag + margin and readers wait for it."""
    [(name, _)] = create_integrations(world, count=1, tenants=1)
    for first, last in [(5.0, 0.0), (30.0, 240.0), (60.0, 1200.0)]:
        world.store.append_lag_sample(lag.LagSample(first, last))
    check = observed_lag(world.store, world.config)
    assert check.status == "warn" and "p50" in check.line and "max 1200s" in check.line
    assert "SHORTER" in check.line and "raise_delay" in check.line
    policy = replace(world.config.timing, raise_delay=True)
    [old] = world.store.credentials(name)
    # A new version as a rotation stores it (the same text; only its timing matters here).
    again = replace(world.store.secret(name, old.version), created=world.time.now())
    stored = world.store.store_secret(name, again)
    probes = ProbeExecutor(world.store, world.time, policy, lambda *_: True, world.platform_tenant)
    probes.adopt(name, [stored])
    record = world.store.probes(name)[stored.version]
    assert record.delay == 20 * M + policy.raise_margin  # worst 1200 s + 2 min
    for _ in range(23):
        probes.run_due()
        world.time.advance(M)
    now = world.time.now()
    records = world.store.probes(name)
    assert rule.verified(records[stored.version], policy)
    # Verified and past propagation_delay, yet held back until the raised delay.
    held = choose_ready([stored], stored.created + 21 * M, policy, records)
    assert isinstance(held, NotReady) and held.ready_at == stored.created + 22 * M
    assert not isinstance(choose_ready([stored], now, policy, records), NotReady)


def test_a_new_integrations_first_secret_is_adopted_and_its_answer_says_why(
    world: World,
) -> None:
    """``integration create`` stores the first secret without the daemon; the daemon's
    next probe pass adopts it while young, and a refused probe past the delay keeps it
    from runs with an answer naming the cause and a time."""
    rt = world.runtime
    service = Integrations(
        rt.store, rt.graph(), rt.clock, rt.config.timing, redirect_uri="https://localhost/x"
    )
    tenant = world.add_tenant()
    record = service.create("fresh", tenant.tenant_id, tenant.subscription_id)
    world.store.save_stack(StackRecord(name="s", read="fresh", write="fresh"), cas=0)
    policy = world.config.timing
    probes = ProbeExecutor(world.store, world.time, policy, lambda *_: False, "platform")
    probes.run_due()
    [first] = world.store.credentials(record.name)
    assert world.store.probes(record.name)[first.version].failures == policy.probe_sign_ins
    for _ in range(int((policy.propagation_delay + M) / M)):  # a round a minute, as the daemon
        world.time.advance(M)
        probes.run_due()
    with pytest.raises(NotReadyError) as refused:
        resolve_credential(world.store.kv, "s", Phase.PLAN, world.time.now(), policy)
    assert "refused at sign-in after its propagation delay" in str(refused.value)
    assert refused.value.ready_at is not None and refused.value.ready_at > world.time.now()
    assert "fresh" in probes.failing
