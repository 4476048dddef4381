"""Confirming reads ask other replicas: a keep-alive connection stays on one replica.

A daemon whose connection lands on a replica that has not yet seen a new
secret (here: three hours behind) lists the application without it. After
``missing_grace`` the planner proposes to destroy the stored secret as
"removed outside us"; the confirming reads must reach other replicas, which
list it, or a good secret is destroyed.
"""

from __future__ import annotations

from datetime import timedelta

from sidecar.daemon import Daemon
from sidecar.emulator.replicas import LagProfile, named_profile
from tests.test_rotation_e2e import create_integrations
from tests.world import World


def test_a_secret_missing_on_the_pinned_replica_is_not_destroyed(world: World) -> None:
    state = world.emu.state
    state.set_replication(profile=named_profile("none"))
    [(name, _tenant)] = create_integrations(world, count=1, tenants=1)
    stuck = LagProfile(name="one-behind", fast_fraction=1.0, fast_max=1.0, tail_max=1.0)
    state.set_replication(profile=LagProfile(**{**stuck.__dict__, "stuck": {0: 3 * 3600.0}}))
    [first] = world.store.credentials(name)
    world.time.advance(first.expires - world.time.now() - timedelta(hours=1, minutes=30))
    state.routing.route_next_connection_to(1)  # the renewal is written through replica 1
    assert Daemon(world.runtime, holder="a").tick()
    renewed = max(world.store.credentials(name), key=lambda c: c.version)
    assert renewed.version != first.version
    world.time.advance(world.config.timing.missing_grace + timedelta(minutes=5))
    # A restarted daemon: its new keep-alive connection lands on replica 0, which
    # is three hours behind and does not list the renewed secret yet.
    state.routing.route_next_connection_to(0)
    daemon = Daemon(world.runtime, holder="b")
    assert daemon.tick(), daemon.health.last_error
    kept = {c.version for c in world.store.credentials(name)}
    assert renewed.version in kept, "a good secret was destroyed on one replica's listing"
    listings = [
        c
        for c in state.calls.query(kind="graph")
        if c.method == "GET" and c.path.endswith(world.store.integration(name)[0].app_object_id)
    ]
    assert 0 in {c.replica for c in listings[-4:]}, "the lagging replica served a listing"
