"""Integrations: create, list, show, delete, and recovery from a failure halfway."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from sidecar.errors import GraphError, InputError
from sidecar.integrations import Integrations, consent_url
from sidecar.model import intent_of
from sidecar.ready import Ready, choose_ready
from sidecar.store import StackRecord
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


def test_create_makes_application_and_first_secret(world: World) -> None:
    tenant = world.add_tenant()
    record = service(world).create("web-prod", tenant.tenant_id, tenant.subscription_id)
    assert record.status == "ready"
    assert record.display_name.startswith("azsidecar-web-prod-")
    app = world.emu.state.application(record.app_object_id)
    assert app is not None
    assert world.emu.state.app_admin_dict(app)["signInAudience"] == "AzureADMultipleOrgs"
    # The first secret exists at once, in Azure and in Vault, named after its intent.
    stored = world.store.credentials("web-prod")
    assert len(stored) == 1
    in_azure = world.azure_secrets(record.app_object_id)
    assert [s["keyId"] for s in in_azure] == [stored[0].key_id]
    assert intent_of(in_azure[0]["displayName"]) == stored[0].intent_id
    assert world.store.intents("web-prod")[0] == []
    # Not ready before it has replicated, ready after.
    policy = world.config.timing
    assert not isinstance(choose_ready(stored, world.time.now(), policy), Ready)
    world.time.advance(stored[0].created + policy.propagation_delay - world.time.now())
    assert isinstance(choose_ready(stored, world.time.now(), policy), Ready)
    url = consent_url(world.config.azure.login_url, record, world.config.azure.consent_redirect_uri)
    assert f"/{tenant.tenant_id}/adminconsent?client_id={record.client_id}" in url


def test_several_integrations_per_tenant_get_distinct_apps(world: World) -> None:
    tenant = world.add_tenant()
    a = service(world).create("a", tenant.tenant_id)
    b = service(world).create("b", tenant.tenant_id)
    assert a.app_object_id != b.app_object_id
    assert a.display_name != b.display_name


@pytest.mark.parametrize(
    ("name", "tenant", "subscription", "message"),
    [
        ("../etc", "00000000-0000-0000-0000-000000000001", None, "invalid integration name"),
        ("UPPER", "00000000-0000-0000-0000-000000000001", None, "invalid integration name"),
        ("ok", "not-a-guid", None, "invalid tenant id"),
        ("ok", "00000000-0000-0000-0000-000000000001", "nope", "invalid subscription id"),
    ],
)
def test_create_validates_input_before_touching_anything(
    world: World, name: str, tenant: str, subscription: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        service(world).create(name, tenant, subscription)
    assert world.store.integration_names() == []
    assert world.emu.state.calls.query(kind="graph") == []


def test_create_twice_is_refused(world: World) -> None:
    tenant = world.add_tenant()
    service(world).create("dup", tenant.tenant_id)
    with pytest.raises(InputError, match="already exists"):
        service(world).create("dup", tenant.tenant_id)


def test_graph_failure_halfway_leaves_an_incomplete_record_that_create_finishes(
    world: World,
) -> None:
    tenant = world.add_tenant()
    # Every addPassword fails: the application exists, the secret does not.
    world.emu.state.faults.fail_next(100, status=500, prefix="/graph/v1.0/applications/")
    with pytest.raises(GraphError):
        service(world).create("half", tenant.tenant_id)
    record, _ = world.store.integration("half")
    assert record.status == "creating"
    assert record.app_object_id
    assert world.store.credentials("half") == []
    world.emu.state.faults.clear()
    # Running create again finishes it, with the same application.
    finished = service(world).create("half", tenant.tenant_id)
    assert finished.status == "ready"
    assert finished.app_object_id == record.app_object_id
    assert len(world.store.credentials("half")) == 1


def test_graph_failure_before_recording_the_app_is_found_by_display_name(world: World) -> None:
    tenant = world.add_tenant()
    world.emu.state.faults.fail_next(100, status=503, prefix="/graph/v1.0/applications/")
    with pytest.raises(GraphError):
        service(world).create("lost", tenant.tenant_id)
    record, version = world.store.integration("lost")
    # Simulate a crash between POST /applications and recording its id.
    world.store.save_integration(replace(record, app_object_id="", client_id=""), cas=version)
    world.emu.state.faults.clear()
    world.time.advance(timedelta(minutes=11))  # the new application has replicated
    finished = service(world).create("lost", tenant.tenant_id)
    assert finished.app_object_id == record.app_object_id


def test_delete_removes_application_secrets_and_vault_data(world: World) -> None:
    tenant = world.add_tenant()
    record = service(world).create("gone", tenant.tenant_id)
    removed = service(world).delete("gone")
    assert removed.application == record.display_name
    assert removed.secrets == 1
    assert world.emu.state.application(record.app_object_id) is None
    assert world.store.integration_names() == []
    assert world.store.credentials("gone") == []


def test_delete_is_refused_while_a_stack_uses_it(world: World) -> None:
    tenant = world.add_tenant()
    service(world).create("used", tenant.tenant_id)
    world.store.save_stack(StackRecord(name="s1", read="used", write=None), cas=0)
    with pytest.raises(InputError, match="used by stack"):
        service(world).delete("used")
    assert world.store.integration_names() == ["used"]


def test_delete_finishes_an_incomplete_create(world: World) -> None:
    tenant = world.add_tenant()
    world.emu.state.faults.fail_next(100, status=500, prefix="/graph/v1.0/applications/")
    with pytest.raises(GraphError):
        service(world).create("half", tenant.tenant_id)
    world.emu.state.faults.clear()
    record, _ = world.store.integration("half")
    service(world).delete("half")
    assert world.emu.state.application(record.app_object_id) is None
    assert world.store.integration_names() == []
