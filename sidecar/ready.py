"""The one rule for which secret a run may be handed, and which certificate the daemon signs with.

The daemon, the gRPC resolver and the Vault plugin all call
:func:`choose_ready`, so a runner gets the same answer whichever way it asks.
A secret is handed out only once every Azure AD replica knows it
(``propagation_delay`` after creation) and only while it has more than
``ready_safety_margin`` left, so a run never starts on a secret about to
expire. Among those, the one with the latest expiry lasts longest.

The management certificate follows the same idea (:func:`choose_active`): a
renewed certificate is used only ``cert_switch_delay`` after upload, when
every replica knows it. Both the certificate planner and the certificate
store (``sidecar.management``) call it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sidecar.model import StoredCertificate, StoredCredential
from sidecar.timing import TimingPolicy


@dataclass(frozen=True)
class Ready:
    credential: StoredCredential
    usable_until: datetime


@dataclass(frozen=True)
class NotReady:
    """No secret may be handed out; ``ready_at`` is when one will be, if ever."""

    ready_at: datetime | None
    reason: str


def ready_from(credential: StoredCredential, policy: TimingPolicy) -> datetime:
    return credential.created + policy.propagation_delay


def usable_until(credential: StoredCredential, policy: TimingPolicy) -> datetime:
    return credential.expires - policy.ready_safety_margin


def safe_window(credential: StoredCredential, now: datetime, policy: TimingPolicy) -> timedelta:
    """How long a lease or token handed out now may last (never negative)."""
    return max(usable_until(credential, policy) - now, timedelta(0))


def choose_ready(
    credentials: Iterable[StoredCredential], now: datetime, policy: TimingPolicy
) -> Ready | NotReady:
    """Pick the secret to hand out at ``now``, or say when one will exist."""
    ready: list[StoredCredential] = []
    upcoming: list[datetime] = []
    for credential in credentials:
        start, end = ready_from(credential, policy), usable_until(credential, policy)
        if start <= now < end:
            ready.append(credential)
        elif now < start < end:
            upcoming.append(start)
    if ready:
        best = max(ready, key=lambda c: (c.expires, c.created, c.version))
        return Ready(best, usable_until(best, policy))
    if upcoming:
        return NotReady(min(upcoming), "newest secret is still propagating through Azure AD")
    return NotReady(None, "no secret that is or will become ready; the daemon must create one")


def newness(c: StoredCertificate) -> tuple[datetime, int]:
    """Orders certificates: the later upload (then the later version) is newer."""
    return c.uploaded_at, c.version


def choose_active(
    stored: Iterable[StoredCertificate], now: datetime, policy: TimingPolicy
) -> StoredCertificate | None:
    """The newest valid certificate replicated long enough; else the newest valid one."""
    valid = [c for c in stored if c.not_before <= now < c.not_after]
    switched = [c for c in valid if c.uploaded_at + policy.cert_switch_delay <= now]
    return max(switched or valid, key=newness, default=None)
