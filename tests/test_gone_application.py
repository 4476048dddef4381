"""An established integration whose application is gone does not stall the tick.

A 404 right after a create is ridden out for minutes (a lagging replica may
not have the application yet); an application created a day ago is on every
replica, so its 404 means it was deleted. The daemon then reports the listing
as unavailable at once instead of retrying the 404 for the whole lag window,
which would hold up every other integration's rotation in the same tick.
"""

from __future__ import annotations

from datetime import timedelta

from sidecar.daemon import Daemon
from sidecar.emulator.replicas import named_profile
from tests.test_rotation_e2e import create_integrations
from tests.world import World


def _gets(world: World, object_id: str) -> int:
    return sum(
        1
        for c in world.emu.state.calls.query(kind="graph")
        if c.method == "GET" and c.path.endswith(object_id)
    )


def test_a_deleted_application_of_an_old_integration_fails_fast(world: World) -> None:
    state = world.emu.state
    state.set_replication(profile=named_profile("none"))
    [(gone, _), (_other, _)] = create_integrations(world, count=2, tenants=1)
    world.time.advance(timedelta(hours=6))
    record, _ = world.store.integration(gone)
    app = state.application(record.app_object_id)
    assert app is not None
    state.delete_app(app, primary=None)
    before = _gets(world, record.app_object_id)
    started = world.time.now()
    daemon = Daemon(world.runtime, holder="a")
    assert daemon.tick(), daemon.health.last_error
    assert _gets(world, record.app_object_id) - before <= 2, "the 404 was ridden out"
    assert world.time.now() - started < timedelta(minutes=1)


def test_an_integration_deleted_between_visits_is_forgotten(world: World) -> None:
    """Regression (found by the chaos schedules, #21): the daemon kept the deleted
    integration's wake-up, failed it every few minutes ("nothing stored") and reported
    itself failing until restarted."""
    [(deleted, _), (kept, _)] = create_integrations(world, count=2, tenants=1)
    daemon = Daemon(world.runtime, holder="a")
    assert daemon.tick(), daemon.health.last_error
    assert deleted in daemon.wakes
    world.store.delete_integration(deleted)
    world.time.advance(timedelta(days=1))
    assert daemon.tick(only=[deleted, kept]), daemon.health.last_error
    assert deleted not in daemon.wakes and deleted not in daemon.health.failing
    assert kept in daemon.wakes
