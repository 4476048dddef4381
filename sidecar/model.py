"""Plain data shared by the planners, the Vault and Graph adapters and the resolver.

The records kept in KV are here, with their codecs (``to_data`` / ``from_data``,
the on-disk format); *where* they are kept is :mod:`sidecar.store`'s business.

Also two encodings that several parts must agree on byte for byte: the
display name that ties an Azure credential to the intent that created it,
and the compact index of live secrets kept in the KV key's
``custom_metadata``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sidecar import fieldcheck
from sidecar.errors import SidecarError

# Re-exported (the explicit "X as X" form): every other part names them from here.
from sidecar.kinds import CredentialKind as CredentialKind  # noqa: PLC0414
from sidecar.phases import DEFAULT_CREDS_MOUNT as DEFAULT_CREDS_MOUNT  # noqa: PLC0414
from sidecar.phases import Phase as Phase  # noqa: PLC0414
from sidecar.sensitive import Sensitive


class ConsentState(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"


class IntegrationStatus(StrEnum):
    CREATING = "creating"  # Graph work is unfinished
    READY = "ready"


class IntentKind(StrEnum):
    SECRET = "secret"  # noqa: S105 - a kind of intent, not a password
    CERTIFICATE = "certificate"
    FEDERATED = "federated"


def to_epoch(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: object) -> datetime:
    return datetime.fromtimestamp(float(str(value)), tz=UTC)


@dataclass(frozen=True)
class IntegrationRecord:
    """``integrations/<name>``: an Azure AD application made for one user's tenant.

    Everything but secrets.
    """

    name: str
    tenant_id: str
    subscription_id: str | None
    app_object_id: str
    client_id: str
    display_name: str
    consent: ConsentState
    created: datetime
    status: IntegrationStatus = IntegrationStatus.READY
    #: The kind runs should get. Switching it keeps handing out the old kind until
    #: the new one is ready (:func:`sidecar.ready.choose_for_kind`).
    kind: CredentialKind = CredentialKind.SECRET

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tenant_id": self.tenant_id,
            "subscription_id": self.subscription_id,
            "app_object_id": self.app_object_id,
            "client_id": self.client_id,
            "display_name": self.display_name,
            "consent": str(self.consent),
            "created": to_epoch(self.created),
            "status": str(self.status),
            "kind": str(self.kind),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> IntegrationRecord:
        """Every field is checked: records reach runners' shells (see :mod:`sidecar.fieldcheck`)."""
        name = fieldcheck.name(data.get("name"), "integration record", "name")
        where = f"integrations/{name}"
        try:
            created = from_epoch(data["created"])
        except (KeyError, ValueError, OverflowError, OSError):
            raise fieldcheck.InvalidRecord(f"{where}: field created is not a time") from None
        consent = fieldcheck.one_of(data.get("consent"), tuple(ConsentState), where, "consent")
        status = fieldcheck.one_of(
            data.get("status", "ready"), tuple(IntegrationStatus), where, "status"
        )
        kind = fieldcheck.one_of(data.get("kind", "secret"), tuple(CredentialKind), where, "kind")
        return cls(
            name=name,
            tenant_id=fieldcheck.guid(data.get("tenant_id"), where, "tenant_id"),
            subscription_id=fieldcheck.optional_guid(
                data.get("subscription_id"), where, "subscription_id"
            ),
            app_object_id=fieldcheck.guid_or_empty(
                data.get("app_object_id"), where, "app_object_id"
            ),
            client_id=fieldcheck.guid_or_empty(data.get("client_id"), where, "client_id"),
            display_name=fieldcheck.printable(data.get("display_name"), where, "display_name"),
            consent=ConsentState(consent),
            created=created,
            status=IntegrationStatus(status),
            kind=CredentialKind(kind),
        )


