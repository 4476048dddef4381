"""Fixtures: an in-process emulator on a manual clock, a seeded tenant and management app."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import msal
import pytest
import requests

from sidecar.emulator import EmulatorConfig, EmulatorServer, SeededApp, generate_client_certificate
from sidecar.emulator.tls import ClientCertificate

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"
MAX_LAG = 601.0


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(clock_mode="manual", seed=1234)) as server:
        yield server


@dataclass
class World:
    """A started emulator with one tenant, one subscription and the management app."""

    emu: EmulatorServer
    http: requests.Session
    tenant_id: str
    subscription_id: str
    mgmt: SeededApp

    @property
    def graph(self) -> str:
        return f"{self.emu.graph_url}/v1.0"

    @property
    def token_url(self) -> str:
        return f"{self.emu.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    def msal_app(self, credential: Any, client_id: str | None = None) -> Any:
        return msal.ConfidentialClientApplication(
            client_id or self.mgmt.app_id,
            authority=f"{self.emu.base_url}/{self.tenant_id}",
            client_credential=credential,
            http_client=self.http,
            instance_discovery=False,
        )

    def mgmt_token(self) -> str:
        result = self.msal_app(self.mgmt.msal_credential).acquire_token_for_client(
            scopes=[GRAPH_SCOPE]
        )
        assert "access_token" in result, result
        return str(result["access_token"])

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.mgmt_token()}"}

    def secret_token(
        self, client_id: str, secret: str, scope: str = ARM_SCOPE, tenant: str | None = None
    ) -> requests.Response:
        return self.http.post(
            f"{self.emu.base_url}/{tenant or self.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": scope,
            },
        )

    def settle(self) -> None:
        """Let every pending write reach every replica (default lag profile)."""
        self.emu.state.clock.advance(MAX_LAG)

    def create_app(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        body.setdefault("displayName", f"app-{uuid.uuid4().hex[:6]}")
        response = self.http.post(f"{self.graph}/applications", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def add_password(self, headers: dict[str, str], object_id: str, **cred: Any) -> dict[str, Any]:
        response = self.http.post(
            f"{self.graph}/applications/{object_id}/addPassword",
            json={"passwordCredential": cred},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        added: dict[str, Any] = response.json()
        return added


@pytest.fixture
def world(emu: EmulatorServer) -> World:
    tenant = emu.state.seed_tenant(display_name="Contoso", subscriptions=[{"displayName": "prod"}])
    mgmt = emu.state.seed_management_app(tenant.tenant_id)
    return World(emu, emu.session(), tenant.tenant_id, next(iter(tenant.subscriptions)), mgmt)


def make_proof(
    cert: ClientCertificate | SeededApp,
    object_id: str,
    *,
    aud: str = "00000002-0000-0000-c000-000000000000",
    lifetime: float = 600,
    now: float | None = None,
) -> str:
    """The proof-of-possession JWT for addKey / removeKey, signed with ``cert``'s key."""
    private_key = cert.private_key_pem
    thumbprint = cert.thumbprint_sha1
    assert private_key is not None and thumbprint is not None
    start = time.time() if now is None else now
    x5t = jwt.utils.base64url_encode(bytes.fromhex(thumbprint)).decode()
    return jwt.encode(
        {"aud": aud, "iss": object_id, "nbf": int(start), "exp": int(start + lifetime)},
        private_key,
        algorithm="RS256",
        headers={"x5t": x5t},
    )


def new_certificate(name: str = "test") -> ClientCertificate:
    return generate_client_certificate(name)
