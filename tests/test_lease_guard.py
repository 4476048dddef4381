"""A daemon that stalls past its lease must not write to Graph once another leads.

Reproduces what the replica test found: the leader waits out a 429 with a
Retry-After of two hours, its lease expires, the other replica takes over
and rotates, and the first one wakes up. Its retried addPassword is now
refused before it is sent, so only one secret is created.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from sidecar.daemon import Daemon
from sidecar.errors import LeaseLost
from sidecar.lease import LeaderLease
from tests.test_rotation_e2e import create_integrations
from tests.world import World


def add_password_posts(world: World) -> list[int]:
    """Statuses of every addPassword request the emulator received, in order."""
    calls = world.emu.state.calls.query(kind="graph")
    return [c.status for c in calls if c.method == "POST" and c.path.endswith("/addPassword")]


def test_confirm_renews_late_and_refuses_once_taken_over(world: World) -> None:
    kv = world.store.kv
    ttl = timedelta(seconds=90)
    a = LeaderLease(world.store, "a", world.time, ttl)
    b = LeaderLease(world.store, "b", world.time, ttl)
    assert a.acquire()
    version = kv.read_metadata("state/leader").current_version
    a.confirm()  # fresh: no Vault call
    assert kv.read_metadata("state/leader").current_version == version
    world.time.advance(timedelta(seconds=40))
    a.confirm()  # past a third: renewed
    assert kv.read_metadata("state/leader").current_version == version + 1
    world.time.advance(ttl + timedelta(seconds=1))
    assert b.acquire()
    with pytest.raises(LeaseLost, match="no longer holds the leader lease"):
        a.confirm()


def test_a_stalled_leader_does_not_rotate_after_a_takeover(world: World) -> None:
    [(name, _)] = create_integrations(world, count=1, tenants=1)
    world.time.advance(timedelta(hours=22, minutes=30))  # a renewal is due
    first = Daemon(world.runtime, holder="first")
    second = Daemon(world.runtime, holder="second")
    assert first.lease.acquire()
    before = len(add_password_posts(world))

    def take_over() -> None:
        # What the other replica does while the first one sleeps on Retry-After.
        assert second.lease.acquire()
        assert second.tick()

    first.graph()
    sleep = first.clock.sleep

    def stalled_sleep(seconds: float) -> None:
        sleep(seconds)
        if seconds >= 3600 and not second.lease.held:
            take_over()

    first.clock.sleep = stalled_sleep  # type: ignore[method-assign]
    record, _ = world.store.integration(name)
    world.emu.state.faults.fail_next(
        1,
        status=429,
        prefix=f"/graph/v1.0/applications/{record.app_object_id}/addPassword",
        retry_after=7200,
    )
    try:
        first.tick()
    finally:
        first.clock.sleep = sleep  # type: ignore[method-assign]
    assert second.lease.held
    # The first daemon's throttled attempt, then the second's creation; the first
    # daemon's retry was refused before it was sent.
    assert add_password_posts(world)[before:] == [429, 200]
    # The original secret expired during the two hours and was removed; one new one.
    [stored] = world.store.credentials(name)
    assert stored.created > world.time.now() - timedelta(hours=3)
    # The first daemon's intent is left for the leader, which clears it in time.
    world.time.advance(world.config.timing.intent_timeout)
    assert second.tick()
    assert world.store.intents(name)[0] == []
    assert world.our_key_ids(record.app_object_id) == {
        c.key_id for c in world.store.credentials(name)
    }


def test_concurrent_confirms_of_one_holder_never_refuse_each_other(world: World) -> None:
    """A pass's worker threads all confirm at once; only one of them renews."""
    lease = LeaderLease(world.store, "a", world.time, timedelta(seconds=90))
    assert lease.acquire()
    version = world.store.kv.read_metadata("state/leader").current_version
    world.time.advance(timedelta(seconds=45))
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: lease.confirm(), range(32)))
    assert outcomes == [None] * 32
    assert world.store.kv.read_metadata("state/leader").current_version == version + 1
