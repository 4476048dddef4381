"""A test world: the emulator (manual clock), a real OpenBao, and the product wired to both.

The product sees the emulator's time through :class:`EmulatorTime`, so tests
move days forward by advancing one clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from sidecar.config import AzureConfig, Config, VaultConfig
from sidecar.emulator import EmulatorServer, SeededApp
from sidecar.emulator.clock import Clock as EmuClock
from sidecar.graph import ARM_SCOPE
from sidecar.management import (
    ManagementIdentity,
    generate_key_pair,
    save_identity,
    store_certificate,
)
from sidecar.model import intent_of
from sidecar.runtime import Runtime
from sidecar.store import Store
from sidecar.timing import TimingPolicy

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class EmulatorTime:
    """The product's Clock over the emulator's clock; ``sleep`` advances a manual clock."""

    def __init__(self, clock: EmuClock) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), tz=UTC)

    def sleep(self, seconds: float) -> None:
        if self.clock.mode == "manual":
            self.clock.advance(seconds)

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta.total_seconds())


@dataclass
class UserTenant:
    tenant_id: str
    subscription_id: str


@dataclass
class World:
    emu: EmulatorServer
    store: Store
    config: Config
    time: EmulatorTime
    platform_tenant: str
    mgmt: SeededApp
    tenants: list[UserTenant] = field(default_factory=list)

    @property
    def runtime(self) -> Runtime:
        return Runtime(config=self.config, clock=self.time, store=self.store)

    def add_tenant(self) -> UserTenant:
        tenant_id = str(uuid.uuid4())
        subscription_id = str(uuid.uuid4())
        self.emu.state.seed_tenant(tenant_id, subscriptions=[{"id": subscription_id}])
        tenant = UserTenant(tenant_id, subscription_id)
        self.tenants.append(tenant)
        return tenant

    def consent_and_grant(self, client_id: str, tenant: UserTenant) -> None:
        """What a tenant administrator does: admin consent, then an Azure role."""
        redirect = self.config.azure.consent_redirect_uri
        response = self.emu.session().get(
            f"{self.emu.base_url}/{tenant.tenant_id}/adminconsent",
            params={"client_id": client_id, "state": "x", "redirect_uri": redirect},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text
        assert "admin_consent=True" in response.headers["Location"]
        self.emu.state.grant_azure_role(tenant.tenant_id, tenant.subscription_id, client_id)

    def azure_secrets(self, object_id: str) -> list[dict[str, Any]]:
        """The application's password credentials as Azure holds them (not replica-filtered)."""
        app = self.emu.state.application(object_id)
        assert app is not None
        return list(self.emu.state.app_admin_dict(app)["passwordCredentials"])

    def our_key_ids(self, object_id: str) -> set[str]:
        """Key ids of the application's secrets that the product made (named after an intent)."""
        return {
            str(s["keyId"])
            for s in self.azure_secrets(object_id)
            if intent_of(str(s.get("displayName") or ""))
        }


def run_terraform(
    world: World, session: requests.Session, credential: Any, tenant: UserTenant
) -> tuple[bool, str]:
    """Play a terraform run: sign in with the secret, then read the subscription via ARM."""
    token_url = f"{world.emu.base_url}/{credential.tenant_id}/oauth2/v2.0/token"
    response = session.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": credential.client_id,
            "client_secret": credential.client_secret.reveal(),
            "scope": ARM_SCOPE,
        },
        timeout=10,
    )
    if response.status_code != 200:
        return False, response.json().get("error_description", "")[:120]
    token = response.json()["access_token"]
    arm = session.get(
        f"{world.emu.arm_url}/subscriptions/{tenant.subscription_id}",
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if arm.status_code != 200:
        return False, f"ARM {arm.status_code} {arm.text[:120]}"
    return True, ""


def make_world(
    emu: EmulatorServer,
    store: Store,
    vault_addr: str,
    vault_token: str,
    start: datetime | None = START,
    *,
    record_key_id: bool = True,
    **timing: Any,
) -> World:
    """Seed the emulator's platform tenant and management app, and Vault's identity.

    ``start`` moves the emulator's clock to a fixed date; None keeps its time.
    ``record_key_id=False`` stores the certificate as ``management init`` does
    after an upload by hand: without the key id Azure gave it.
    """
    time = EmulatorTime(emu.state.clock)
    if start is not None:
        emu.state.clock.set(start.timestamp())
    now = time.now()
    platform = str(uuid.uuid4())
    emu.state.seed_tenant(platform, display_name="CI platform")
    # The management certificate is made here, as `management init` would; the
    # emulator only ever sees its public part.
    pair = generate_key_pair("azsidecar-management", now - timedelta(days=1), timedelta(days=30))
    mgmt = emu.state.seed_management_app(platform, certificate_pem=pair.cert_pem)
    save_identity(store, ManagementIdentity(platform, mgmt.object_id, mgmt.app_id))
    key_id = (mgmt.key_id or "") if record_key_id else ""
    store_certificate(store, pair, key_id=key_id, uploaded_at=now - timedelta(days=1))
    config = Config(
        vault=VaultConfig(addr=vault_addr, token=vault_token, prefix=store.kv.prefix),
        azure=AzureConfig(
            login_url=emu.base_url,
            graph_url=emu.graph_url,
            arm_url=emu.arm_url,
            ca_bundle=str(emu.ca_path),
            backoff_base=1.0,
        ),
        timing=TimingPolicy(**timing),
    )
    return World(
        emu=emu, store=store, config=config, time=time, platform_tenant=platform, mgmt=mgmt
    )
