"""What to do next for the management certificate, decided without I/O.

The daemon authenticates to Graph with one stored certificate, the
*active* one. A renewed certificate is uploaded with ``addKey`` (its proof
signed by the active key) and becomes active only ``cert_switch_delay``
after upload, when every Azure AD replica knows it; until then the previous
one stays in use.

The certificate is one kind of the shared credential life cycle
(:mod:`sidecar.lifecycle`): its rules of reconciliation and renewal are
written there once. What is the certificate's own:

* a stored certificate that has expired, or that is older than an active
  certificate already switched to, is retired: its key removed and its
  version destroyed. The active certificate is never retired, nor destroyed
  when the listing lacks its key; certificates newer than it are never
  retired.
* renewal is judged by the certificate uploaded last, ``cert_renew_before``
  ahead of its expiry.

Stored certificates are managed whatever their key's display name (the
bootstrap one is usually named by hand); unstored keys not named by us are
someone else's and are left alone. A stored certificate is matched to its key
by thumbprint (Graph's ``customKeyIdentifier``), which both sides always know;
the stored ``key_id`` is only a fallback, since a certificate stored by
``management init`` (uploaded by hand) has none. A superseded certificate
whose key cannot be identified (no listing, no key id) keeps its version
until a listing names the key, so the key is never lost from sight. With no
valid certificate at all the daemon cannot reach Graph, and the outcome is :class:`Stuck`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sidecar.lifecycle import plan as lifecycle
from sidecar.lifecycle.actions import Action, Create, RemoveFromAzure
from sidecar.lifecycle.kind import Held, Kind, Retirement, View, latest_accepted
from sidecar.model import AzureKey, Intent, StoredCertificate
from sidecar.ready import choose_active, newness
from sidecar.timing import TimingPolicy

CERTIFICATE = Kind(
    stored="certificate",
    listed="key",
    renew_before=lambda policy: policy.cert_renew_before,
    newest=latest_accepted,
)

# The certificate's names for the shared actions.
RenewCertificate = Create
RemoveKey = RemoveFromAzure
CertAction = Action


@dataclass(frozen=True)
class CertificateState:
    """What a tick knows about the certificate; ``azure`` is None if Graph failed."""

    stored: tuple[StoredCertificate, ...]
    azure: tuple[AzureKey, ...] | None
    intents: tuple[Intent, ...]


@dataclass(frozen=True)
class CertificatePlan:
    """Authenticate with ``active`` (and sign key proofs with it), then apply ``actions``."""

    active: StoredCertificate
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Stuck:
    """No valid certificate is left; only an operator can upload a new one."""

    reason: str


def plan(state: CertificateState, policy: TimingPolicy, now: datetime) -> CertificatePlan | Stuck:
    active = choose_active(state.stored, now, policy)
    if active is None:
        return _stuck(state.stored)
    view = View(
        subject="the management application",
        held=tuple(
            Held(c.version, key_of(c, state.azure), c.intent_id, c.uploaded_at, c.not_after)
            for c in state.stored
        ),
        azure=state.azure,
        intents=state.intents,
        retiring=tuple(_retiring(state.stored, active, policy, now)),
        keep=frozenset({active.version}),
    )
    return CertificatePlan(active, tuple(lifecycle.plan(CERTIFICATE, view, policy, now)))


def _retiring(
    stored: tuple[StoredCertificate, ...],
    active: StoredCertificate,
    policy: TimingPolicy,
    now: datetime,
) -> Iterable[Retirement]:
    switched = active.uploaded_at + policy.cert_switch_delay <= now
    for c in stored:
        if c == active:
            continue
        if c.not_after <= now:
            why = f"certificate v{c.version} expired at {c.not_after.isoformat()}"
        elif switched and newness(c) < newness(active):
            why = f"certificate v{c.version} superseded by v{active.version}"
        else:
            continue
        yield Retirement(c.version, why, why)


def key_of(c: StoredCertificate, azure: tuple[AzureKey, ...] | None) -> str:
    """The key id of a stored certificate: the listed key with its thumbprint, else as stored."""
    for k in azure or ():
        if k.thumbprint and k.thumbprint.upper() == c.thumbprint.upper():
            return k.key_id
    return c.key_id


def _stuck(stored: tuple[StoredCertificate, ...]) -> Stuck:
    if not stored:
        return Stuck("no management certificate is stored; bootstrap one by hand")
    last = max(stored, key=lambda c: c.not_after)
    return Stuck(
        f"no valid management certificate (newest, v{last.version}, is valid "
        f"{last.not_before.isoformat()} to {last.not_after.isoformat()}); "
        "upload a new one to the management application by hand and store it"
    )
