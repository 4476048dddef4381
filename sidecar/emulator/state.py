"""The emulator's whole state: tenants, replicated directory objects, grants and switches.

``EmulatorState`` is what tests hold (``server.state``). Its public methods take
the lock themselves; the HTTP layers take ``state.lock`` once per request and
use the ``*_locked`` / view helpers inside it.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from sidecar.emulator.app_policy import AppManagementPolicy
from sidecar.emulator.calllog import CallLog
from sidecar.emulator.clock import Clock, iso
from sidecar.emulator.faults import FaultInjector
from sidecar.emulator.records import (
    MULTI_TENANT,
    SINGLE_TENANT,
    Application,
    KeyCredential,
    ServicePrincipal,
    Subscription,
    Tenant,
    certificate_der,
    certificate_thumbprints,
    certificate_validity,
)
from sidecar.emulator.replicas import LagProfile, ReplicatedStore, Version, resolve_stuck
from sidecar.emulator.routing import ReplicaRouting
from sidecar.emulator.throttle import Throttle, ThrottleConfig
from sidecar.emulator.tls import generate_client_certificate
from sidecar.emulator.tokens import SigningKey

MANAGEMENT_ROLE = "Application.ReadWrite.OwnedBy"
AssertionClock = Literal["either", "emulated", "real"]
SNAPSHOT_VERSION = 1


class AdminError(ValueError):
    """A seed or switch request the emulator cannot honour (HTTP 400/404 on the admin API)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SeededApp:
    """What seeding an application returns; ``private_key_pem`` only when the emulator made it."""

    app_id: str
    object_id: str
    sp_object_id: str
    tenant_id: str
    key_id: str | None
    certificate_pem: str | None
    private_key_pem: str | None
    thumbprint_sha1: str | None
    thumbprint_sha256: str | None

    @property
    def msal_credential(self) -> dict[str, str]:
        """The ``client_credential`` dict for MSAL with the SHA-1 thumbprint (``x5t``)."""
        if self.private_key_pem is None or self.thumbprint_sha1 is None:
            raise AdminError("the private key is unknown to the emulator")
        return {"private_key": self.private_key_pem, "thumbprint": self.thumbprint_sha1}

    def to_dict(self) -> dict[str, Any]:
        return {
            "appId": self.app_id,
            "objectId": self.object_id,
            "servicePrincipalId": self.sp_object_id,
            "tenantId": self.tenant_id,
            "keyId": self.key_id,
            "certificatePem": self.certificate_pem,
            "privateKeyPem": self.private_key_pem,
            "thumbprintSha1": self.thumbprint_sha1,
            "thumbprintSha256": self.thumbprint_sha256,
        }


