"""The one rule for which secret a run may be handed, and which certificate the daemon signs with.

The daemon, the gRPC resolver and the Vault plugin all call
:func:`choose_ready`, so a runner gets the same answer whichever way it asks.
A secret is handed out only once every Azure AD replica knows it and only
while it has more than ``ready_safety_margin`` left, so a run never starts
on a secret about to expire. Among those, the one with the latest expiry
lasts longest.

"Every replica knows it" is judged two ways (see :mod:`sidecar.probes.rule`):
by time (``propagation_delay`` after creation, or the longer delay the
daemon recorded for it) and, for a secret the daemon probes, by sign-ins
that all succeeded over the probe window. Both must hold. The only way to
hand out earlier than ``propagation_delay`` is the operator's explicit
``new_integration_floor``, for an integration's only secret, once verified.

The management certificate follows the same idea (:func:`choose_active`): a
renewed certificate is used only ``cert_switch_delay`` after upload, when
every replica knows it. Both the certificate planner and the certificate
store (``sidecar.management``) call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sidecar.model import CredentialKind, StoredCertificate, StoredCredential
from sidecar.probes import rule
from sidecar.probes.rule import ProbeRecord, ProbeState
from sidecar.timing import TimingPolicy

Probes = Mapping[int, ProbeRecord]


@dataclass(frozen=True)
class Ready:
    credential: StoredCredential
    usable_until: datetime


@dataclass(frozen=True)
class NotReady:
    """No secret may be handed out; ``ready_at`` is when one will be, if ever."""

    ready_at: datetime | None
    reason: str


def ready_from(
    credential: StoredCredential, policy: TimingPolicy, probe: ProbeRecord | None = None
) -> datetime:
    """When the time rule lets ``credential`` out (probes may hold it back longer)."""
    return credential.created + rule.effective_delay(probe, policy)


def usable_until(credential: StoredCredential, policy: TimingPolicy) -> datetime:
    return credential.expires - policy.ready_safety_margin


def safe_window(credential: StoredCredential, now: datetime, policy: TimingPolicy) -> timedelta:
    """How long a lease or token handed out now may last (never negative)."""
    return max(usable_until(credential, policy) - now, timedelta(0))


def choose_ready(
    credentials: Iterable[StoredCredential],
    now: datetime,
    policy: TimingPolicy,
    probes: Probes | None = None,
    noun: str = "secret",
) -> Ready | NotReady:
    """Pick the secret to hand out at ``now``, or say when one will exist and why not yet.

    Every credential given is a candidate whatever its kind; ``noun`` names them
    in reasons. :func:`choose_for_kind` is the rule for an integration's kinds.
    """
    probes = (probes or {}) if policy.probes else {}
    listed = list(credentials)
    ready: list[StoredCredential] = []
    upcoming: list[tuple[datetime, str]] = []
    for credential in listed:
        probe = probes.get(credential.version)
        verdict = None if probe is None else rule.state(probe, credential.created, policy, now)
        start, end = (
            _start(credential, policy, probe, verdict, alone=len(listed) == 1),
            usable_until(credential, policy),
        )
        if now >= end:
            continue
        if start <= now and verdict in _TIME_RULE_DECIDES:
            ready.append(credential)
            continue
        if verdict in _TIME_RULE_DECIDES:
            if start < end:
                upcoming.append((start, f"newest {noun} is still propagating through Azure AD"))
        elif probe is not None:
            expected = max(start, rule.verified_at_earliest(probe, now, policy))
            if expected < end:
                upcoming.append((expected, _probe_reason(verdict, probe, noun)))
    if ready:
        best = max(ready, key=lambda c: (c.expires, c.created, c.version))
        return Ready(best, usable_until(best, policy))
    if upcoming:
        at, reason = min(upcoming)
        return NotReady(at, reason)
    return NotReady(None, f"no {noun} that is or will become ready; the daemon must create one")


def choose_for_kind(
    credentials: Iterable[StoredCredential],
    kind: CredentialKind,
    now: datetime,
    policy: TimingPolicy,
    probes: Probes | None = None,
) -> Ready | NotReady:
    """The ready credential of the integration's ``kind``, or during a switch the old kind's.

    An integration switched to another kind keeps handing out its ready
    credential of the old kind until one of the new kind is ready, so a switch
    never fails a run. Without a ready one of either, the answer is the new
    kind's: when it will be ready and why not yet.
    """
    listed = list(credentials)
    wanted = choose_ready([c for c in listed if c.kind is kind], now, policy, probes, kind.noun)
    if isinstance(wanted, Ready):
        return wanted
    others = [c for c in listed if c.kind is not kind]
    if others:
        fallback = choose_ready(others, now, policy, probes)
        if isinstance(fallback, Ready):
            return fallback
    return wanted


#: Verdicts under which the time rule alone decides (no record, verified, or no evidence).
_TIME_RULE_DECIDES = (None, ProbeState.VERIFIED, ProbeState.UNVERIFIABLE)


def _start(
    credential: StoredCredential,
    policy: TimingPolicy,
    probe: ProbeRecord | None,
    verdict: ProbeState | None,
    alone: bool,
) -> datetime:
    """When the time rule lets ``credential`` out; the floor only where probes can verify."""
    floor = policy.new_integration_floor
    evidence = verdict in (ProbeState.VERIFIED, ProbeState.PROPAGATING)
    if alone and floor is not None and probe is not None and policy.probes and evidence:
        return credential.created + min(floor, rule.effective_delay(probe, policy))
    return ready_from(credential, policy, probe)


def _probe_reason(verdict: ProbeState, probe: ProbeRecord, noun: str) -> str:
    if verdict is ProbeState.FAILING:
        return (
            f"newest {noun} is refused at sign-in after its propagation delay "
            f"({probe.failures} of {probe.sign_ins} probes failed); the previous one stays"
            " in use while Azure AD catches up"
        )
    return f"newest {noun} is propagating: waiting for sign-in probes to succeed over the window"


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
