"""What happens right after set-up, when Azure AD's replicas have not caught up.

These are the defects found by running against an independent stand-in: the
bootstrap key stayed on the management application for ever, a sign-in that
met AADSTS700016/700027 failed `integration create` at once, and the retry
budget for a just-created object was seconds where the lag is minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from sidecar.daemon import Daemon
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.emulator.records import KeyCredential, certificate_validity
from sidecar.emulator.replicas import Version, named_profile
from sidecar.emulator.state import updated
from sidecar.integrations import Integrations
from sidecar.management import generate_key_pair, load_certificates, store_certificate
from sidecar.store import Store
from sidecar.vault import VaultKV
from tests.world import World, make_world


def service(world: World) -> Integrations:
    rt = world.runtime
    return Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        redirect_uri=rt.config.azure.consent_redirect_uri,
    )


def key_ids_on_management_app(world: World) -> list[str]:
    app = world.emu.state.application(world.mgmt.object_id)
    assert app is not None
    return [str(k["keyId"]) for k in world.emu.state.app_admin_dict(app)["keyCredentials"]]


@pytest.fixture
def bootstrapped(emulator: EmulatorServer, openbao: object, kv: VaultKV) -> World:
    """As the README's `management init --generate` + upload leaves it: no stored key id."""
    addr, token = openbao.addr, openbao.root_token  # type: ignore[attr-defined]
    return make_world(emulator, Store(kv), addr, token, record_key_id=False)


def test_bootstrap_key_is_removed_after_the_first_renewal(bootstrapped: World) -> None:
    world = bootstrapped
    [bootstrap_key] = key_ids_on_management_app(world)
    [first] = load_certificates(world.store)
    assert first.key_id == ""
    daemon = Daemon(world.runtime, holder="t")
    assert daemon.tick(), daemon.health.last_error
    world.time.advance(first.not_after - world.time.now() - timedelta(days=7))
    assert daemon.tick(), daemon.health.last_error
    new = max(load_certificates(world.store), key=lambda c: c.version)
    world.time.advance(world.config.timing.cert_switch_delay + timedelta(minutes=1))
    assert daemon.tick(), daemon.health.last_error
    assert bootstrap_key not in key_ids_on_management_app(world)
    assert key_ids_on_management_app(world) == [new.key_id]
    assert [c.version for c in load_certificates(world.store)] == [new.version]


def _hide(world: World, what: str) -> None:
    """Make the management application's latest write visible to no replica for 5 minutes."""
    state = world.emu.state
    now = state.now()
    later = [now + 300.0] * state.replicas
    with state.lock:
        if what == "application":
            # Set-up just created the application: no replica knows it (AADSTS700016).
            app = state.apps.latest(world.mgmt.object_id)
            state.apps.set_history(world.mgmt.object_id, [Version(later, app)])
        else:
            # Set-up just uploaded a new certificate, stored as the one to use (700027).
            pair = generate_key_pair("azsidecar-management", world.time.now(), timedelta(days=30))
            app = state.apps.latest(world.mgmt.object_id)
            assert app is not None
            start, end = certificate_validity(pair.cert_der)
            key = KeyCredential(str(uuid.uuid4()), "set-up", start, end, pair.cert_der)
            new = updated(app, keys=(*app.keys, key))
            history = state.apps.history(world.mgmt.object_id)
            state.apps.set_history(world.mgmt.object_id, [*history[-1:], Version(later, new)])
            store_certificate(
                world.store,
                pair,
                key_id=key.key_id,
                uploaded_at=world.time.now() - world.config.timing.cert_switch_delay,
            )


@pytest.mark.parametrize(("what", "code"), [("application", 700016), ("key", 700027)])
def test_sign_in_right_after_set_up_is_retried(world: World, what: str, code: int) -> None:
    _hide(world, what)
    tenant = world.add_tenant()
    record = service(world).create("right-after", tenant.tenant_id)
    assert record.status == "ready"
    refused = [c for c in world.emu.state.calls.query(kind="token") if c.status != 200]
    assert refused, "the sign-in must have met a replica that did not know the set-up yet"
    assert {c.error_code for c in refused} == {f"AADSTS{code}"}


@pytest.fixture
def churning() -> Iterator[EmulatorServer]:
    """Heavy lag, sticky keep-alive routing, and connections dropped now and then."""
    config = EmulatorConfig(
        clock_mode="manual", seed=1414, replicas=4, lag_profile="heavy", sticky_connections=True
    )
    with EmulatorServer(config) as server:
        yield server


def test_integration_create_finishes_unattended_under_heavy_lag_and_churn(
    churning: EmulatorServer, openbao: object, kv: VaultKV
) -> None:
    addr, token = openbao.addr, openbao.root_token  # type: ignore[attr-defined]
    world = make_world(churning, Store(kv), addr, token)
    world.config = world.config.__class__(
        vault=world.config.vault,
        azure=world.config.azure.__class__(
            login_url=world.config.azure.login_url,
            graph_url=world.config.azure.graph_url,
            arm_url=world.config.azure.arm_url,
            ca_bundle=world.config.azure.ca_bundle,
        ),  # the shipped retry defaults, as an operator has them
        timing=world.config.timing,
    )
    assert named_profile("heavy") is not None
    for rule in churning.state.faults.random_errors(0.05, (503,), kind="graph"):
        rule.drop = True
    tenant = world.add_tenant()
    made = []
    for i in range(6):
        record = service(world).create(f"lagged-{i}", tenant.tenant_id)
        assert record.status == "ready"
        assert len(world.store.credentials(record.name)) == 1
        made.append(record)
    misses = [
        c
        for c in churning.state.calls.query(kind="graph")
        if c.method == "POST" and c.status == 404
    ]
    assert misses, "the heavy profile must have hidden some just-created applications"
    assert len({r.app_object_id for r in made}) == 6
