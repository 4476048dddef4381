"""The demo: a secret that some replicas reject at first, then all accept, then it expires.

Driven by the manual clock, never by sleeping, so it runs in a few seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msal
import requests

from sidecar.emulator.server import EmulatorConfig, EmulatorServer

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"
PROBES_PER_STEP = 12
STEPS = (0, 15, 30, 60, 120, 240, 480, 600)


@dataclass
class ScenarioResult:
    accepted_by_step: list[tuple[int, int, int]] = field(default_factory=list)
    first_all_accepted: int | None = None
    expired_code: str | None = None
    arm_before_grant: int | None = None
    arm_after_grant: int | None = None

    @property
    def ok(self) -> bool:
        return (
            self.first_all_accepted is not None
            and self.expired_code == "AADSTS7000222"
            and self.arm_before_grant == 403
            and self.arm_after_grant == 200
        )


def _error_code(response: requests.Response) -> str:
    try:
        codes = response.json().get("error_codes") or []
    except ValueError:
        return f"HTTP {response.status_code}"
    return f"AADSTS{codes[0]}" if codes else f"HTTP {response.status_code}"


def run_scenario(
    say: Callable[[str], None] = print, *, seed: int = 1, lag_profile: str = "default"
) -> ScenarioResult:
    result = ScenarioResult()
    config = EmulatorConfig(clock_mode="manual", seed=seed, lag_profile=lag_profile)
    with EmulatorServer(config) as emu:
        state, http = emu.state, emu.session()
        say(
            f"emulator listening on {emu.base_url} (CA {emu.ca_path}), "
            f"3 replicas, lag profile {lag_profile!r}"
        )
        tenant = state.seed_tenant(display_name="Contoso", subscriptions=[{"displayName": "prod"}])
        subscription = next(iter(tenant.subscriptions))
        mgmt = state.seed_management_app(tenant.tenant_id)
        say(f"seeded tenant {tenant.tenant_id} and management app {mgmt.app_id} with a certificate")

        msal_app = msal.ConfidentialClientApplication(
            mgmt.app_id,
            authority=emu.authority(tenant.tenant_id),
            client_credential={
                "private_key": mgmt.private_key_pem,
                "public_certificate": mgmt.certificate_pem,
            },
            http_client=http,
            instance_discovery=False,
        )
        token = msal_app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        if "access_token" not in token:
            raise RuntimeError(f"MSAL could not get a Graph token: {token.get('error')}")
        graph = f"{emu.graph_url}/v1.0"
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        say("management app got a Graph token through MSAL (certificate, x5t#S256)")

        def graph_call(method: str, path: str, body: dict[str, Any]) -> requests.Response:
            # Writes may land on a replica that has not seen the object yet: retry as a client must.
            for _ in range(60):
                response = http.request(method, f"{graph}{path}", json=body, headers=headers)
                if response.status_code not in (400, 404):
                    return response
                state.clock.advance(5)
            return response

        created = graph_call("POST", "/applications", {"displayName": "integration-demo"}).json()
        app_id, object_id = created["appId"], created["id"]
        graph_call("POST", "/servicePrincipals", {"appId": app_id})
        state.clock.advance(600)
        say(f"created application {app_id} and its service principal; let 10 min pass")

        end = state.now() + 86400
        added = graph_call(
            "POST",
            f"/applications/{object_id}/addPassword",
            {"passwordCredential": {"displayName": "demo", "endDateTime": end}},
        ).json()
        secret = added["secretText"]
        added_at = state.now()
        say(f"addPassword -> keyId {added['keyId']} (hint {added['hint']}), valid 24 h")

        def probe(scope: str) -> requests.Response:
            # Each run signs in on its own connection, so may reach any replica.
            with emu.session() as fresh:
                return fresh.post(
                    f"{emu.authority(tenant.tenant_id)}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": app_id,
                        "client_secret": secret,
                        "scope": scope,
                    },
                )

        for step in STEPS:
            state.clock.set(added_at + step)
            outcomes = Counter(
                "ok" if (r := probe(ARM_SCOPE)).status_code == 200 else _error_code(r)
                for _ in range(PROBES_PER_STEP)
            )
            accepted = outcomes.pop("ok", 0)
            rejected = ", ".join(f"{n}x {code}" for code, n in sorted(outcomes.items()))
            say(f"  t+{step:>3}s: {accepted:>2}/{PROBES_PER_STEP} token requests accepted"
                + (f"; rejected: {rejected}" if rejected else ""))  # fmt: skip
            result.accepted_by_step.append((step, accepted, PROBES_PER_STEP))
        for step, accepted, total in reversed(result.accepted_by_step):
            if accepted != total:
                break
            result.first_all_accepted = step
        replicated = state.replicated_at(object_id)
        if replicated is not None:
            say(
                f"the secret reached the last replica {replicated - added_at:.0f}s "
                "after addPassword"
            )

        arm_token = probe(ARM_SCOPE).json()["access_token"]
        arm_headers = {"Authorization": f"Bearer {arm_token}"}
        arm_url = f"{emu.arm_url}/subscriptions/{subscription}?api-version=2022-12-01"
        before = http.get(arm_url, headers=arm_headers)
        result.arm_before_grant = before.status_code
        state.grant_azure_role(tenant.tenant_id, subscription, app_id, "Contributor")
        result.arm_after_grant = http.get(arm_url, headers=arm_headers).status_code
        say(f"ARM GET /subscriptions/{subscription}: {result.arm_before_grant} before the role "
            f"grant, {result.arm_after_grant} after")  # fmt: skip

        state.clock.set(end + 1)
        expired = probe(GRAPH_SCOPE)
        result.expired_code = _error_code(expired)
        say(f"24 h later the secret is expired: HTTP {expired.status_code} {result.expired_code}")
        calls = state.calls.query(kind="token")
        say(
            f"summary: {len(calls)} token requests; all accepted the secret from "
            f"{result.first_all_accepted}s after addPassword; expiry -> {result.expired_code}"
        )
    return result
