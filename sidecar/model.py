"""Plain data shared by the planners, the Vault and Graph adapters and the resolver.

Also two encodings that several parts must agree on byte for byte: the
display name that ties an Azure credential to the intent that created it,
and the compact index of live secrets kept in the KV key's
``custom_metadata``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sidecar.errors import SidecarError

#: Where the plugin is mounted and the path (``<mount>/creds/<stack>/<phase>``) that
#: authorises runners, plugin and resolver alike. Not ``azure``: HashiCorp's own Azure
#: engine is conventionally mounted there, and in a resolver-only Vault its policies
#: (``azure/creds/<role>``) would grant every stack's credential through the resolver.
DEFAULT_CREDS_MOUNT = "azsidecar"


class Phase(StrEnum):
    PLAN = "plan"
    APPLY = "apply"


class ConsentState(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    REVOKED = "revoked"


class IntentKind(StrEnum):
    SECRET = "secret"  # noqa: S105 - a kind of intent, not a password
    CERTIFICATE = "certificate"


@dataclass(frozen=True)
class Integration:
    """An Azure AD application the platform created for one user's tenant."""

    name: str
    tenant_id: str
    subscription_id: str | None
    app_object_id: str
    client_id: str
    display_name: str
    consent: ConsentState
    created: datetime


@dataclass(frozen=True)
class Stack:
    """Which integration each phase of a stack's runs uses."""

    name: str
    read: str | None = None
    write: str | None = None
    subscription_id: str | None = None

    def integration_for(self, phase: Phase) -> str | None:
        return self.read if phase is Phase.PLAN else self.write


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


def _parse_entry(key: str, version: int, value: str) -> StoredCredential:
    parts = value.split("|") if isinstance(value, str) else []
    if len(parts) != 4:
        raise CredentialIndexError(key, "expected keyId|intent|created|expires")
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
    return StoredCredential(version, key_id, intent_id, created_at, expires_at)


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
