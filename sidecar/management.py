"""The management application's identity and certificates, as kept in Vault.

The identity (tenant id, application object id, client id) and one KV version
per certificate (PEM, key, thumbprint, keyId, validity, upload time); where
they are kept is :class:`sidecar.store.Store`'s business, the certificate's
codec is :class:`CertificateVersion`.

The private key lives only in Vault; key pairs are made in memory by
:mod:`sidecar.keypairs` (re-exported here for the callers that name them).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sidecar.clock import Clock
from sidecar.errors import SidecarError, VaultNotFound
from sidecar.graph import CertificateCredential
from sidecar.keypairs import KeyPair, generate_key_pair, key_pair_from
from sidecar.model import ManagementIdentity, StoredCertificate, from_epoch, to_epoch
from sidecar.ready import choose_active as ready_certificate
from sidecar.sensitive import Sensitive
from sidecar.store import Store
from sidecar.timing import TimingPolicy

__all__ = [
    "CertificateProvider",
    "CertificateVersion",
    "KeyPair",
    "ManagementIdentity",
    "ManagementNotInitialised",
    "choose_active",
    "generate_key_pair",
    "key_pair_from",
    "load_certificates",
    "load_identity",
    "save_identity",
    "store_certificate",
]


class ManagementNotInitialised(SidecarError):
    """No management identity or certificate in Vault yet."""


@dataclass(frozen=True)
class CertificateVersion:
    """One stored management certificate with its private key."""

    version: int
    cert_pem: str
    key_pem: Sensitive = field(repr=False)
    thumbprint: str
    key_id: str
    intent_id: str
    not_before: datetime
    not_after: datetime
    uploaded_at: datetime

    def credential(self) -> CertificateCredential:
        return CertificateCredential(
            cert_pem=self.cert_pem,
            key_pem=self.key_pem,
            thumbprint=self.thumbprint,
            key_id=self.key_id,
        )

    def summary(self) -> StoredCertificate:
        """What the certificate planner needs, without the key."""
        return StoredCertificate(
            version=self.version,
            key_id=self.key_id,
            thumbprint=self.thumbprint,
            intent_id=self.intent_id,
            not_before=self.not_before,
            not_after=self.not_after,
            uploaded_at=self.uploaded_at,
        )

    def to_data(self) -> dict[str, Any]:
        return {
            "cert_pem": self.cert_pem,
            "key_pem": self.key_pem.reveal(),
            "thumbprint": self.thumbprint,
            "key_id": self.key_id,
            "intent_id": self.intent_id,
            "not_before": to_epoch(self.not_before),
            "not_after": to_epoch(self.not_after),
            "uploaded_at": to_epoch(self.uploaded_at),
        }

    @classmethod
    def from_data(cls, version: int, data: dict[str, Any]) -> CertificateVersion:
        return cls(
            version=version,
            cert_pem=str(data["cert_pem"]),
            key_pem=Sensitive(str(data["key_pem"])),
            thumbprint=str(data["thumbprint"]),
            key_id=str(data.get("key_id", "")),
            intent_id=str(data.get("intent_id", "")),
            not_before=from_epoch(data["not_before"]),
            not_after=from_epoch(data["not_after"]),
            uploaded_at=from_epoch(data["uploaded_at"]),
        )


def load_identity(store: Store) -> ManagementIdentity:
    try:
        return store.management_identity()
    except VaultNotFound as exc:
        raise ManagementNotInitialised(
            "no management identity in Vault: run `azsidecar management init`"
        ) from exc


def save_identity(store: Store, identity: ManagementIdentity) -> None:
    store.save_management_identity(identity)


def load_certificates(store: Store) -> list[CertificateVersion]:
    """Every live stored certificate, oldest first."""
    return [CertificateVersion.from_data(v, data) for v, data in store.certificate_data()]


def store_certificate(
    store: Store,
    pair: KeyPair,
    key_id: str,
    uploaded_at: datetime,
    intent_id: str = "",
) -> CertificateVersion:
    """Write a certificate as a new version (check-and-set)."""
    draft = CertificateVersion(
        version=0,
        cert_pem=pair.cert_pem,
        key_pem=pair.key_pem,
        thumbprint=pair.thumbprint,
        key_id=key_id,
        intent_id=intent_id,
        not_before=pair.not_before,
        not_after=pair.not_after,
        uploaded_at=uploaded_at,
    )
    version = store.add_certificate_data(draft.to_data())
    return CertificateVersion.from_data(version, draft.to_data())


def choose_active(
    certificates: list[CertificateVersion], now: datetime, policy: TimingPolicy
) -> CertificateVersion | None:
    """The certificate to sign in with, by the rule in :func:`sidecar.ready.choose_active`."""
    by_version = {c.version: c for c in certificates}
    chosen = ready_certificate((c.summary() for c in certificates), now, policy)
    return by_version[chosen.version] if chosen is not None else None


class CertificateProvider:
    """Hands the Graph client the active certificate, re-reading Vault periodically."""

    def __init__(
        self, store: Store, clock: Clock, policy: TimingPolicy, reload_every: timedelta
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.reload_every = reload_every
        self._lock = threading.Lock()
        self._certificates: list[CertificateVersion] = []
        self._loaded_at: datetime | None = None

    def reload(self) -> None:
        with self._lock:
            self._certificates = load_certificates(self.store)
            self._loaded_at = self.clock.now()

    def active(self) -> CertificateVersion:
        now = self.clock.now()
        if self._loaded_at is None or now - self._loaded_at >= self.reload_every:
            self.reload()
        chosen = choose_active(self._certificates, now, self.policy)
        if chosen is None:
            raise ManagementNotInitialised(
                "no valid management certificate in Vault: add one to the management"
                " application (portal or PATCH) and run `azsidecar management init --import`"
            )
        return chosen

    def __call__(self) -> CertificateCredential:
        return self.active().credential()
