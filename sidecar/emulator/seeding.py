"""Seeding the directory: tenants, subscriptions, applications, role grants.

What a test or the admin API sets up before the code under test runs, and what
an administrator would do in the portal. Every function takes the state's lock
itself. Seeded objects are visible on every replica at once (no lag), except
an uploaded certificate, which is written like any directory write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

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
    sp_key,
)
from sidecar.emulator.tls import generate_client_certificate

if TYPE_CHECKING:
    from sidecar.emulator.state import EmulatorState

MANAGEMENT_ROLE = "Application.ReadWrite.OwnedBy"


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


def seed_tenant(
    state: EmulatorState,
    tenant_id: str | None = None,
    display_name: str = "",
    subscriptions: list[dict[str, Any]] | None = None,
) -> Tenant:
    with state.lock:
        tid = tenant_id or str(uuid.uuid4())
        tenant = state.tenants.get(tid) or Tenant(tid, display_name or f"Tenant {tid[:8]}")
        if display_name:
            tenant.display_name = display_name
        state.tenants[tid] = tenant
        for sub in subscriptions or []:
            add_subscription(state, tid, sub.get("id"), str(sub.get("displayName", "")))
        state.changes += 1
        return tenant


def add_subscription(
    state: EmulatorState, tenant_id: str, subscription_id: str | None = None, display_name: str = ""
) -> Subscription:
    with state.lock:
        tenant = _tenant(state, tenant_id)
        sid = subscription_id or str(uuid.uuid4())
        other = state.tenant_of_subscription(sid)
        if other is not None and other.tenant_id != tenant_id:
            raise AdminError(f"subscription {sid} already belongs to tenant {other.tenant_id}")
        sub = Subscription(sid, tenant_id, display_name or f"Subscription {sid[:8]}")
        tenant.subscriptions[sid] = sub
        state.changes += 1
        return sub


def _tenant(state: EmulatorState, tenant_id: str) -> Tenant:
    tenant = state.tenants.get(tenant_id)
    if tenant is None:
        raise AdminError(f"tenant {tenant_id} is not seeded", 404)
    return tenant


def seed_application(
    state: EmulatorState,
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
    with state.lock:
        _tenant(state, tenant_id)
        if sign_in_audience not in (SINGLE_TENANT, MULTI_TENANT):
            raise AdminError("signInAudience must be AzureADMyOrg or AzureADMultipleOrgs")
        now = state.now()
        aid = app_id or str(uuid.uuid4())
        if self_owned:
            owners = (*owners, aid)
        if aid in state.app_ids and state.apps.latest(state.app_ids[aid]) is not None:
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
        state.write_app(app, None)
        sp_id = ""
        if with_service_principal:
            sp = ServicePrincipal(str(uuid.uuid4()), aid, tenant_id, display_name, tenant_id, now)
            state.write_sp(sp, None)
            sp_id = sp.object_id
        if roles:
            grant_app_roles(state, aid, roles, tenant_id)
        return SeededApp(
            aid, app.object_id, sp_id, tenant_id, key_id,
            certificate_pem, private_pem, sha1, sha256,
        )  # fmt: skip


def seed_management_app(
    state: EmulatorState,
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
    return seed_application(
        state,
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
    state: EmulatorState,
    object_id_or_app_id: str,
    certificate_pem: str,
    display_name: str = "uploaded",
) -> str:
    """What an administrator does in the portal: add a certificate to an application.

    Written like any directory write (it replicates); returns the new keyId.
    """
    with state.lock:
        app = state.application(object_id_or_app_id)
        if app is None:
            raise AdminError(f"no application {object_id_or_app_id}", 404)
        try:
            der = certificate_der(certificate_pem)
        except ValueError as exc:
            raise AdminError(f"certificatePem is not a certificate: {exc}") from exc
        start, end = certificate_validity(der)
        key_id = str(uuid.uuid4())
        key = KeyCredential(key_id, display_name, start, end, der)
        state.write_app(replace(app, keys=(*app.keys, key)), state.rng.randrange(state.replicas))
        return key_id


def grant_app_roles(
    state: EmulatorState,
    app_id: str,
    roles: tuple[str, ...] | list[str],
    tenant_id: str | None = None,
) -> tuple[str, ...]:
    """Grant application permissions (app roles, e.g. Graph's) to an app's SP in a tenant."""
    with state.lock:
        app = state.application(app_id)
        if app is None:
            raise AdminError(f"no application with appId {app_id}", 404)
        tid = tenant_id or app.tenant_id
        key = sp_key(tid, app_id)
        state.app_roles.setdefault(key, set()).update(roles)
        state.changes += 1
        return state.roles_of(tid, app_id)


def grant_azure_role(
    state: EmulatorState,
    tenant_id: str,
    subscription_id: str,
    app_id: str,
    role: str = "Contributor",
) -> None:
    """Assign an Azure RBAC role on a subscription to the app's SP in that tenant."""
    with state.lock:
        sub = _tenant(state, tenant_id).subscriptions.get(subscription_id)
        if sub is None:
            raise AdminError(f"subscription {subscription_id} is not in tenant {tenant_id}", 404)
        state.azure_roles.setdefault(subscription_id, {}).setdefault(app_id, set()).add(role)
        state.changes += 1


def revoke_azure_role(state: EmulatorState, subscription_id: str, app_id: str) -> None:
    with state.lock:
        state.azure_roles.get(subscription_id, {}).pop(app_id, None)
        state.changes += 1
