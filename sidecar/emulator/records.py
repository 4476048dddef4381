"""Directory objects as immutable records, with their Graph and snapshot JSON forms.

Records are frozen: a write builds a new record (``dataclasses.replace``) and
stores it as a new version, so replicas can keep seeing the old one.
Client secrets are kept only as SHA-256 hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from sidecar.emulator.clock import iso

MULTI_TENANT = "AzureADMultipleOrgs"
SINGLE_TENANT = "AzureADMyOrg"


def sp_key(tenant_id: str, app_id: str) -> str:
    """The directory's key for the service principal of ``app_id`` in ``tenant_id``."""
    return f"{tenant_id}/{app_id}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class PasswordCredential:
    key_id: str
    display_name: str | None
    start: float
    end: float
    hint: str
    secret_hash: str

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))

    def graph(self, secret_text: str | None = None) -> dict[str, Any]:
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": iso(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": secret_text,
            "startDateTime": iso(self.start),
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "displayName": self.display_name,
            "start": self.start,
            "end": self.end,
            "hint": self.hint,
            "secretHash": self.secret_hash,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> PasswordCredential:
        return cls(
            key_id=data["keyId"],
            display_name=data.get("displayName"),
            start=float(data["start"]),
            end=float(data["end"]),
            hint=data.get("hint", ""),
            secret_hash=data["secretHash"],
        )


