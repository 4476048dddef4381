"""The state snapshot survives a restart, holds secret hashes only, and is written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import msal

from sidecar.emulator import EmulatorConfig, EmulatorServer
from tests.emulator.conftest import MAX_LAG


def test_state_survives_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    config = EmulatorConfig(
        clock_mode="manual", seed=5, state_file=state_file, ca_dir=tmp_path / "ca"
    )
    with EmulatorServer(config) as first:
        state = first.state
        tenant = state.seed_tenant(display_name="Contoso")
        mgmt = state.seed_management_app(tenant.tenant_id)
        http = first.session()
        token_url = f"{first.base_url}/{tenant.tenant_id}/oauth2/v2.0/token"
        token = msal.ConfidentialClientApplication(
            mgmt.app_id,
            authority=first.authority(tenant.tenant_id),
            client_credential=mgmt.msal_credential,
            http_client=http,
            instance_discovery=False,
        ).acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        app = http.post(
            f"{first.graph_url}/v1.0/applications", json={"displayName": "keep"}, headers=headers
        ).json()
        state.clock.advance(MAX_LAG)
        added = http.post(
            f"{first.graph_url}/v1.0/applications/{app['id']}/addPassword", json={}, headers=headers
        ).json()
        http.post(
            f"{first.graph_url}/v1.0/servicePrincipals",
            json={"appId": app["appId"]},
            headers=headers,
        )
        clock_before = state.now()
        ca_before = first.ca_path.read_bytes()
    text = state_file.read_text()
    assert added["secretText"] not in text
    assert "secretHash" in text
    assert not list(tmp_path.glob(".*.tmp"))

    with EmulatorServer(config) as second:
        assert second.ca_path.read_bytes() == ca_before  # clients keep trusting it
        assert second.state.now() == clock_before
        restored = second.state.application(app["appId"])
        assert restored is not None
        assert [p.key_id for p in restored.passwords] == [added["keyId"]]
        second.state.clock.advance(MAX_LAG)
        http = second.session()
        response = http.post(
            f"{second.base_url}/{tenant.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": app["appId"],
                "client_secret": added["secretText"],
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        assert response.status_code == 200, response.text
        # tokens issued before the restart still verify: the signing key was kept
        assert (
            http.get(
                f"{second.graph_url}/v1.0/applications/{app['id']}", headers=headers
            ).status_code
            == 200
        )
    assert token_url  # same URL layout across restarts (port may differ)


def test_snapshot_round_trip_keeps_pending_lag(tmp_path: Path) -> None:
    with EmulatorServer(EmulatorConfig(clock_mode="manual", seed=9)) as emu:
        state = emu.state
        tenant = state.seed_tenant()
        seeded = state.seed_application(tenant.tenant_id, "a")
        app = state.application(seeded.app_id)
        assert app is not None
        with state.lock:
            state.write_app(app.__class__(**{**app.__dict__, "display_name": "b"}), 0)
        path = tmp_path / "s.json"
        state.save(path)
        data = json.loads(path.read_text())
        [history] = [h for k, h in data["applications"].items() if k == app.object_id]
        assert len(history) == 2
        state.load(path)
        now = state.now()
        assert {
            (v.display_name if (v := state.app_view(app.object_id, r, now)) else None)
            for r in range(3)
        } >= {"b"}
