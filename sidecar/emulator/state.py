"""The emulator's whole state: tenants, replicated directory objects, grants and switches.

``EmulatorState`` is what tests hold (``server.state``). Its public methods take
the lock themselves; the HTTP layers take ``state.lock`` once per request and
use the ``*_locked`` / view helpers inside it. Seeding lives in ``seeding`` and
the snapshot on disk in ``persistence``; the methods of the same names here
hand over to them.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from sidecar.emulator import persistence, seeding
from sidecar.emulator.app_policy import AppManagementPolicy
from sidecar.emulator.calllog import CallLog
from sidecar.emulator.clock import Clock, iso
from sidecar.emulator.faults import FaultInjector
from sidecar.emulator.issuer_keys import IssuerKeyCache
from sidecar.emulator.records import (
    SINGLE_TENANT,
    Application,
    ServicePrincipal,
    Subscription,
    Tenant,
    sp_key,
)
from sidecar.emulator.replicas import LagProfile, ReplicatedStore, resolve_stuck
from sidecar.emulator.routing import ReplicaRouting
from sidecar.emulator.seeding import MANAGEMENT_ROLE, AdminError, SeededApp
from sidecar.emulator.throttle import Throttle, ThrottleConfig
from sidecar.emulator.tokens import SigningKey

__all__ = [
    "MANAGEMENT_ROLE",
    "AdminError",
    "AssertionClock",
    "EmulatorState",
    "SeededApp",
    "updated",
]

AssertionClock = Literal["either", "emulated", "real"]


class EmulatorState:
    """The live directory. Thread-safe through ``lock`` (re-entrant)."""

    def __init__(
        self,
        *,
        replicas: int = 3,
        lag: LagProfile | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        throttle: ThrottleConfig | None = None,
        assertion_clock: AssertionClock = "either",
        sticky_connections: bool = True,
    ) -> None:
        if replicas < 1:
            raise AdminError("there must be at least one replica")
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.rng = random.Random(seed)  # noqa: S311 - reproducible lag, not crypto
        self.replicas = replicas
        self.lag = resolve_stuck(lag or LagProfile(), replicas)
        self.throttle = Throttle(throttle)
        self.faults = FaultInjector()
        self.routing = ReplicaRouting(sticky=sticky_connections)
        self.app_policy = AppManagementPolicy()
        self.calls = CallLog()
        self.signing = SigningKey()
        #: External OIDC issuers' keys for federated client assertions (``issuer_keys``).
        self.issuer_keys = IssuerKeyCache()
        self.assertion_clock: AssertionClock = assertion_clock
        self.changes = 0
        self.clear_directory()

    def clear_directory(self) -> None:
        """Forget every tenant, directory object and grant (the rest of the state stays)."""
        self.tenants: dict[str, Tenant] = {}
        self.apps: ReplicatedStore[Application] = ReplicatedStore()
        self.app_ids: dict[str, str] = {}
        self.owned: dict[str, dict[str, None]] = {}
        self.sps: ReplicatedStore[ServicePrincipal] = ReplicatedStore()
        self.sp_by_tenant: dict[str, dict[str, None]] = {}
        self.app_roles: dict[str, set[str]] = {}
        self.azure_roles: dict[str, dict[str, set[str]]] = {}

    # ----- time and replicas -------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def pick_replica(self, connection: object | None = None) -> int:
        """The serving replica: per connection when routing is sticky, else per request."""
        with self.lock:
            return self.routing.pick(connection, self.replicas, self.rng)

    def jwt_nows(self, emulated: float) -> list[float]:
        """The instants against which client-signed JWT time claims are checked."""
        if self.assertion_clock == "emulated":
            return [emulated]
        if self.assertion_clock == "real":
            return [time.time()]
        return [emulated, time.time()]

    def _visibility(self, primary: int | None, now: float) -> list[float]:
        if primary is None:
            return [now] * self.replicas
        return [
            now if i == primary else now + self.lag.sample(self.rng, i)
            for i in range(self.replicas)
        ]

    def set_replication(
        self, *, replicas: int | None = None, profile: LagProfile | None = None
    ) -> None:
        with self.lock:
            if replicas is not None:
                if replicas < 1:
                    raise AdminError("there must be at least one replica")
                self.replicas = replicas
            base = profile or self.lag
            self.lag = resolve_stuck(base, self.replicas)
            self.changes += 1

    def replication_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"replicas": self.replicas, "profile": self.lag.to_dict()}

    # ----- directory writes (call under lock) -------------------------------

    def write_app(self, app: Application, primary: int | None) -> None:
        now = self.now()
        self.apps.write(app.object_id, app, self._visibility(primary, now), now)
        self.app_ids[app.app_id] = app.object_id
        for owner in app.owners:
            self.owned.setdefault(owner, {})[app.object_id] = None
        self.changes += 1

    def delete_app(self, app: Application, primary: int | None) -> None:
        now = self.now()
        self.apps.write(app.object_id, None, self._visibility(primary, now), now)
        self.changes += 1

    def write_sp(self, sp: ServicePrincipal, primary: int | None) -> None:
        key = sp_key(sp.tenant_id, sp.app_id)
        now = self.now()
        self.sps.write(key, sp, self._visibility(primary, now), now)
        self.sp_by_tenant.setdefault(sp.tenant_id, {})[sp.app_id] = None
        self.changes += 1

    # ----- directory reads ----------------------------------------------------

    def app_view(self, object_id: str, replica: int, now: float) -> Application | None:
        return self.apps.read(object_id, replica, now)

    def app_by_app_id_view(self, app_id: str, replica: int, now: float) -> Application | None:
        object_id = self.app_ids.get(app_id)
        return None if object_id is None else self.apps.read(object_id, replica, now)

    def sp_view(
        self, tenant_id: str, app_id: str, replica: int, now: float
    ) -> ServicePrincipal | None:
        return self.sps.read(sp_key(tenant_id, app_id), replica, now)

    def application(self, object_id_or_app_id: str) -> Application | None:
        """The authoritative application (latest write), by object id or appId."""
        with self.lock:
            object_id = self.app_ids.get(object_id_or_app_id, object_id_or_app_id)
            return self.apps.latest(object_id)

    def service_principal(self, tenant_id: str, app_id: str) -> ServicePrincipal | None:
        with self.lock:
            return self.sps.latest(sp_key(tenant_id, app_id))

    def roles_of(self, tenant_id: str, app_id: str) -> tuple[str, ...]:
        return tuple(sorted(self.app_roles.get(sp_key(tenant_id, app_id), set())))

    def has_azure_role(self, subscription_id: str, app_id: str) -> bool:
        return bool(self.azure_roles.get(subscription_id, {}).get(app_id))

    def tenant_of_subscription(self, subscription_id: str) -> Subscription | None:
        for tenant in self.tenants.values():
            sub = tenant.subscriptions.get(subscription_id)
            if sub is not None:
                return sub
        return None

    def replicated_at(self, object_id: str) -> float | None:
        history = self.apps.history(object_id)
        return max(history[-1].visible_at) if history else None

    # ----- seeding (public, takes the lock; see ``seeding``) -------------------

    def seed_tenant(
        self,
        tenant_id: str | None = None,
        display_name: str = "",
        subscriptions: list[dict[str, Any]] | None = None,
    ) -> Tenant:
        return seeding.seed_tenant(self, tenant_id, display_name, subscriptions)

    def add_subscription(
        self, tenant_id: str, subscription_id: str | None = None, display_name: str = ""
    ) -> Subscription:
        return seeding.add_subscription(self, tenant_id, subscription_id, display_name)

    def seed_application(
        self,
        tenant_id: str,
        display_name: str,
        *,
        app_id: str | None = None,
        sign_in_audience: str = SINGLE_TENANT,
        redirect_uris: tuple[str, ...] = (),
        owners: tuple[str, ...] = (),
        certificate_pem: str | None = None,
        generate_certificate: bool = False,
        certificate_days: float = 365.0,
        with_service_principal: bool = True,
        roles: tuple[str, ...] = (),
        self_owned: bool = False,
    ) -> SeededApp:
        """See :func:`seeding.seed_application`."""
        return seeding.seed_application(
            self,
            tenant_id,
            display_name,
            app_id=app_id,
            sign_in_audience=sign_in_audience,
            redirect_uris=redirect_uris,
            owners=owners,
            certificate_pem=certificate_pem,
            generate_certificate=generate_certificate,
            certificate_days=certificate_days,
            with_service_principal=with_service_principal,
            roles=roles,
            self_owned=self_owned,
        )

    def seed_management_app(
        self,
        tenant_id: str,
        display_name: str = "azsidecar management",
        *,
        certificate_pem: str | None = None,
        roles: tuple[str, ...] = (MANAGEMENT_ROLE,),
        app_id: str | None = None,
        certificate_days: float = 365.0,
        self_owned: bool = True,
    ) -> SeededApp:
        """See :func:`seeding.seed_management_app`."""
        return seeding.seed_management_app(
            self,
            tenant_id,
            display_name,
            certificate_pem=certificate_pem,
            roles=roles,
            app_id=app_id,
            certificate_days=certificate_days,
            self_owned=self_owned,
        )

    def upload_certificate(
        self, object_id_or_app_id: str, certificate_pem: str, display_name: str = "uploaded"
    ) -> str:
        """See :func:`seeding.upload_certificate`."""
        return seeding.upload_certificate(self, object_id_or_app_id, certificate_pem, display_name)

    def grant_app_roles(
        self, app_id: str, roles: tuple[str, ...] | list[str], tenant_id: str | None = None
    ) -> tuple[str, ...]:
        """See :func:`seeding.grant_app_roles`."""
        return seeding.grant_app_roles(self, app_id, roles, tenant_id)

    def grant_azure_role(
        self, tenant_id: str, subscription_id: str, app_id: str, role: str = "Contributor"
    ) -> None:
        """See :func:`seeding.grant_azure_role`."""
        seeding.grant_azure_role(self, tenant_id, subscription_id, app_id, role)

    def revoke_azure_role(self, subscription_id: str, app_id: str) -> None:
        seeding.revoke_azure_role(self, subscription_id, app_id)

    def configure_throttle(self, config: ThrottleConfig) -> None:
        with self.lock:
            self.throttle.configure(config)

    def reset(self) -> None:
        """Forget every tenant, object, grant, fault and call; keep clock and replication."""
        with self.lock:
            self.clear_directory()
            self.faults.clear()
            self.calls.clear()
            self.throttle.configure(ThrottleConfig())
            self.issuer_keys.clear()
            self.changes += 1

    # ----- admin views --------------------------------------------------------

    def app_admin_dict(self, app: Application) -> dict[str, Any]:
        replicated = self.replicated_at(app.object_id)
        return {
            "id": app.object_id,
            "appId": app.app_id,
            "displayName": app.display_name,
            "tenantId": app.tenant_id,
            "signInAudience": app.sign_in_audience,
            "owners": list(app.owners),
            "createdDateTime": iso(app.created),
            "redirectUris": list(app.redirect_uris),
            "passwordCredentials": [
                {
                    "keyId": p.key_id,
                    "displayName": p.display_name,
                    "hint": p.hint,
                    "startDateTime": iso(p.start),
                    "endDateTime": iso(p.end),
                    "start": p.start,
                    "end": p.end,
                }
                for p in app.passwords
            ],
            "keyCredentials": [
                {
                    **k.graph(),
                    "thumbprint": k.thumbprint_hex,
                    "thumbprintSha256": k.sha256.hex().upper(),
                    "start": k.start,
                    "end": k.end,
                }
                for k in app.keys
            ],
            "federatedIdentityCredentials": [f.graph() for f in app.federated],
            "replicatedAt": replicated,
            "roles": list(self.roles_of(app.tenant_id, app.app_id)),
        }

    # ----- snapshot (see ``persistence``) ---------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data (secret hashes only)."""
        return persistence.snapshot(self)

    def restore(self, data: dict[str, Any], *, keep_clock: bool = False) -> None:
        persistence.restore(self, data, keep_clock=keep_clock)

    def save(self, path: Path) -> None:
        """Write the snapshot atomically (temp file in the same directory, then os.replace)."""
        persistence.save(self, path)

    def load(self, path: Path, *, keep_clock: bool = False) -> None:
        persistence.load(self, path, keep_clock=keep_clock)


def updated(app: Application, **changes: Any) -> Application:
    return replace(app, **changes)
