"""A tenant policy capping client-secret lifetime: say what to change, never loop."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sidecar.emulator.app_policy import AppManagementPolicy
from sidecar.errors import GraphError
from sidecar.integrations import Integrations
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


def test_lifetime_cap_is_reported_with_the_setting_to_change(world: World) -> None:
    world.emu.state.app_policy = AppManagementPolicy(max_password_lifetime=12 * 3600)
    tenant = world.add_tenant()
    with pytest.raises(GraphError) as raised:
        service(world).create("capped", tenant.tenant_id)
    message = str(raised.value)
    assert raised.value.code == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert "timing.secret_lifetime" in message and "24 h" in message
    add_password = [
        c for c in world.emu.state.calls.query(kind="graph") if c.path.endswith("/addPassword")
    ]
    assert [c.status for c in add_password] == [400], "asked once, not in a loop"
    assert world.store.intents("capped")[0] == [], "nothing was made, so no intent is left"


def test_a_lifetime_under_the_cap_works(world: World) -> None:
    world.emu.state.app_policy = AppManagementPolicy(max_password_lifetime=12 * 3600)
    world.config = world.config.__class__(
        vault=world.config.vault,
        azure=world.config.azure,
        timing=world.config.timing.__class__(
            secret_lifetime=timedelta(hours=11), secret_renew_before=timedelta(hours=2)
        ),
    )
    tenant = world.add_tenant()
    record = service(world).create("fits", tenant.tenant_id)
    assert record.status == "ready"
    [stored] = world.store.credentials("fits")
    assert stored.expires - stored.created <= timedelta(hours=11, minutes=1)