def _sp_key(tenant_id: str, app_id: str) -> str:
    return f"{tenant_id}/{app_id}"


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
        self.assertion_clock: AssertionClock = assertion_clock
        self.changes = 0
        self._init_directory()

    def _init_directory(self) -> None:
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
        key = _sp_key(sp.tenant_id, sp.app_id)
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
        return self.sps.read(_sp_key(tenant_id, app_id), replica, now)

    def application(self, object_id_or_app_id: str) -> Application | None:
        """The authoritative application (latest write), by object id or appId."""
        with self.lock:
            object_id = self.app_ids.get(object_id_or_app_id, object_id_or_app_id)
            return self.apps.latest(object_id)

    def service_principal(self, tenant_id: str, app_id: str) -> ServicePrincipal | None:
        with self.lock:
            return self.sps.latest(_sp_key(tenant_id, app_id))

    def roles_of(self, tenant_id: str, app_id: str) -> tuple[str, ...]:
        return tuple(sorted(self.app_roles.get(_sp_key(tenant_id, app_id), set())))

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

    # ----- seeding (public, takes the lock) -----------------------------------

    def seed_tenant(
        self,
        tenant_id: str | None = None,
        display_name: str = "",
        subscriptions: list[dict[str, Any]] | None = None,
    ) -> Tenant:
        with self.lock:
            tid = tenant_id or str(uuid.uuid4())
            tenant = self.tenants.get(tid) or Tenant(tid, display_name or f"Tenant {tid[:8]}")
            if display_name:
                tenant.display_name = display_name
            self.tenants[tid] = tenant
            for sub in subscriptions or []:
                self.add_subscription(tid, sub.get("id"), str(sub.get("displayName", "")))
            self.changes += 1
            return tenant

    def add_subscription(
        self, tenant_id: str, subscription_id: str | None = None, display_name: str = ""
    ) -> Subscription:
        with self.lock:
            tenant = self._tenant(tenant_id)
            sid = subscription_id or str(uuid.uuid4())
            other = self.tenant_of_subscription(sid)
            if other is not None and other.tenant_id != tenant_id:
                raise AdminError(f"subscription {sid} already belongs to tenant {other.tenant_id}")
            sub = Subscription(sid, tenant_id, display_name or f"Subscription {sid[:8]}")
            tenant.subscriptions[sid] = sub
            self.changes += 1
            return sub

    def _tenant(self, tenant_id: str) -> Tenant:
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise AdminError(f"tenant {tenant_id} is not seeded", 404)
        return tenant

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
        """Create an application visible on every replica at once (no lag).

        ``self_owned`` makes the application's service principal one of its owners,
        which lets an app holding Application.ReadWrite.OwnedBy read its own keys.
        """
        with self.lock:
            self._tenant(tenant_id)
            if sign_in_audience not in (SINGLE_TENANT, MULTI_TENANT):
                raise AdminError("signInAudience must be AzureADMyOrg or AzureADMultipleOrgs")
            now = self.now()
            aid = app_id or str(uuid.uuid4())
            if self_owned:
                owners = (*owners, aid)
            if aid in self.app_ids and self.apps.latest(self.app_ids[aid]) is not None:
                raise AdminError(f"an application with appId {aid} already exists")
            private_pem: str | None = None
            keys: tuple[KeyCredential, ...] = ()
            if generate_certificate and certificate_pem is None:
                generated = generate_client_certificate(
                    display_name, not_before=now - 300, lifetime_days=certificate_days
                )
                certificate_pem, private_pem = generated.certificate_pem, generated.private_key_pem
            sha1 = sha256 = None
            key_id = None
            if certificate_pem is not None:
                try:
                    der = certificate_der(certificate_pem)
                except ValueError as exc:
                    raise AdminError(f"certificatePem is not a certificate: {exc}") from exc
                start, end = certificate_validity(der)
                key_id = str(uuid.uuid4())
                keys = (KeyCredential(key_id, f"CN={display_name}", start, end, der),)
                sha1, sha256 = certificate_thumbprints(der)
            app = Application(
                object_id=str(uuid.uuid4()),
                app_id=aid,
                display_name=display_name,
                tenant_id=tenant_id,
                created=now,
                sign_in_audience=sign_in_audience,
                owners=owners,
                redirect_uris=redirect_uris,
                keys=keys,
            )
            self.write_app(app, None)
            sp_id = ""
            if with_service_principal:
                sp = ServicePrincipal(
                    str(uuid.uuid4()), aid, tenant_id, display_name, tenant_id, now
                )
                self.write_sp(sp, None)
                sp_id = sp.object_id
            if roles:
                self.grant_app_roles(aid, roles, tenant_id)
            return SeededApp(
                aid, app.object_id, sp_id, tenant_id, key_id,
                certificate_pem, private_pem, sha1, sha256,
            )  # fmt: skip

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
        """The management app with its bootstrap certificate (generated when none is given).

        By default it owns itself, as the README's set-up has the operator arrange, so
        it can list its own key credentials when renewing its certificate.
        """
        return self.seed_application(
            tenant_id,
            display_name,
            app_id=app_id,
            certificate_pem=certificate_pem,
            generate_certificate=certificate_pem is None,
            certificate_days=certificate_days,
            roles=roles,
            self_owned=self_owned,
        )

    def upload_certificate(
        self, object_id_or_app_id: str, certificate_pem: str, display_name: str = "uploaded"
    ) -> str:
        """What an administrator does in the portal: add a certificate to an application.

        Written like any directory write (it replicates); returns the new keyId.
        """
        with self.lock:
            app = self.application(object_id_or_app_id)
            if app is None:
                raise AdminError(f"no application {object_id_or_app_id}", 404)
            try:
                der = certificate_der(certificate_pem)
            except ValueError as exc:
                raise AdminError(f"certificatePem is not a certificate: {exc}") from exc
            start, end = certificate_validity(der)
            key_id = str(uuid.uuid4())
            key = KeyCredential(key_id, display_name, start, end, der)
            self.write_app(updated(app, keys=(*app.keys, key)), self.rng.randrange(self.replicas))
            return key_id

    def grant_app_roles(
        self, app_id: str, roles: tuple[str, ...] | list[str], tenant_id: str | None = None
    ) -> tuple[str, ...]:
        """Grant application permissions (app roles, e.g. Graph's) to an app's SP in a tenant."""
        with self.lock:
            app = self.application(app_id)
            if app is None:
                raise AdminError(f"no application with appId {app_id}", 404)
            tid = tenant_id or app.tenant_id
            key = _sp_key(tid, app_id)
            self.app_roles.setdefault(key, set()).update(roles)
            self.changes += 1
            return self.roles_of(tid, app_id)

    def grant_azure_role(
        self, tenant_id: str, subscription_id: str, app_id: str, role: str = "Contributor"
    ) -> None:
        """Assign an Azure RBAC role on a subscription to the app's SP in that tenant."""
        with self.lock:
            sub = self._tenant(tenant_id).subscriptions.get(subscription_id)
            if sub is None:
                raise AdminError(
                    f"subscription {subscription_id} is not in tenant {tenant_id}", 404
                )
            self.azure_roles.setdefault(subscription_id, {}).setdefault(app_id, set()).add(role)
            self.changes += 1

    def revoke_azure_role(self, subscription_id: str, app_id: str) -> None:
        with self.lock:
            self.azure_roles.get(subscription_id, {}).pop(app_id, None)
            self.changes += 1

    def configure_throttle(self, config: ThrottleConfig) -> None:
        with self.lock:
            self.throttle.configure(config)

    def reset(self) -> None:
        """Forget every tenant, object, grant, fault and call; keep clock and replication."""
        with self.lock:
            self._init_directory()
            self.faults.clear()
            self.calls.clear()
            self.throttle.configure(ThrottleConfig())
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
                    "start": k.start,
                    "end": k.end,
                }
                for k in app.keys
            ],
            "replicatedAt": replicated,
            "roles": list(self.roles_of(app.tenant_id, app.app_id)),
        }

    # ----- snapshot -----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data (secret hashes only)."""
        with self.lock:
            apps = {
                key: [
                    {
                        "visible": v.visible_at,
                        "value": None if v.value is None else v.value.snapshot(),
                    }
                    for v in self.apps.history(key)
                ]
                for key in self.apps.object_keys()
            }
            sps = {
                key: [
                    {
                        "visible": v.visible_at,
                        "value": None if v.value is None else v.value.snapshot(),
                    }
                    for v in self.sps.history(key)
                ]
                for key in self.sps.object_keys()
            }
            return {
                "version": SNAPSHOT_VERSION,
                "clock": self.clock.to_dict(),
                "replicas": self.replicas,
                "lag": self.lag.to_dict(),
                "signingKey": self.signing.pem(),
                "tenants": [
                    {
                        "id": t.tenant_id,
                        "displayName": t.display_name,
                        "subscriptions": [
                            {"id": s.subscription_id, "displayName": s.display_name}
                            for s in t.subscriptions.values()
                        ],
                    }
                    for t in self.tenants.values()
                ],
                "applications": apps,
                "servicePrincipals": sps,
                "appRoles": {k: sorted(v) for k, v in self.app_roles.items()},
                "azureRoles": {
                    sub: {app: sorted(roles) for app, roles in grants.items()}
                    for sub, grants in self.azure_roles.items()
                },
                "throttle": self.throttle.config.to_dict(),
            }

    def restore(self, data: dict[str, Any], *, keep_clock: bool = False) -> None:
        with self.lock:
            if data.get("version") != SNAPSHOT_VERSION:
                raise AdminError("unsupported snapshot version")
            self._init_directory()
            if not keep_clock:
                self.clock = Clock.from_dict(data["clock"])
            self.replicas = int(data.get("replicas", self.replicas))
            self.lag = resolve_stuck(LagProfile.from_dict(data.get("lag", {})), self.replicas)
            if data.get("signingKey"):
                self.signing = SigningKey.from_pem(data["signingKey"])
            for t in data.get("tenants", []):
                self.seed_tenant(t["id"], t.get("displayName", ""), t.get("subscriptions", []))
            for key, history in data.get("applications", {}).items():
                versions: list[Version[Application]] = [
                    Version(
                        [float(x) for x in v["visible"]],
                        None if v["value"] is None else Application.from_snapshot(v["value"]),
                    )
                    for v in history
                ]
                self.apps.set_history(key, versions)
                for version in versions:
                    if version.value is not None:
                        self.app_ids[version.value.app_id] = key
                        for owner in version.value.owners:
                            self.owned.setdefault(owner, {})[key] = None
            for key, history in data.get("servicePrincipals", {}).items():
                sp_versions: list[Version[ServicePrincipal]] = [
                    Version(
                        [float(x) for x in v["visible"]],
                        None if v["value"] is None else ServicePrincipal.from_snapshot(v["value"]),
                    )
                    for v in history
                ]
                self.sps.set_history(key, sp_versions)
                tenant_id, _, app_id = key.partition("/")
                self.sp_by_tenant.setdefault(tenant_id, {})[app_id] = None
            self.app_roles = {k: set(v) for k, v in data.get("appRoles", {}).items()}
            self.azure_roles = {
                sub: {app: set(roles) for app, roles in grants.items()}
                for sub, grants in data.get("azureRoles", {}).items()
            }
            self.throttle.configure(ThrottleConfig.from_dict(data.get("throttle", {})))
            self.changes = 0

    def save(self, path: Path) -> None:
        """Write the snapshot atomically (temp file in the same directory, then os.replace)."""
        data = self.snapshot()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        text = json.dumps(data, separators=(",", ":"))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def load(self, path: Path, *, keep_clock: bool = False) -> None:
        self.restore(json.loads(path.read_text(encoding="utf-8")), keep_clock=keep_clock)


def updated(app: Application, **changes: Any) -> Application:
    return replace(app, **changes)
