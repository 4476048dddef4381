"""Every non-idempotent Graph write that a gateway answers 504 after committing.

The gateway fault runs the request (the directory commits the write) and then
answers 504 with an HTML body and ``Connection: close``. Whatever the product
does next, Azure must end up holding exactly what Vault records: no duplicate
application, no orphaned client secret, no second key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sidecar.daemon import Daemon
from sidecar.emulator.records import Application
from sidecar.graph import Application as App
from sidecar.integrations import Integrations
from sidecar.management import load_certificates
from sidecar.model import ConsentState, IntegrationStatus
from sidecar.orphans import find_orphans, orphaned, remove_orphans
from sidecar.store import IntegrationRecord
from tests.world import World


def service(world: World) -> Integrations:
    rt = world.runtime
    return Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        redirect_uri=rt.config.azure.consent_redirect_uri,
    )


def apps_named(world: World, display_name: str) -> list[Application]:
    """Applications with this name as Azure holds them (authoritative, not a replica's view)."""
    state = world.emu.state
    found = []
    for object_id in state.apps.object_keys():
        app = state.apps.latest(object_id)
        if app is not None and app.display_name == display_name:
            found.append(app)
    return found


def gateway_504_after_commit(world: World, prefix: str) -> None:
    world.emu.state.faults.gateway_next(
        1, status=504, commit=True, prefix=prefix, methods=("POST",)
    )


def test_create_application_answered_504_after_commit_leaves_one_application(
    world: World,
) -> None:
    tenant = world.add_tenant()
    gateway_504_after_commit(world, "/graph/v1.0/applications")
    record = service(world).create("gw-app", tenant.tenant_id)
    gateway = [c for c in world.emu.state.calls.query() if c.fault == "gateway"]
    assert [c.status for c in gateway] == [504], "the fault must have fired on the create"
    apps = apps_named(world, record.display_name)
    assert [a.object_id for a in apps] == [record.app_object_id]
    assert find_orphans(world.runtime.graph(), world.store, "azsidecar") == []


def test_add_password_answered_504_after_commit_leaves_no_orphan(world: World) -> None:
    tenant = world.add_tenant()
    gateway_504_after_commit(world, "/graph/v1.0/applications/")
    record = service(world).create("gw-secret", tenant.tenant_id)
    assert [c.status for c in world.emu.state.calls.query() if c.fault == "gateway"] == [504]
    stored = world.store.credentials("gw-secret")
    assert len(stored) == 1
    # The daemon's reconciliation, once the unanswered intent has timed out.
    world.time.advance(world.config.timing.intent_timeout + timedelta(minutes=1))
    daemon = Daemon(world.runtime, holder="t")
    assert daemon.tick(), daemon.health.last_error
    in_azure = {s["keyId"] for s in world.azure_secrets(record.app_object_id)}
    assert in_azure == {c.key_id for c in world.store.credentials("gw-secret")}
    assert stored[0].key_id in in_azure


def test_add_key_answered_504_after_commit_uploads_one_key_and_stores_it(world: World) -> None:
    daemon = Daemon(world.runtime, holder="t")
    assert daemon.tick(), daemon.health.last_error
    first = load_certificates(world.store)[0]
    world.time.advance(first.not_after - world.time.now() - timedelta(days=7))
    gateway_504_after_commit(world, f"/graph/v1.0/applications/{world.mgmt.object_id}/addKey")
    assert daemon.tick(), daemon.health.last_error
    assert [c.status for c in world.emu.state.calls.query() if c.fault == "gateway"] == [504]
    app = world.emu.state.application(world.mgmt.object_id)
    assert app is not None
    keys = world.emu.state.app_admin_dict(app)["keyCredentials"]
    certificates = load_certificates(world.store)
    new = max(certificates, key=lambda c: c.version)
    assert new.version != first.version, "the renewal was stored despite the 504"
    assert sorted(k["keyId"] for k in keys) == sorted(c.key_id for c in certificates)
    # After the switch the old key goes and exactly the stored new one stays.
    world.time.advance(world.config.timing.cert_switch_delay + timedelta(minutes=1))
    assert daemon.tick(), daemon.health.last_error
    app = world.emu.state.application(world.mgmt.object_id)
    assert app is not None
    assert [k["keyId"] for k in world.emu.state.app_admin_dict(app)["keyCredentials"]] == [
        new.key_id
    ]


def test_reconcile_deletes_only_applications_no_record_names(world: World) -> None:
    tenant = world.add_tenant()
    kept = service(world).create("kept", tenant.tenant_id)
    graph = world.runtime.graph()
    orphan = graph.create_application("azsidecar-lost-0123abcd", ["https://localhost/cb"])
    foreign = graph.create_application("someone-else", ["https://localhost/cb"])
    world.time.advance(timedelta(minutes=11))  # every replica lists them
    prefix = world.config.azure.app_name_prefix
    listed = remove_orphans(graph, world.store, prefix, delete=False)
    assert [a.object_id for a in listed.found] == [orphan.object_id]
    assert listed.removed == []
    done = remove_orphans(graph, world.store, prefix, delete=True)
    assert [a.object_id for a in done.removed] == [orphan.object_id]
    assert world.emu.state.apps.latest(orphan.object_id) is None
    assert world.emu.state.apps.latest(foreign.object_id) is not None
    assert world.emu.state.apps.latest(kept.app_object_id) is not None


def test_an_application_of_a_creation_in_progress_is_not_an_orphan() -> None:
    def record(name: str, object_id: str) -> IntegrationRecord:
        return IntegrationRecord(
            name=name,
            tenant_id="t",
            subscription_id=None,
            app_object_id=object_id,
            client_id="",
            display_name=f"azsidecar-{name}-00000000",
            consent=ConsentState.PENDING,
            created=datetime(2026, 1, 1, tzinfo=UTC),
            status=IntegrationStatus.READY if object_id else IntegrationStatus.CREATING,
        )

    apps = [
        App("o1", "a1", "azsidecar-done-00000000"),
        App("o2", "a2", "azsidecar-done-00000000"),  # a duplicate of a recorded one
        App("o3", "a3", "azsidecar-busy-00000000"),  # its creation has not recorded it yet
        App("o4", "a4", "other-app"),
    ]
    found = orphaned(apps, [record("done", "o1"), record("busy", "")], "azsidecar")
    assert [a.object_id for a in found] == ["o2"]