@dataclass(frozen=True)
class KeyCredential:
    """An ``AsymmetricX509Cert`` registered on an application."""

    key_id: str
    display_name: str | None
    start: float
    end: float
    cert_der: bytes
    usage: str = "Verify"
    type: str = "AsymmetricX509Cert"

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.cert_der)

    @property
    def sha1(self) -> bytes:
        return hashlib.sha1(self.cert_der, usedforsecurity=False).digest()

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.cert_der).digest()

    @property
    def thumbprint_hex(self) -> str:
        return self.sha1.hex().upper()

    def graph(self, *, with_key: bool = False) -> dict[str, Any]:
        """Graph's form. ``key`` (the certificate, public) is null unless ``with_key``:
        Graph returns it only on ``$select=keyCredentials`` for a single object
        (learn.microsoft.com/graph/api/resources/keycredential)."""
        return {
            "customKeyIdentifier": base64.b64encode(self.sha1).decode(),
            "displayName": self.display_name,
            "endDateTime": iso(self.end),
            "key": base64.b64encode(self.cert_der).decode() if with_key else None,
            "keyId": self.key_id,
            "startDateTime": iso(self.start),
            "type": self.type,
            "usage": self.usage,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "displayName": self.display_name,
            "start": self.start,
            "end": self.end,
            "certDer": base64.b64encode(self.cert_der).decode(),
            "usage": self.usage,
            "type": self.type,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> KeyCredential:
        return cls(
            key_id=data["keyId"],
            display_name=data.get("displayName"),
            start=float(data["start"]),
            end=float(data["end"]),
            cert_der=base64.b64decode(data["certDer"]),
            usage=data.get("usage", "Verify"),
            type=data.get("type", "AsymmetricX509Cert"),
        )


@dataclass(frozen=True)
class FederatedCredential:
    """A ``federatedIdentityCredential`` of an application (workload identity federation).

    Graph's shape: learn.microsoft.com/graph/api/resources/federatedidentitycredential
    (``id``, ``name``, ``issuer``, ``subject``, ``audiences``, ``description``).
    """

    credential_id: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    description: str | None = None

    def graph(self) -> dict[str, Any]:
        return {
            "id": self.credential_id,
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "description": self.description,
            "audiences": list(self.audiences),
        }

    def snapshot(self) -> dict[str, Any]:
        return self.graph()

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> FederatedCredential:
        return cls(
            credential_id=data["id"],
            name=data["name"],
            issuer=data["issuer"],
            subject=data["subject"],
            audiences=tuple(data.get("audiences", ())),
            description=data.get("description"),
        )


def certificate_der(value: str | bytes) -> bytes:
    """DER bytes from a PEM certificate or base64 DER (Graph's ``key``). Raises ValueError."""
    raw = value.encode() if isinstance(value, str) else value
    if b"-----BEGIN CERTIFICATE-----" in raw:
        cert = x509.load_pem_x509_certificate(raw)
    else:
        try:
            der = base64.b64decode(raw, validate=True)
        except (ValueError, TypeError) as exc:
            raise ValueError("key is neither a PEM certificate nor base64 DER") from exc
        cert = x509.load_der_x509_certificate(der)
    return cert.public_bytes(serialization.Encoding.DER)


def certificate_validity(der: bytes) -> tuple[float, float]:
    cert = x509.load_der_x509_certificate(der)
    return cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()


def certificate_thumbprints(der: bytes) -> tuple[str, str]:
    cert = x509.load_der_x509_certificate(der)
    return cert.fingerprint(hashes.SHA1()).hex(), cert.fingerprint(hashes.SHA256()).hex()  # noqa: S303


@dataclass(frozen=True)
class Application:
    object_id: str
    app_id: str
    display_name: str
    tenant_id: str
    created: float
    sign_in_audience: str = SINGLE_TENANT
    owners: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    passwords: tuple[PasswordCredential, ...] = ()
    keys: tuple[KeyCredential, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    #: Not part of the application entity in Graph: a navigation property of its own.
    federated: tuple[FederatedCredential, ...] = ()

    def graph(self, *, with_keys: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "createdDateTime": iso(self.created),
            "publisherDomain": f"{self.tenant_id[:8]}.onmicrosoft.com",
            "signInAudience": self.sign_in_audience,
            "passwordCredentials": [p.graph() for p in self.passwords],
            "keyCredentials": [k.graph(with_key=with_keys) for k in self.keys],
            "web": {
                "redirectUris": list(self.redirect_uris),
                "homePageUrl": None,
                "logoutUrl": None,
            },
            "requiredResourceAccess": [],
        }
        body.update(self.extra)
        return body

    def snapshot(self) -> dict[str, Any]:
        return {
            "objectId": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "tenantId": self.tenant_id,
            "created": self.created,
            "signInAudience": self.sign_in_audience,
            "owners": list(self.owners),
            "redirectUris": list(self.redirect_uris),
            "passwords": [p.snapshot() for p in self.passwords],
            "keys": [k.snapshot() for k in self.keys],
            "extra": self.extra,
            "federated": [f.snapshot() for f in self.federated],
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Application:
        return cls(
            object_id=data["objectId"],
            app_id=data["appId"],
            display_name=data["displayName"],
            tenant_id=data["tenantId"],
            created=float(data["created"]),
            sign_in_audience=data.get("signInAudience", SINGLE_TENANT),
            owners=tuple(data.get("owners", ())),
            redirect_uris=tuple(data.get("redirectUris", ())),
            passwords=tuple(PasswordCredential.from_snapshot(p) for p in data.get("passwords", ())),
            keys=tuple(KeyCredential.from_snapshot(k) for k in data.get("keys", ())),
            extra=dict(data.get("extra", {})),
            federated=tuple(
                FederatedCredential.from_snapshot(f) for f in data.get("federated", ())
            ),
        )


@dataclass(frozen=True)
class ServicePrincipal:
    object_id: str
    app_id: str
    tenant_id: str
    display_name: str
    app_owner_tenant_id: str
    created: float

    def graph(self) -> dict[str, Any]:
        return {
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "appDisplayName": self.display_name,
            "appOwnerOrganizationId": self.app_owner_tenant_id,
            "accountEnabled": True,
            "servicePrincipalType": "Application",
            "servicePrincipalNames": [self.app_id],
            "createdDateTime": iso(self.created),
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "objectId": self.object_id,
            "appId": self.app_id,
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "appOwnerTenantId": self.app_owner_tenant_id,
            "created": self.created,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> ServicePrincipal:
        return cls(
            object_id=data["objectId"],
            app_id=data["appId"],
            tenant_id=data["tenantId"],
            display_name=data["displayName"],
            app_owner_tenant_id=data["appOwnerTenantId"],
            created=float(data["created"]),
        )


@dataclass
class Subscription:
    subscription_id: str
    tenant_id: str
    display_name: str

    def arm(self) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": self.subscription_id,
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }


@dataclass
class Tenant:
    tenant_id: str
    display_name: str
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def admin(self) -> dict[str, Any]:
        return {
            "id": self.tenant_id,
            "displayName": self.display_name,
            "subscriptions": [
                {"id": s.subscription_id, "displayName": s.display_name}
                for s in self.subscriptions.values()
            ],
        }