@dataclass(frozen=True)
class StackRecord:
    """``stacks/<stack>``: which integration serves each phase of a stack's runs."""

    name: str
    read: str | None = None
    write: str | None = None
    subscription_id: str | None = None

    def integration_for(self, phase: Phase) -> str | None:
        """The one place that says which integration a phase uses."""
        return self.read if phase is Phase.PLAN else self.write

    def with_integration(self, phase: Phase, integration: str | None) -> StackRecord:
        """A copy with the phase's integration replaced (``None`` detaches it)."""
        if phase is Phase.PLAN:
            return replace(self, read=integration)
        return replace(self, write=integration)

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "read": self.read,
            "write": self.write,
            "subscription_id": self.subscription_id,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> StackRecord:
        """Checked on every read: an operator may write the record through the KV API."""
        name = fieldcheck.name(data.get("name"), "stack record", "name")
        where = f"stacks/{name}"
        return cls(
            name=name,
            read=fieldcheck.optional_name(data.get("read"), where, "read"),
            write=fieldcheck.optional_name(data.get("write"), where, "write"),
            subscription_id=fieldcheck.optional_guid(
                data.get("subscription_id"), where, "subscription_id"
            ),
        )


_VERSION = "a credentials version"


def _lifetime(data: dict[str, Any]) -> tuple[datetime, datetime]:
    """A credentials version's ``created`` and ``expires``, whatever its kind."""
    try:
        return from_epoch(data["created"]), from_epoch(data["expires"])
    except (KeyError, ValueError, OverflowError, OSError):
        raise fieldcheck.InvalidRecord(f"{_VERSION}: created/expires are not times") from None


