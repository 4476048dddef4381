"""The demo's side of the emulator: its admin API over HTTPS, and its clock as a product Clock.

The demo plays the people around the product (the platform's Azure
administrator, each tenant's administrator) through ``/_emulator/``, the way
the tests do in-process, because in the demo the emulator is a separate process.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from sidecar.demo.processes import Child, DemoError


@dataclass(frozen=True)
class EmulatorEndpoints:
    """The JSON line ``azsidecar emulator serve`` prints once it listens."""

    base_url: str
    graph_url: str
    arm_url: str
    ca_path: str

    @classmethod
    def wait_for(cls, stdout_path: Path, child: Child, timeout: float = 30.0) -> EmulatorEndpoints:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = stdout_path.read_text() if stdout_path.exists() else ""
            if text.endswith("\n"):
                line = json.loads(text.splitlines()[0])
                return cls(
                    base_url=str(line["base_url"]),
                    graph_url=str(line["graph_url"]),
                    arm_url=str(line["arm_url"]),
                    ca_path=str(line["ca_path"]),
                )
            if not child.alive():
                raise DemoError(f"the emulator exited: {child.tail()}")
            time.sleep(0.05)
        raise DemoError(f"the emulator did not start within {timeout:.0f} s: {child.tail()}")


def https_session(ca_path: str) -> requests.Session:
    """A session trusting only the emulator's CA (``trust_env`` off so no variable overrides it)."""
    session = requests.Session()
    session.verify = ca_path
    session.trust_env = False
    return session


class EmulatorAdmin:
    """``/_emulator/``: tenants, the management app, role grants, the clock, applications."""

    def __init__(self, endpoints: EmulatorEndpoints) -> None:
        self.endpoints = endpoints
        self.url = f"{endpoints.base_url}/_emulator"
        self.session = https_session(endpoints.ca_path)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(method, f"{self.url}{path}", json=body, timeout=30)
        if response.status_code >= 400:
            raise DemoError(
                f"emulator admin {method} {path}: {response.status_code} {response.text[:200]}"
            )
        return response.json() if response.content else None

    def seed_tenant(self, name: str) -> tuple[str, str]:
        """A tenant with one subscription; returns (tenant id, subscription id)."""
        tenant = self._call(
            "POST", "/tenants", {"displayName": name, "subscriptions": [{"displayName": name}]}
        )
        return str(tenant["id"]), str(tenant["subscriptions"][0]["id"])

    def seed_management_app(self, tenant_id: str, certificate_pem: str) -> dict[str, Any]:
        """What the platform's administrator does once: app registration, Graph permission
        Application.ReadWrite.OwnedBy (consented), the app owning itself, the first
        certificate's public part uploaded."""
        seeded = self._call(
            "POST",
            "/management-app",
            {
                "tenant": tenant_id,
                "displayName": "azsidecar management (demo)",
                "certificatePem": certificate_pem,
            },
        )
        return dict(seeded)

    def grant_azure_role(
        self, tenant_id: str, subscription_id: str, app_id: str, role: str
    ) -> None:
        self._call(
            "POST",
            "/role-assignments",
            {"tenant": tenant_id, "subscription": subscription_id, "appId": app_id, "role": role},
        )

    def application(self, app_id: str) -> dict[str, Any]:
        """The application as Azure holds it (authoritative, not a lagging replica)."""
        return dict(self._call("GET", f"/applications/{app_id}"))

    def faults_served(self) -> int:
        """How many requests the emulator answered with an injected fault."""
        return int(self._call("GET", "/calls?limit=1")["faults"])

    def replication(self) -> dict[str, Any]:
        return dict(self._call("GET", "/replication"))

    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "/clock"))

    def advance(self, seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "/clock", {"advance": seconds}))

    def accelerate(self, factor: float) -> dict[str, Any]:
        """Let emulated time run ``factor`` times real time from now on."""
        return dict(self._call("POST", "/clock", {"factor": factor}))


class AdminClock:
    """The product's Clock over the emulator's manual clock, for the set-up phase.

    ``sleep`` advances the emulator, so the Graph client's waits (for a lagging
    replica, for ``Retry-After``) pass in emulated time without real waiting.
    """

    def __init__(self, admin: EmulatorAdmin) -> None:
        self.admin = admin

    def now(self) -> datetime:
        return datetime.fromtimestamp(float(self.admin.clock()["now"]), tz=UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.admin.advance(seconds)
