"""What an independent stand-in showed our emulator lacked: routing, gateways, quotas, policy."""

from __future__ import annotations

import requests

from sidecar.emulator import EmulatorConfig, EmulatorServer, ThrottleConfig
from sidecar.emulator.app_policy import AppManagementPolicy
from sidecar.emulator.clock import iso
from tests.emulator.conftest import World

GRAPH = "/graph/v1.0"


def replica_of(response: requests.Response) -> str:
    return response.headers["x-ms-ests-server"]


def test_a_keep_alive_connection_stays_on_one_replica(world: World) -> None:
    headers = world.headers()
    url = f"{world.graph}/applications"
    pinned = {replica_of(world.http.get(url, headers=headers)) for _ in range(12)}
    assert len(pinned) == 1
    fresh = set()
    for _ in range(12):
        with world.emu.session() as session:
            fresh.add(replica_of(session.get(url, headers=headers)))
    assert len(fresh) > 1, "new connections must reach other replicas"


def test_routing_per_request_when_not_sticky() -> None:
    config = EmulatorConfig(clock_mode="manual", seed=5, sticky_connections=False)
    with EmulatorServer(config) as emu:
        session = emu.session()
        seen = {replica_of(session.get(f"{emu.graph_url}/v1.0/applications")) for _ in range(12)}
    assert len(seen) > 1


def test_gateway_504_after_commit_has_html_and_closes(world: World) -> None:
    headers = world.headers()
    world.emu.state.faults.gateway_next(1, status=504, commit=True, prefix=f"{GRAPH}/applications")
    response = world.http.post(
        f"{world.graph}/applications", json={"displayName": "committed"}, headers=headers
    )
    assert response.status_code == 504
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Connection"].lower() == "close"
    assert "Retry-After" not in response.headers
    assert "504 Gateway Time-out" in response.text
    names = [
        a.display_name
        for k in world.emu.state.apps.object_keys()
        if (a := world.emu.state.apps.latest(k)) is not None
    ]
    assert "committed" in names, "the write behind the 504 was carried out"


def test_gateway_503_without_retry_after_does_not_commit(world: World) -> None:
    headers = world.headers()
    world.emu.state.faults.gateway_next(1, status=503, prefix=f"{GRAPH}/applications")
    response = world.http.post(
        f"{world.graph}/applications", json={"displayName": "refused"}, headers=headers
    )
    assert response.status_code == 503
    assert "Retry-After" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    names = {
        a.display_name
        for k in world.emu.state.apps.object_keys()
        if (a := world.emu.state.apps.latest(k)) is not None
    }
    assert "refused" not in names


def test_429_carries_microsofts_throttle_headers_per_app_and_per_tenant(world: World) -> None:
    headers = world.headers()
    state = world.emu.state
    state.configure_throttle(ThrottleConfig(writes=1, per_seconds=60))
    url = f"{world.graph}/applications"
    assert world.http.post(url, json={"displayName": "a"}, headers=headers).status_code == 201
    app = world.http.post(url, json={"displayName": "b"}, headers=headers)
    assert app.status_code == 429
    assert app.headers["x-ms-throttle-scope"] == (
        f"Tenant_Application/Write/{world.mgmt.app_id}/{world.tenant_id}"
    )
    assert app.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert int(app.headers["Retry-After"]) >= 1
    state.configure_throttle(ThrottleConfig(tenant_writes=1, per_seconds=60))
    assert world.http.post(url, json={"displayName": "c"}, headers=headers).status_code == 201
    tenant = world.http.post(url, json={"displayName": "d"}, headers=headers)
    assert tenant.status_code == 429
    assert tenant.headers["x-ms-throttle-scope"].startswith("Tenant/Write/")
    assert world.http.get(url, headers=headers).status_code == 200  # reads are not limited


def test_app_management_policy_caps_secret_lifetime(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    world.emu.state.app_policy = AppManagementPolicy(max_password_lifetime=12 * 3600)
    now = world.emu.state.now()
    refused = world.http.post(
        f"{world.graph}/applications/{app['id']}/addPassword",
        json={"passwordCredential": {"endDateTime": iso(now + 24 * 3600)}},
        headers=headers,
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert "PT12H" in error["message"]
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    fits = world.add_password(headers, app["id"], endDateTime=iso(now + 11 * 3600))
    assert fits["secretText"]


def test_graph_bodies_as_graph_sends_them(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    assert app["@odata.context"].endswith("$metadata#applications/$entity")
    added = world.add_password(headers, app["id"], displayName="x")
    assert added["@odata.context"].endswith("$metadata#microsoft.graph.passwordCredential")
    assert added["secretText"] and added["hint"] == added["secretText"][:3]
    world.settle()
    listed = world.http.get(f"{world.graph}/applications/{app['id']}", headers=headers).json()
    [password] = listed["passwordCredentials"]
    assert password["secretText"] is None and password["hint"] == added["hint"]
    missing = world.http.get(
        f"{world.graph}/applications/00000000-0000-0000-0000-000000000000",
        headers={**headers, "client-request-id": "abc-123"},
    )
    inner = missing.json()["error"]["innerError"]
    assert inner["client-request-id"] == "abc-123"
    assert {"date", "request-id"} <= set(inner)


def test_a_removed_secret_keeps_working_on_lagging_replicas(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    world.settle()
    added = world.add_password(headers, app["id"])
    world.settle()
    sp = world.http.post(
        f"{world.graph}/servicePrincipals", json={"appId": app["appId"]}, headers=headers
    )
    assert sp.status_code == 201, sp.text
    world.settle()
    removed = world.http.post(
        f"{world.graph}/applications/{app['id']}/removePassword",
        json={"keyId": added["keyId"]},
        headers=headers,
    )
    assert removed.status_code == 204
    accepted = 0
    for _ in range(16):
        with world.emu.session() as session:
            response = session.post(
                world.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": app["appId"],
                    "client_secret": added["secretText"],
                    "scope": "https://management.azure.com/.default",
                },
            )
        accepted += response.status_code == 200
    assert accepted >= 1, "some replica has not yet seen the removal"
    world.settle()
    after = world.secret_token(app["appId"], added["secretText"])
    assert after.status_code == 401
    assert after.json()["error_codes"] == [7000215]
