"""Eventual consistency: writes reach one replica at once and the others after a lag."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.emulator import PROFILES, EmulatorConfig, EmulatorServer, LagProfile
from sidecar.emulator.replicas import ReplicatedStore, resolve_stuck
from tests.emulator.conftest import MAX_LAG, World

PROBES = 30


def _codes(world: World, client_id: str, secret: str, n: int = PROBES) -> Counter[object]:
    """Sign-ins as ``n`` runs make them: each on its own connection, so on any replica."""
    out: Counter[object] = Counter()
    for _ in range(n):
        with world.emu.session() as fresh:
            response = fresh.post(
                world.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                    "scope": "https://management.azure.com/.default",
                },
            )
        out[200 if response.status_code == 200 else response.json()["error_codes"][0]] += 1
    return out


def _fresh_get(world: World, url: str, headers: dict[str, str]) -> requests.Response:
    with world.emu.session() as fresh:
        return fresh.get(url, headers=headers)


@pytest.fixture
def integration(world: World) -> tuple[World, dict[str, str], str, str]:
    """An app with its service principal, fully replicated: (world, headers, objId, appId)."""
    headers = world.headers()
    app = world.create_app(headers)
    world.emu.state.clock.advance(MAX_LAG)
    response = world.http.post(
        f"{world.graph}/servicePrincipals", json={"appId": app["appId"]}, headers=headers
    )
    assert response.status_code == 201, response.text
    world.settle()
    return world, world.headers(), app["id"], app["appId"]


def test_new_secret_is_rejected_by_lagging_replicas_then_accepted_everywhere(
    integration: tuple[World, dict[str, str], str, str],
) -> None:
    world, headers, object_id, app_id = integration
    added = world.add_password(headers, object_id, displayName="run")
    assert added["secretText"] and added["hint"] == added["secretText"][:3]
    first = _codes(world, app_id, added["secretText"])
    assert first[7000215] > 0, first  # some replicas have not seen it
    assert first[200] > 0, first  # the replica that took the write has
    replicas_hit = {c.replica for c in world.emu.state.calls.query(kind="token")[-PROBES:]}
    assert replicas_hit == {0, 1, 2}
    world.settle()
    assert _codes(world, app_id, added["secretText"]) == Counter({200: PROBES})


def test_expired_secret_is_7000222(integration: tuple[World, dict[str, str], str, str]) -> None:
    world, headers, object_id, app_id = integration
    end = world.emu.state.now() + 3600
    added = world.add_password(headers, object_id, endDateTime=end)
    world.settle()
    assert _codes(world, app_id, added["secretText"], 5) == Counter({200: 5})
    world.emu.state.clock.set(end + 1)
    response = world.secret_token(app_id, added["secretText"])
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client" and body["error_codes"] == [7000222]
    assert (
        f"The provided client secret keys for app '{app_id}' are expired"
        in body["error_description"]
    )


def test_removed_secret_stops_working_once_replicated(
    integration: tuple[World, dict[str, str], str, str],
) -> None:
    world, headers, object_id, app_id = integration
    added = world.add_password(headers, object_id)
    world.settle()
    response = world.http.post(
        f"{world.graph}/applications/{object_id}/removePassword",
        json={"keyId": added["keyId"]},
        headers=world.headers(),
    )
    assert response.status_code == 204
    world.settle()
    assert _codes(world, app_id, added["secretText"], 10) == Counter({7000215: 10})


def test_just_created_application_is_missing_on_some_replicas(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    url = f"{world.graph}/applications/{app['id']}"
    statuses = Counter(_fresh_get(world, url, headers).status_code for _ in range(PROBES))
    assert statuses[404] > 0 and statuses[200] > 0, statuses
    missing = _fresh_get(world, url, headers)
    while missing.status_code != 404:
        missing = _fresh_get(world, url, headers)
    error = missing.json()["error"]
    assert error["code"] == "Request_ResourceNotFound"
    assert error["message"].startswith(f"Resource '{app['id']}' does not exist")
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    world.settle()
    statuses = Counter(
        world.http.get(f"{world.graph}/applications/{app['id']}", headers=headers).status_code
        for _ in range(10)
    )
    assert statuses == Counter({200: 10})


def test_token_for_app_without_replicated_service_principal_is_700016(world: World) -> None:
    seeded = world.emu.state.seed_application(
        world.tenant_id, "no-sp", with_service_principal=False
    )
    response = world.secret_token(seeded.app_id, "whatever")
    body = response.json()
    assert response.status_code == 400 and body["error_codes"] == [700016]
    assert (
        f"Application with identifier '{seeded.app_id}' was not found in the directory"
        in (body["error_description"])
    )


def test_stuck_replica_profile_keeps_one_replica_behind_for_30_minutes() -> None:
    config = EmulatorConfig(clock_mode="manual", seed=3, lag_profile="stuck-replica")
    with EmulatorServer(config) as emu:
        state = emu.state
        tenant = state.seed_tenant()
        seeded = state.seed_application(tenant.tenant_id, "a")
        app = state.application(seeded.app_id)
        assert app is not None
        with state.lock:
            state.write_app(app.__class__(**{**app.__dict__, "display_name": "b"}), 0)
            now = state.now()
            assert state.app_view(app.object_id, 2, now + 600) is not None
            view = state.app_view(app.object_id, 2, now + 600)
            assert view is not None and view.display_name == "a"
            view = state.app_view(app.object_id, 2, now + 1800)
            assert view is not None and view.display_name == "b"


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), name=st.sampled_from(["default", "heavy"]))
def test_lag_never_exceeds_ten_minutes(seed: int, name: str) -> None:
    rng = random.Random(seed)
    profile = PROFILES[name]
    lags = [profile.sample(rng, 1) for _ in range(200)]
    assert all(0 <= lag <= 600 for lag in lags)


def test_default_profile_mostly_within_a_minute_with_a_tail() -> None:
    rng = random.Random(0)
    lags = [PROFILES["default"].sample(rng, 1) for _ in range(5000)]
    within_minute = sum(lag <= 60 for lag in lags) / len(lags)
    assert 0.75 < within_minute < 0.95
    assert max(lags) > 300


def test_none_profile_replicates_at_once() -> None:
    assert PROFILES["none"].sample(random.Random(0), 2) == 0.0


def test_replica_keeps_write_order_and_old_versions_are_pruned() -> None:
    store: ReplicatedStore[str] = ReplicatedStore()
    store.write("k", "v1", [0.0, 100.0], 0.0)
    store.write("k", "v2", [10.0, 50.0], 10.0)  # replica 1 must not see v2 before v1
    assert store.read("k", 1, 60.0) is None
    assert store.read("k", 1, 100.0) == "v2"
    assert store.read("k", 0, 5.0) == "v1"
    store.write("k", "v3", [200.0, 300.0], 200.0)
    assert len(store.history("k")) == 2  # v1 is unreachable once v2 is everywhere
    assert store.latest("k") == "v3"


def test_explicit_lag_parameters_and_negative_stuck_index() -> None:
    profile = LagProfile.from_dict({"fast_fraction": 1.0, "fast_max": 5, "tail_max": 5})
    assert profile.max_lag == 5
    stuck = resolve_stuck(PROFILES["stuck-replica"], 4)
    assert stuck.stuck == {3: 1800.0}
