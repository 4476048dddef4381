"""The daemon against the emulator and a real OpenBao, over emulated days."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from sidecar.daemon import Daemon
from sidecar.emulator.replicas import named_profile
from sidecar.integrations import Integrations
from sidecar.management import load_certificates
from sidecar.model import CredentialKind, Phase, intent_of
from sidecar.orphans import find_orphans
from sidecar.ready import Ready, choose_ready
from sidecar.resolve import resolve_credential
from sidecar.runtime import Runtime, make_store
from sidecar.store import StackRecord
from tests.tcpproxy import TcpProxy
from tests.world import UserTenant, World, run_terraform


def create_integrations(
    world: World,
    count: int,
    tenants: int,
    kind: CredentialKind = CredentialKind.SECRET,
    *,
    attach: bool = True,
) -> list[tuple[str, UserTenant]]:
    """``count`` integrations ``int-<i>`` of ``kind`` over ``tenants`` user tenants, consented
    and replicated; with ``attach``, each is both phases of a stack ``stack-<i>``."""
    rt = world.runtime
    service = Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        redirect_uri=rt.config.azure.consent_redirect_uri,
    )
    user_tenants = [world.add_tenant() for _ in range(tenants)]
    made = []
    for i in range(count):
        tenant = user_tenants[i % tenants]
        record = service.create(f"int-{i}", tenant.tenant_id, tenant.subscription_id, kind)
        if attach:
            world.store.save_stack(
                StackRecord(name=f"stack-{i}", read=record.name, write=record.name), cas=0
            )
        made.append((record, tenant))
    # The tenant administrators consent a few minutes later, once Azure AD knows the apps.
    world.time.advance(timedelta(minutes=11))
    for record, tenant in made:
        world.consent_and_grant(record.client_id, tenant)
    # Runs start once the new service principals have replicated too.
    world.time.advance(timedelta(minutes=11))
    return [(record.name, tenant) for record, tenant in made]


@pytest.mark.slow
def test_72_hours_of_runs_never_fail_to_authenticate(world: World) -> None:
    """5 integrations in 2 tenants, lag up to ~8 min, a run every 5 emulated minutes.

    Azure as the independent stand-in showed it: each keep-alive connection
    pinned to one replica (the emulator's default), and gateways failing 10 %
    of Graph requests (503 without Retry-After; 504 with an HTML body and
    ``Connection: close``, committed first when it answers a write), the
    first two creating writes answered 504 after committing. Checked: every
    run signs in and reads its subscription; three
    renewals per integration; at most three secrets held; a tick fails only on
    a creating write a gateway left uncertain (reported); and at the end,
    after one reconciling tick, no application named like ours that no
    integration records, no secret of ours in Azure that Vault does not hold,
    and the management application holding exactly the stored keys.
    """
    faults = world.emu.state.faults
    faults.gateway_next(2, status=504, commit=True, prefix="/graph/v1.0/applications")
    faults.gateway_errors(0.10)
    integrations = create_integrations(world, count=5, tenants=2)
    daemon = Daemon(world.runtime, holder="test-daemon")
    session = world.emu.session()
    policy = world.config.timing
    step = timedelta(minutes=5)
    end = world.time.now() + timedelta(hours=72)
    next_tick = world.time.now()
    runs = failures = 0
    not_ready_windows = 0
    first_ready_after = world.time.now()
    max_held = 0
    uncertain_ticks = 0
    while world.time.now() < end:
        now = world.time.now()
        # As Daemon.run schedules: a full pass every tick, due integrations between.
        if now >= next_tick:
            uncertain_ticks += _tick_or_uncertain(daemon.tick(), daemon)
            next_tick = world.time.now() + policy.tick
        elif due := daemon.due(now):
            uncertain_ticks += _tick_or_uncertain(daemon.tick(only=due), daemon)
        daemon.probe()  # and, while it leads, probes new secrets (verified readiness)
        for i, (name, tenant) in enumerate(integrations):
            stored = world.store.credentials(name)
            record, _ = world.store.integration(name)
            max_held = max(max_held, len(world.azure_secrets(record.app_object_id)))
            if not isinstance(choose_ready(stored, now, policy), Ready):
                assert now < first_ready_after, f"{name} had no ready secret at {now}"
                not_ready_windows += 1
                continue
            credential = resolve_credential(world.store.kv, f"stack-{i}", _phase(runs), now, policy)
            ok, why = run_terraform(world, session, credential, tenant)
            runs += 1
            failures += 0 if ok else 1
            assert ok, f"run {runs} of {name} at {now} failed: {why}"
        world.time.advance(step)
    rotations = sum(len(r.created) for r in daemon.reports)
    gateway = [c for c in world.emu.state.calls.query() if c.fault == "gateway"]
    print(
        f"\nruns={runs} failures={failures} rotations={rotations} max_secrets_held={max_held}"
        f" gateway_faults={len(gateway)} ticks_with_an_uncertain_write={uncertain_ticks}"
        f" routed_connections={world.emu.state.routing.connections}"
    )
    assert failures == 0
    assert runs >= 5 * (72 * 12 - 3)
    # One secret at creation, then one per 22 h: three more in 72 h for each.
    assert rotations == 5 * 3
    assert max_held <= 3
    assert len(gateway) >= 2 and world.emu.state.routing.sticky
    assert_nothing_left_behind(world, daemon, [name for name, _ in integrations])


def _tick_or_uncertain(ok: bool, daemon: Daemon) -> int:
    """A tick fails only where a gateway left a creating write uncertain (then 1).

    Such a write is never repeated blindly: its intent waits for reconciliation
    and the next pass, while the previous secret keeps serving runs. Any other
    failure fails the test.
    """
    if ok:
        return 0
    assert daemon.health.last_error.startswith("GraphWriteUncertain"), daemon.health.last_error
    return 1


def assert_nothing_left_behind(world: World, daemon: Daemon, names: list[str]) -> None:
    """After a reconciling tick: Azure holds exactly what Vault records."""
    world.emu.state.faults.clear()
    world.time.advance(world.config.timing.intent_timeout + timedelta(minutes=10))
    assert daemon.tick(), daemon.health.last_error
    graph = world.runtime.graph()
    assert find_orphans(graph, world.store, world.config.azure.app_name_prefix) == []
    for name in names:
        record, _ = world.store.integration(name)
        stored = {c.key_id for c in world.store.credentials(name)}
        assert world.our_key_ids(record.app_object_id) <= stored, f"{name}: orphaned secret"
    mgmt = world.emu.state.application(world.mgmt.object_id)
    assert mgmt is not None
    keys = {k["keyId"] for k in world.emu.state.app_admin_dict(mgmt)["keyCredentials"]}
    assert keys == {c.key_id for c in load_certificates(world.store)}


def _phase(i: int) -> Phase:
    return Phase.PLAN if i % 2 else Phase.APPLY


def test_expired_secrets_are_removed_from_azure_and_vault(world: World) -> None:
    [(name, _tenant)] = create_integrations(world, count=1, tenants=1)
    record, _ = world.store.integration(name)
    daemon = Daemon(world.runtime, holder="test-daemon")
    first = world.store.credentials(name)[0]
    # Walk past the first secret's expiry, ticking hourly.
    for _ in range(26):
        assert daemon.tick()
        world.time.advance(timedelta(hours=1))
    assert daemon.tick()
    keys = {c.key_id for c in world.store.credentials(name)}
    assert first.key_id not in keys
    assert first.key_id not in {s["keyId"] for s in world.azure_secrets(record.app_object_id)}
    meta = world.store.kv.read_metadata(f"credentials/{name}")
    assert meta.versions[first.version].destroyed
    assert len(world.azure_secrets(record.app_object_id)) <= 2


def test_credentials_unknown_to_vault_are_removed(world: World) -> None:
    [(name, _tenant)] = create_integrations(world, count=1, tenants=1)
    record, _ = world.store.integration(name)
    graph = world.runtime.graph()
    # An orphan: our naming, but its text never reached Vault (a crash after addPassword).
    orphan = graph.add_password(
        record.app_object_id, "azsidecar:deadbeef", world.time.now() + timedelta(hours=24)
    )
    # Someone else's credential on the same application is left alone.
    foreign = graph.add_password(
        record.app_object_id, "added by hand", world.time.now() + timedelta(hours=24)
    )
    world.time.advance(timedelta(minutes=11))  # every replica lists them now
    report = Daemon(world.runtime, holder="t")
    assert report.tick()
    held = {s["keyId"]: s["displayName"] for s in world.azure_secrets(record.app_object_id)}
    assert orphan.key_id not in held
    assert foreign.key_id in held
    assert all(
        intent_of(n) is None or k in {c.key_id for c in world.store.credentials(name)}
        for k, n in held.items()
    )


def test_vault_outage_during_a_tick_is_survived(world: World) -> None:
    """Vault unreachable: the tick fails and is reported; once back, the next one catches up."""
    [(name, _tenant)] = create_integrations(world, count=1, tenants=1)
    proxy = TcpProxy("127.0.0.1", int(world.config.vault.addr.rsplit(":", 1)[1]))
    try:
        config = replace(world.config, vault=replace(world.config.vault, addr=proxy.addr))
        runtime = Runtime(config=config, clock=world.time, store=make_store(config))
        daemon = Daemon(runtime, holder="t")
        world.time.advance(timedelta(hours=22, minutes=30))  # a renewal is due
        proxy.sever()
        assert not daemon.tick()
        assert "Vault" in daemon.health.last_error
        assert len(world.store.credentials(name)) == 1
        proxy.restore()
        assert daemon.tick()
        assert daemon.health.last_error == ""
        assert len(world.store.credentials(name)) == 2
    finally:
        proxy.close()


def test_between_full_passes_only_due_integrations_are_visited(world: World) -> None:
    create_integrations(world, count=3, tenants=1)
    daemon = Daemon(world.runtime, holder="t")
    assert daemon.tick()
    assert set(daemon.wakes) == {"int-0", "int-1", "int-2"}
    # Make one integration due now; a partial pass visits it alone.
    daemon.wakes["int-1"] = world.time.now()
    before = len(daemon.reports)
    assert daemon.due(world.time.now()) == ["int-1"]
    assert daemon.tick(only=daemon.due(world.time.now()))
    assert [r.integration for r in daemon.reports[before:]] == ["int-1"]
    assert daemon.wakes["int-1"] > world.time.now()


def test_a_replica_lagging_past_the_propagation_bound_does_not_destroy_good_secrets(
    world: World,
) -> None:
    """One replica 30 minutes behind: listings that lack a new secret must not count."""
    made = create_integrations(world, count=4, tenants=1)
    names = [name for name, _ in made]
    world.emu.state.set_replication(profile=named_profile("stuck-replica"))
    daemon = Daemon(world.runtime, holder="t")
    world.time.advance(timedelta(hours=22, minutes=30))
    assert daemon.tick()
    renewed = {name: world.store.credentials(name)[-1].key_id for name in names}
    for _ in range(40):  # visits every minute through the lagging replica's window
        world.time.advance(timedelta(minutes=1))
        assert daemon.tick(only=names)
    for name in names:
        keys = {c.key_id for c in world.store.credentials(name)}
        assert renewed[name] in keys, f"{name}: a new secret was destroyed on a lagging listing"
    assert sum(len(r.created) for r in daemon.reports) == len(names)


def test_a_secret_removed_outside_us_is_replaced(world: World) -> None:
    [(name, _tenant)] = create_integrations(world, count=1, tenants=1)
    record, _ = world.store.integration(name)
    [first] = world.store.credentials(name)
    world.runtime.graph().remove_password(record.app_object_id, first.key_id)  # "the portal"
    world.time.advance(timedelta(hours=1, minutes=11))
    daemon = Daemon(world.runtime, holder="t")
    assert daemon.tick()
    stored = world.store.credentials(name)
    assert first.key_id not in {c.key_id for c in stored}
    assert len(stored) == 1
