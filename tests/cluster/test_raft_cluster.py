"""Vault as a cluster: the raft leader dies in the middle of a rotation sweep.

Three OpenBao nodes with integrated storage run on loopback behind a balancer
that sends each new connection to the active node (as an LB health-checking
``/v1/sys/health`` does). The daemon, with its gRPC resolver, runs as its own
process against the balancer while every integration is due for renewal; the
active node is SIGKILLed once a few ``addPassword`` calls have landed. The
cluster elects a new leader, the daemon carries on by itself, and after one
further complete tick every rotation has completed, nothing stored before the
kill is gone, Azure holds exactly what Vault holds and no intent is pending.

The second test replays, deterministically and on the single dev server, the
case a kill may hit: a secret's write committed but its answer lost.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sidecar.devstack.openbao import free_port
from sidecar.devstack.raft import OpenBaoRaftCluster
from sidecar.emulator import EmulatorServer
from sidecar.emulator.replicas import named_profile
from sidecar.errors import VaultUnavailable
from sidecar.model import Phase, intent_of
from sidecar.resolve import resolve_credential
from sidecar.resolver.client import ResolverClient
from sidecar.rotation.run import rotate
from sidecar.store import Store
from sidecar.vault import VaultKV, connect
from tests.processes import azsidecar, azsidecar_env, write_config
from tests.raftlb import ActiveNodeBalancer
from tests.test_daemon_processes import add_password_calls, healthz
from tests.test_rotation_e2e import create_integrations
from tests.world import UserTenant, World, make_world, run_terraform

COUNT = 16
KILL_AFTER = 3  # addPassword calls seen before the leader is killed
FACTOR = 60.0  # emulated seconds per real second: a tick of 5 min is 5 s
TICK = "5m"

Snapshot = dict[str, dict[tuple[int, str], datetime]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[OpenBaoRaftCluster]:
    with OpenBaoRaftCluster(size=3) as running:
        yield running


@pytest.fixture
def balancer(cluster: OpenBaoRaftCluster) -> Iterator[ActiveNodeBalancer]:
    lb = ActiveNodeBalancer([("127.0.0.1", node.api_port) for node in cluster.nodes])
    yield lb
    lb.close()


@pytest.fixture
def cluster_world(
    emulator: EmulatorServer, cluster: OpenBaoRaftCluster, balancer: ActiveNodeBalancer
) -> World:
    """The usual test world, with Vault reached through the balancer."""
    client = connect(balancer.addr, token=cluster.root_token)
    kv = VaultKV(client, mount="secret", prefix=f"t-{uuid.uuid4().hex[:12]}")
    return make_world(emulator, Store(kv), balancer.addr, cluster.root_token)


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, step: float = 0.1
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stored(world: World, names: list[str]) -> Snapshot:
    """Every integration's live secrets as Vault's index names them: (version, keyId) -> expiry."""
    return {
        name: {
            (c.version, c.key_id): c.expires for c in world.store.credentials(name, repair=False)
        }
        for name in names
    }


def renewed(world: World, names: list[str], since: datetime) -> bool:
    """Every integration holds a secret created since ``since`` and no pending intent."""
    for name in names:
        if world.store.intents(name)[0]:
            return False
        if not any(c.created >= since for c in world.store.credentials(name, repair=False)):
            return False
    return True


def last_tick(port: int) -> str | None:
    value = (healthz(port) or {}).get("last_tick")
    return value if isinstance(value, str) else None


@pytest.mark.slow
def test_leader_killed_mid_sweep_loses_nothing(
    cluster_world: World,
    cluster: OpenBaoRaftCluster,
    balancer: ActiveNodeBalancer,
    tmp_path: Path,
) -> None:
    world = cluster_world
    # Set-up is not under test: with replication lag, creating 16 applications on
    # a manual clock may outlast Graph's retries; the sweep runs with the default lag.
    world.emu.state.set_replication(profile=named_profile("none"))
    integrations = create_integrations(world, count=COUNT, tenants=2)
    world.emu.state.set_replication(profile=named_profile("default"))
    names = [name for name, _ in integrations]
    tenants: dict[str, UserTenant] = dict(integrations)
    world.time.advance(timedelta(hours=22, minutes=30))  # every renewal is due
    before = stored(world, names)
    assert all(len(pairs) == 1 for pairs in before.values())

    world.emu.state.clock.set_factor(FACTOR)
    metrics_port, resolver_port = free_port(), free_port()
    config = write_config(
        world,
        tmp_path / "daemon.toml",
        timing={"tick": TICK},
        concurrency=2,
        metrics_addr=f"127.0.0.1:{metrics_port}",
        resolver_addr=f"127.0.0.1:{resolver_port}",
        log_format="json",
    )
    old_leader = cluster.leader()
    assert old_leader is not None
    since = len(world.emu.state.calls.query())
    started = world.time.now()
    log_path = tmp_path / "daemon.log"
    env = azsidecar_env(cluster.root_token)
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(
            azsidecar("daemon", "--config", str(config)), env=env, stderr=log, text=True
        )
    try:
        wait_for(
            lambda: add_password_calls(world, since) >= KILL_AFTER,
            60,
            "the first renewals",
            step=0.01,
        )
        killed_at = time.monotonic()
        cluster.kill(old_leader)
        calls_at_kill = add_password_calls(world, since)
        new_leader = cluster.wait_for_leader(exclude=[old_leader], timeout=60)
        election = time.monotonic() - killed_at
        assert calls_at_kill < COUNT, "the kill came after the sweep; nothing was interrupted"
        wait_for(lambda: balancer.active() == new_leader, 10, "the balancer to follow")

        # Nothing stored before the kill may go: what the new leader holds now
        # (every write acknowledged before the kill is in it) must survive.
        at_failover = stored(world, names)
        recovery = wait_for(
            lambda: renewed(world, names, started), 120, "every integration to be renewed"
        )
        recovered_at = time.monotonic()
        recovery_real = recovered_at - killed_at

        # One further complete tick: the first full tick ending after recovery may
        # have begun before it, so wait for the one after that.
        first = wait_for_tick_after(metrics_port, last_tick(metrics_port), 60)
        wait_for_tick_after(metrics_port, first, 60)
        assert daemon.poll() is None, "the daemon died"
        health = healthz(metrics_port)
        assert health is not None and health["leader"] is True, health

        further_tick = time.monotonic() - recovered_at
        now = world.time.now()
        after = stored(world, names)
        for name in names:
            live = world.store.credentials(name, repair=False)
            # Only a secret past its expiry may have gone (the daemon removes those).
            known = before[name] | at_failover[name]
            lost = {pair for pair in known if pair not in after[name]}
            assert all(known[pair] <= now for pair in lost), f"{name} lost {lost}"
            # Every rotation completed, exactly once.
            assert len([c for c in live if c.created >= started]) == 1, f"{name}: {live}"
            meta = world.store.kv.read_metadata(f"credentials/{name}")
            assert {v for v, _ in after[name]} == set(meta.live_versions()), "index is stale"
            record, _ = world.store.integration(name)
            azure = world.azure_secrets(record.app_object_id)
            assert all(intent_of(s["displayName"]) for s in azure)
            assert {s["keyId"] for s in azure} == {k for _, k in after[name]}, (
                f"{name}: Azure holds {sorted(s['keyId'] for s in azure)}, Vault {after[name]}"
            )
            assert world.store.intents(name)[0] == []

        # The resolver answers through the balancer after the failover, and the
        # credential it hands out signs in.
        resolver = ResolverClient(f"127.0.0.1:{resolver_port}", timeout=10)
        try:
            for name in (names[0], names[-1]):
                stack = name.replace("int-", "stack-")
                cred = resolver.resolve(cluster.root_token, stack, Phase.APPLY)
                assert cred.integration == name
                assert cred.key_id in {k for _, k in after[name]}, cred.key_id
                ok, why = run_terraform(world, world.emu.session(), cred, tenants[name])
                assert ok, why
        finally:
            resolver.close()

        graph = world.emu.state.calls.query(since=since, kind="graph")
        add_calls = add_password_calls(world, since)
        removals = sum(1 for c in graph if c.path.endswith("/removePassword"))
        print(
            f"\nraft cluster: leader node{old_leader} killed after {calls_at_kill} of {COUNT}"
            f" addPassword calls; node{new_leader} active {election:.1f}s later;"
            f" every integration renewed {recovery_real:.1f}s after the kill"
            f" ({recovery:.1f}s after the election check), a further full tick"
            f" {further_tick:.1f}s later;"
            f" {add_calls} addPassword and {removals} removePassword calls in all;"
            f" balancer refused {balancer.refused} connections during the election"
        )
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

    # The killed node comes back as a standby and the cluster is whole again.
    cluster.restart(old_leader)
    assert sorted(cluster.health(i) for i in range(cluster.size)) == [200, 429, 429]
    text = log_path.read_text()
    for name in names:
        for version, _ in after[name]:
            assert world.store.secret(name, version).secret.reveal() not in text
    errors = sum(1 for line in text.splitlines() if '"level": "error"' in line)
    print(f"daemon log: {errors} error lines while Vault failed over")


def wait_for_tick_after(port: int, previous: str | None, timeout: float) -> str:
    """Block until ``/healthz`` reports a full tick other than ``previous``; return it."""
    found: list[str] = []

    def moved() -> bool:
        current = last_tick(port)
        if current is not None and current != previous:
            found.append(current)
            return True
        return False

    wait_for(moved, timeout, "a complete tick")
    return found[-1]


def test_a_secret_write_whose_answer_is_lost_keeps_its_azure_credential(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raft leader commits the secret's KV write and dies before answering.

    Played on the single dev server by losing the answer in the client. The daemon
    sees a transport error, not a refusal: the secret may be in Vault (here it
    is), so its Azure credential must not be taken back on the spot, or Vault
    would keep, and soon hand out, a secret that Azure no longer accepts. The
    next tick's reconciliation settles it from what Vault actually holds.
    """
    world.emu.state.set_replication(profile=named_profile("none"))
    [(name, tenant)] = create_integrations(world, count=1, tenants=1)
    world.time.advance(timedelta(hours=22, minutes=30))  # the renewal is due
    kv = world.store.kv
    write = kv.write

    def answer_lost(path: str, data: Any, cas: int | None) -> int:
        version = write(path, data, cas)
        if path.startswith("credentials/"):
            raise VaultUnavailable("cannot reach Vault (ConnectionError)", path=path)
        return version

    record, _ = world.store.integration(name)
    graph = world.runtime.graph()
    policy = world.config.timing
    monkeypatch.setattr(kv, "write", answer_lost)
    with pytest.raises(VaultUnavailable):
        rotate(record, graph, world.store, world.time, policy)
    monkeypatch.undo()
    assert kv.read_metadata(f"credentials/{name}").current_version == 2, "the write landed"

    world.time.advance(policy.intent_timeout + timedelta(minutes=1))
    rotate(record, graph, world.store, world.time, policy)
    held = {c.version: c.key_id for c in world.store.credentials(name)}
    assert sorted(held) == [1, 2] and world.store.intents(name)[0] == []
    assert {s["keyId"] for s in world.azure_secrets(record.app_object_id)} == set(held.values())
    world.time.advance(policy.propagation_delay)
    cred = resolve_credential(kv, "stack-0", Phase.APPLY, world.time.now(), policy)
    assert cred.key_id == held[2], "the renewed secret is the ready one"
    ok, why = run_terraform(world, world.emu.session(), cred, tenant)
    assert ok, why