@dataclass(frozen=True)
class SecretVersion:
    """The data of one ``credentials/<name>`` version."""

    client_id: str
    secret: Sensitive
    key_id: str
    tenant_id: str
    intent_id: str
    created: datetime
    expires: datetime

    kind = CredentialKind.SECRET

    def to_data(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.secret.reveal(),
            "key_id": self.key_id,
            "tenant_id": self.tenant_id,
            "intent_id": self.intent_id,
            "created": to_epoch(self.created),
            "expires": to_epoch(self.expires),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> SecretVersion:
        where = _VERSION
        created, expires = _lifetime(data)
        intent_id = data.get("intent_id", "")
        return cls(
            client_id=fieldcheck.guid(data.get("client_id"), where, "client_id"),
            secret=Sensitive(
                fieldcheck.secret_text(data.get("client_secret"), where, "client_secret")
            ),
            key_id=fieldcheck.token(data.get("key_id"), where, "key_id"),
            tenant_id=fieldcheck.guid(data.get("tenant_id"), where, "tenant_id"),
            intent_id=fieldcheck.token(intent_id, where, "intent_id") if intent_id else "",
            created=created,
            expires=expires,
        )


@dataclass(frozen=True)
class CertificateVersion:
    """The data of one ``credentials/<name>`` version of kind certificate.

    ``pfx`` is the PKCS#12 bundle (certificate and private key) in base64, as
    the azurerm provider takes it in ``ARM_CLIENT_CERTIFICATE``, encrypted with
    ``pfx_password``. The key was made in the daemon's memory and exists only
    here. ``thumbprint`` is the certificate's SHA-1 in upper-case hex (Graph's
    ``customKeyIdentifier``); ``key_id`` the keyCredential's id in Azure.
    """

    client_id: str
    tenant_id: str
    key_id: str
    thumbprint: str
    intent_id: str
    created: datetime
    expires: datetime
    pfx: Sensitive = field(repr=False)
    pfx_password: Sensitive = field(repr=False)

    kind = CredentialKind.CERTIFICATE

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "client_id": self.client_id,
            "tenant_id": self.tenant_id,
            "key_id": self.key_id,
            "thumbprint": self.thumbprint,
            "intent_id": self.intent_id,
            "created": to_epoch(self.created),
            "expires": to_epoch(self.expires),
            "client_certificate": self.pfx.reveal(),
            "client_certificate_password": self.pfx_password.reveal(),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> CertificateVersion:
        where = _VERSION
        created, expires = _lifetime(data)
        thumbprint = data.get("thumbprint")
        if not isinstance(thumbprint, str) or not _THUMBPRINT.fullmatch(thumbprint):
            raise fieldcheck.InvalidRecord(f"{where}: field thumbprint is not a SHA-1 in hex")
        return cls(
            client_id=fieldcheck.guid(data.get("client_id"), where, "client_id"),
            tenant_id=fieldcheck.guid(data.get("tenant_id"), where, "tenant_id"),
            key_id=fieldcheck.token(data.get("key_id"), where, "key_id"),
            thumbprint=thumbprint,
            intent_id=fieldcheck.token(data.get("intent_id"), where, "intent_id"),
            created=created,
            expires=expires,
            pfx=Sensitive(
                fieldcheck.base64_text(data.get("client_certificate"), where, "client_certificate")
            ),
            pfx_password=Sensitive(
                fieldcheck.secret_text(
                    data.get("client_certificate_password"), where, "client_certificate_password"
                )
            ),
        )


_THUMBPRINT = re.compile(r"[0-9A-F]{40}")

#: A federated identity credential has no expiry in Azure; its stored version
#: and index entry carry this one, so the shared life cycle never renews it and
#: the ready rule never ages it out. 9999-12-31, the largest time Python keeps.
FEDERATED_NEVER_EXPIRES = datetime(9999, 12, 31, tzinfo=UTC)

#: Entra ID caps a federated credential's issuer, subject and audience at 600
#: characters (learn.microsoft.com/graph/api/resources/federatedidentitycredential).
FEDERATED_FIELD_LIMIT = 600


@dataclass(frozen=True)
class FederatedVersion:
    """The data of one ``credentials/<name>`` version of kind federated.

    Nothing in it is secret: it records the federated identity credential the
    daemon created on the integration's application (``key_id`` is its Graph
    ``id``, ``name`` its ``name``) and the ``issuer``, ``subject`` and
    ``audience`` a run's token must carry to be exchanged by Entra ID. Readers
    sign that token at read time through the issuer's Transit key; ``created``
    is when Graph accepted the credential, from which readiness counts.
    """

    client_id: str
    tenant_id: str
    key_id: str
    name: str
    issuer: str
    subject: str
    audience: str
    intent_id: str
    created: datetime
    expires: datetime = FEDERATED_NEVER_EXPIRES

    kind = CredentialKind.FEDERATED

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "client_id": self.client_id,
            "tenant_id": self.tenant_id,
            "key_id": self.key_id,
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audience": self.audience,
            "intent_id": self.intent_id,
            "created": to_epoch(self.created),
            "expires": to_epoch(self.expires),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FederatedVersion:
        where = _VERSION
        created, expires = _lifetime(data)
        issuer = fieldcheck.printable(data.get("issuer"), where, "issuer", FEDERATED_FIELD_LIMIT)
        if not issuer.startswith("https://"):
            raise fieldcheck.InvalidRecord(f"{where}: field issuer is not an https:// URL")
        name = data.get("name")
        if not isinstance(name, str) or intent_of_federated(name) is None:
            raise fieldcheck.InvalidRecord(
                f"{where}: field name is not a federated credential name of ours"
            )
        return cls(
            client_id=fieldcheck.guid(data.get("client_id"), where, "client_id"),
            tenant_id=fieldcheck.guid(data.get("tenant_id"), where, "tenant_id"),
            key_id=fieldcheck.token(data.get("key_id"), where, "key_id"),
            name=name,
            issuer=issuer,
            subject=fieldcheck.printable(
                data.get("subject"), where, "subject", FEDERATED_FIELD_LIMIT
            ),
            audience=fieldcheck.printable(
                data.get("audience"), where, "audience", FEDERATED_FIELD_LIMIT
            ),
            intent_id=fieldcheck.token(data.get("intent_id"), where, "intent_id"),
            created=created,
            expires=expires,
        )


#: One stored version of an integration's credential, whatever its kind.
CredentialVersion = SecretVersion | CertificateVersion | FederatedVersion


def credential_from_data(data: dict[str, Any]) -> CredentialVersion:
    """Decode a ``credentials/<name>`` version by its ``kind`` (none: a secret)."""
    kind = fieldcheck.one_of(
        data.get("kind", "secret"), tuple(CredentialKind), "a credentials version", "kind"
    )
    if kind == CredentialKind.CERTIFICATE:
        return CertificateVersion.from_data(data)
    if kind == CredentialKind.FEDERATED:
        return FederatedVersion.from_data(data)
    return SecretVersion.from_data(data)


#: How the daemon signs in as the management application: with a certificate it
#: rotates itself, or with a federated assertion its issuer signs (no key at all).
MANAGEMENT_AUTH_MODES = ("certificate", "federated")


@dataclass(frozen=True)
class ManagementIdentity:
    """``management/identity``: the application the daemon signs in as, and how.

    ``auth`` is what ``azsidecar management init`` set up (one of
    :data:`MANAGEMENT_AUTH_MODES`); records written before it existed read as
    ``certificate``.
    """

    tenant_id: str
    app_object_id: str
    client_id: str
    auth: str = "certificate"

    def __post_init__(self) -> None:
        if self.auth not in MANAGEMENT_AUTH_MODES:
            raise ValueError(
                f"management identity auth {self.auth[:20]!r}: expected one of"
                f" {', '.join(MANAGEMENT_AUTH_MODES)}"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """``state/leader``: who leads the daemon replicas, until when (an empty holder: nobody)."""

    holder: str
    expires: datetime


@dataclass(frozen=True)
class StoredCredential:
    """One client secret as indexed in Vault; the secret text is not part of it.

    ``created`` is when Azure accepted the secret (taken after ``addPassword``
    returned), since readiness counts from it.
    """

    version: int
    key_id: str
    intent_id: str
    created: datetime
    expires: datetime
    kind: CredentialKind = CredentialKind.SECRET


@dataclass(frozen=True)
class AzureCredential:
    """A password credential as Graph lists it on the application."""

    key_id: str
    display_name: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Intent:
    """A write-ahead record: a side effect in Azure may have happened under this id."""

    intent_id: str
    created: datetime
    kind: IntentKind = IntentKind.SECRET


@dataclass(frozen=True)
class StoredCertificate:
    """One management certificate version in Vault (the private key is not part of it)."""

    version: int
    key_id: str
    thumbprint: str
    intent_id: str
    not_before: datetime
    not_after: datetime
    uploaded_at: datetime


@dataclass(frozen=True)
class AzureKey:
    """A key credential on the management application; thumbprint = customKeyIdentifier."""

    key_id: str
    thumbprint: str
    display_name: str
    start: datetime
    end: datetime


# -- credential naming --------------------------------------------------------

DISPLAY_PREFIX = "azsidecar:"
_INTENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def credential_display_name(intent_id: str) -> str:
    """Name an Azure credential after its intent, so a crash can be reconciled.

    Credentials whose display name does not parse back are someone else's
    and are never touched.
    """
    if not _INTENT_ID.fullmatch(intent_id):
        raise ValueError(f"intent id must match {_INTENT_ID.pattern}, got {intent_id!r}")
    return DISPLAY_PREFIX + intent_id


def intent_of(display_name: str | None) -> str | None:
    if not display_name or not display_name.startswith(DISPLAY_PREFIX):
        return None
    intent_id = display_name[len(DISPLAY_PREFIX) :]
    return intent_id if _INTENT_ID.fullmatch(intent_id) else None


#: A federated credential's ``name`` is its unique, immutable identifier on the
#: application: at most 120 characters and "URL friendly"
#: (learn.microsoft.com/graph/api/resources/federatedidentitycredential). To
#: stay clear of any character that rule might refuse, ours use only letters,
#: digits, '-' and '_': ``azsidecar-<intent id>``, not the ``azsidecar:``
#: display name of secrets and certificates.
FEDERATED_PREFIX = "azsidecar-"
_FEDERATED_INTENT = re.compile(r"[A-Za-z0-9_-]{1,64}")


def federated_credential_name(intent_id: str) -> str:
    """The ``name`` of the federated credential an intent creates (see :func:`intent_of`)."""
    if not _FEDERATED_INTENT.fullmatch(intent_id):
        raise ValueError(f"intent id must match {_FEDERATED_INTENT.pattern}, got {intent_id!r}")
    return FEDERATED_PREFIX + intent_id


def intent_of_federated(name: str | None) -> str | None:
    """The intent a federated credential of ours was created under; None: not ours."""
    if not name or not name.startswith(FEDERATED_PREFIX):
        return None
    intent_id = name[len(FEDERATED_PREFIX) :]
    return intent_id if _FEDERATED_INTENT.fullmatch(intent_id) else None


def federated_subject(integration: str, intent_id: str) -> str:
    """The ``sub`` a run's token carries for one federated credential.

    One subject per credential, not per integration: a token made for a
    credential an integration has since replaced (or for an earlier
    integration of the same name) matches no federated credential that
    still exists.
    """
    return f"azsidecar:integration:{integration}:{intent_id}"


# -- the custom_metadata index ------------------------------------------------

#: Most index entries one key may carry. Vault allows 64 custom_metadata pairs
#: per key; the rest stay free for operators. Live secrets number three at
#: most, so the cap is only reached if expired ones pile up for weeks because
#: Graph refuses their removal.
INDEX_CAP = 32
_INDEX_KEY = re.compile(r"v([1-9][0-9]{0,9})")
_VALUE_LIMIT = 512
_PAIR_LIMIT = 64


class CredentialIndexError(SidecarError):
    """The custom_metadata index is malformed or full."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"credential index entry {key}: {message}")
        self.key = key


def index_entry(credential: StoredCredential) -> tuple[str, str]:
    """Encode one credential as ``("v<version>", "<keyId>|<intent>|<created>|<expires>")``.

    A certificate's entry ends in ``|certificate`` and a federated credential's
    in ``|federated``; a secret's has no fifth part, so indexes written before
    other kinds existed read the same.

    Times are whole epoch seconds, rounded towards the safe side: ``created``
    up (readiness never starts early) and ``expires`` down.
    """
    key = f"v{credential.version}"
    if credential.version < 1:
        raise CredentialIndexError(key, "KV versions start at 1")
    for name, part in (("key_id", credential.key_id), ("intent_id", credential.intent_id)):
        if not part or "|" in part:
            raise CredentialIndexError(key, f"{name} must be non-empty and contain no '|'")
    created = math.ceil(credential.created.timestamp())
    expires = math.floor(credential.expires.timestamp())
    value = f"{credential.key_id}|{credential.intent_id}|{created}|{expires}"
    if credential.kind is not CredentialKind.SECRET:
        value += f"|{credential.kind}"
    if len(value.encode()) >= _VALUE_LIMIT:
        raise CredentialIndexError(key, f"encoded entry exceeds {_VALUE_LIMIT} bytes")
    return key, value


def parse_index(custom_metadata: Mapping[str, str] | None) -> list[StoredCredential]:
    """Decode the index, ignoring keys that are not ``v<version>``; sorted by version."""
    found = []
    for key, value in (custom_metadata or {}).items():
        match = _INDEX_KEY.fullmatch(key)
        if match:
            found.append(_parse_entry(key, int(match.group(1)), value))
    return sorted(found, key=lambda c: c.version)


#: Kinds whose index entry carries a fifth part; a secret's has none.
_TAGGED_KINDS = frozenset({CredentialKind.CERTIFICATE, CredentialKind.FEDERATED})


def _parse_entry(key: str, version: int, value: str) -> StoredCredential:
    parts = value.split("|") if isinstance(value, str) else []
    kind = CredentialKind.SECRET
    if len(parts) == 5 and parts[4] in _TAGGED_KINDS:
        kind = CredentialKind(parts[4])
        parts = parts[:4]
    if len(parts) != 4:
        raise CredentialIndexError(key, "expected keyId|intent|created|expires[|kind]")
    key_id, intent_id, created, expires = parts
    if not key_id or not intent_id:
        raise CredentialIndexError(key, "keyId and intent must be non-empty")
    try:
        created_at = datetime.fromtimestamp(int(created), UTC)
        expires_at = datetime.fromtimestamp(int(expires), UTC)
    except (ValueError, OverflowError, OSError):
        raise CredentialIndexError(key, "created and expires must be epoch seconds") from None
    if expires_at <= created_at:
        raise CredentialIndexError(key, "expires must be after created")
    return StoredCredential(version, key_id, intent_id, created_at, expires_at, kind)


def with_index(
    custom_metadata: Mapping[str, str] | None, credentials: Iterable[StoredCredential]
) -> dict[str, str]:
    """Replace the index entries in ``custom_metadata`` and keep every other key."""
    kept = {k: v for k, v in (custom_metadata or {}).items() if not _INDEX_KEY.fullmatch(k)}
    entries = dict(index_entry(c) for c in credentials)
    if len(entries) > INDEX_CAP:
        raise CredentialIndexError(
            max(entries, key=lambda k: int(k[1:])),
            f"more than {INDEX_CAP} live secrets; remove expired ones from Azure first",
        )
    if len(kept) + len(entries) > _PAIR_LIMIT:
        raise CredentialIndexError(
            "*", f"Vault allows {_PAIR_LIMIT} custom_metadata pairs; remove other keys"
        )
    return kept | entries
