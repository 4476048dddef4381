"""Throttling (429 + Retry-After) and injected faults: statuses, random errors, dropped sockets."""

from __future__ import annotations

import pytest
import requests

from sidecar.emulator import ThrottleConfig
from tests.emulator.conftest import GRAPH_SCOPE, World


def test_throttling_answers_429_with_retry_after(world: World) -> None:
    headers = world.headers()
    world.emu.state.configure_throttle(ThrottleConfig(writes=3, per_seconds=60))
    statuses = []
    for i in range(4):
        response = world.http.post(
            f"{world.graph}/applications", json={"displayName": f"t{i}"}, headers=headers
        )
        statuses.append(response.status_code)
    assert statuses == [201, 201, 201, 429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert world.emu.state.calls.throttled == 1
    world.emu.state.clock.advance(int(response.headers["Retry-After"]))
    again = world.http.post(
        f"{world.graph}/applications", json={"displayName": "x"}, headers=headers
    )
    assert again.status_code == 201
    reads = world.http.get(f"{world.graph}/applications", headers=headers)
    assert reads.status_code == 200  # reads are not limited


def test_throttle_via_admin_api_is_off_by_default(world: World) -> None:
    admin = f"{world.emu.base_url}/_emulator/throttle"
    assert world.http.get(admin).json()["enabled"] is False
    body = world.http.post(admin, json={"writes": 3000, "per_seconds": 150}).json()
    assert body["enabled"] is True and body["writes"] == 3000


def test_fail_next_n_matching_requests(world: World) -> None:
    headers = world.headers()
    response = world.http.post(
        f"{world.emu.base_url}/_emulator/faults",
        json={"next": 2, "status": 503, "kind": "graph"},
    )
    assert response.status_code == 201
    url = f"{world.graph}/applications"
    token = world.secret_token(world.mgmt.app_id, "irrelevant")  # a token call is not matched
    assert token.status_code == 401
    first, second, third = (world.http.get(url, headers=headers) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json()["error"]["code"] == "ServiceUnavailable"
    faults = world.emu.state.calls.query(kind="graph", status=503)
    assert len(faults) == 2 and all(c.fault == "status" for c in faults)


def test_injected_429_on_token_endpoint_has_retry_after(world: World) -> None:
    world.emu.state.faults.fail_next(1, status=429, kind="token", retry_after=7)
    result = world.msal_app(world.mgmt.msal_credential).acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )
    assert "access_token" not in result
    response = world.secret_token(world.mgmt.app_id, "x")
    assert response.status_code == 401  # the fault was consumed by MSAL's request
    world.emu.state.faults.fail_next(1, status=429, kind="token", retry_after=7)
    throttled = world.secret_token(world.mgmt.app_id, "x")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"


def test_dropped_connection(world: World) -> None:
    world.emu.state.faults.drop_next(1, prefix="/graph")
    headers = world.headers()
    with pytest.raises(requests.ConnectionError):
        world.http.get(f"{world.graph}/applications", headers=headers)
    assert world.http.get(f"{world.graph}/applications", headers=headers).status_code == 200
    [dropped] = world.emu.state.calls.query(status=0)
    assert dropped.fault == "drop"


def test_random_error_rate(world: World) -> None:
    world.http.post(
        f"{world.emu.base_url}/_emulator/faults",
        json={"random": {"rate": 1.0, "statuses": [500, 502], "kind": "arm"}},
    )
    url = f"{world.emu.arm_url}/subscriptions/{world.subscription_id}?api-version=2022-12-01"
    statuses = {world.http.get(url).status_code for _ in range(20)}
    assert statuses <= {500, 502} and statuses
    assert world.http.delete(f"{world.emu.base_url}/_emulator/faults").status_code == 204
    assert world.http.get(url).status_code == 401


def test_call_log_filters(world: World) -> None:
    start = world.emu.state.calls.next_index
    world.mgmt_token()
    params: dict[str, str | int] = {"since": start, "kind": "token"}
    calls = world.http.get(f"{world.emu.base_url}/_emulator/calls", params=params).json()
    [call] = calls["calls"]
    assert call["status"] == 200 and call["client"] == world.mgmt.app_id
    assert call["tenant"] == world.tenant_id and call["replica"] in (0, 1, 2)
    assert calls["next"] > start
