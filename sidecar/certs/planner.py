"""What to do next for the management certificate, decided without I/O.

The daemon authenticates to Graph with one stored certificate, the
*active* one. A renewed certificate is uploaded with ``addKey`` (its proof
signed by the active key) and becomes active only ``cert_switch_delay``
after upload, when every Azure AD replica knows it; until then the previous
one stays in use. Rules, in the order their actions are returned:

* A stored certificate that has expired, or that is older than an active
  certificate already switched to: remove its key (when the listing shows
  it or is unavailable) and destroy its version. The active key and keys
  newer than it are never removed.
* Our key on the application that Vault does not hold: remove it (its
  private key is lost); clear its intent if one is pending.
* A stored certificate, not the active one, whose key the listing lacks
  although it was uploaded over ``intent_timeout`` ago: destroy it.
* Intents: cleared once their certificate is stored, or once they are older
  than ``intent_timeout`` with no key visible.
* Renewal: the newest certificate has at most ``cert_renew_before`` left and
  no intent younger than ``intent_timeout`` is in flight.

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

from dataclasses import dataclass, field
from datetime import datetime

from sidecar.model import AzureKey, Intent, StoredCertificate, intent_of
from sidecar.ready import choose_active, newness
from sidecar.rotation.planner import ClearIntent, DestroyStored
from sidecar.timing import TimingPolicy


@dataclass(frozen=True)
class CertificateState:
    """What a tick knows about the certificate; ``azure`` is None if Graph failed."""

    stored: tuple[StoredCertificate, ...]
    azure: tuple[AzureKey, ...] | None
    intents: tuple[Intent, ...]


@dataclass(frozen=True)
class RenewCertificate:
    """Write an intent, make a key pair, addKey named after the intent, store, clear."""

    reason: str


@dataclass(frozen=True)
class RemoveKey:
    key_id: str
    reason: str


CertAction = RenewCertificate | RemoveKey | DestroyStored | ClearIntent


@dataclass(frozen=True)
class CertificatePlan:
    """Authenticate with ``active`` (and sign key proofs with it), then apply ``actions``."""

    active: StoredCertificate
    actions: tuple[CertAction, ...]


@dataclass(frozen=True)
class Stuck:
    """No valid certificate is left; only an operator can upload a new one."""

    reason: str


@dataclass
class _Draft:
    removals: dict[str, str] = field(default_factory=dict)
    destroys: dict[int, DestroyStored] = field(default_factory=dict)
    clears: dict[str, str] = field(default_factory=dict)


def plan(state: CertificateState, policy: TimingPolicy, now: datetime) -> CertificatePlan | Stuck:
    active = choose_active(state.stored, now, policy)
    if active is None:
        return _stuck(state.stored)
    draft = _Draft()
    listed = None if state.azure is None else {k.key_id for k in state.azure}
    switched = active.uploaded_at + policy.cert_switch_delay <= now
    for c in state.stored:
        if c == active:
            continue
        if c.not_after <= now:
            why = f"certificate v{c.version} expired at {c.not_after.isoformat()}"
        elif switched and newness(c) < newness(active):
            why = f"certificate v{c.version} superseded by v{active.version}"
        else:
            continue
        key_id = key_of(c, state.azure)
        if listed is None and not key_id:
            continue  # which key is its? wait for a listing before forgetting it
        if listed is None or key_id in listed:
            draft.removals[key_id] = why
        draft.destroys[c.version] = DestroyStored(c.version, key_id, why)
    stored_intents = {c.intent_id for c in state.stored}
    for i in state.intents:
        if i.intent_id in stored_intents:
            draft.clears[i.intent_id] = "its certificate is stored; the clear was interrupted"
    _reconcile(state, active, policy, now, draft)

    actions: list[CertAction] = [RemoveKey(k, draft.removals[k]) for k in sorted(draft.removals)]
    actions += [draft.destroys[v] for v in sorted(draft.destroys)]
    actions += [ClearIntent(i, draft.clears[i]) for i in sorted(draft.clears)]
    renew = _renewal(state, policy, now, draft)
    if renew is not None:
        actions.append(renew)
    return CertificatePlan(active, tuple(actions))


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


def _reconcile(
    state: CertificateState,
    active: StoredCertificate,
    policy: TimingPolicy,
    now: datetime,
    draft: _Draft,
) -> None:
    azure = state.azure
    if azure is None:
        return
    stored_keys = {key_of(c, azure) for c in state.stored}
    pending = {i.intent_id for i in state.intents}
    in_flight = {i.intent_id for i in state.intents if now - i.created < policy.intent_timeout}
    for k in azure:
        intent_id = intent_of(k.display_name)
        if intent_id is None or k.key_id in stored_keys or intent_id in in_flight:
            continue
        draft.removals.setdefault(k.key_id, f"orphan of intent {intent_id}: Vault never stored it")
        if intent_id in pending:
            draft.clears.setdefault(intent_id, "its key is orphaned and being removed")
    visible = {intent_of(k.display_name) for k in azure}
    for i in state.intents:
        if i.intent_id not in visible and now - i.created >= policy.intent_timeout:
            draft.clears.setdefault(i.intent_id, "no key appeared in Azure; abandoned")
    listed = {k.key_id for k in azure}
    for c in state.stored:
        if c == active or key_of(c, azure) in listed or c.version in draft.destroys:
            continue
        if now - c.uploaded_at >= policy.missing_grace:
            draft.destroys[c.version] = DestroyStored(
                c.version, c.key_id, "no longer on the application; removed outside us"
            )


def _renewal(
    state: CertificateState, policy: TimingPolicy, now: datetime, draft: _Draft
) -> RenewCertificate | None:
    live = [c for c in state.stored if c.version not in draft.destroys and now < c.not_after]
    newest = max(live, key=newness)
    if now < newest.not_after - policy.cert_renew_before:
        return None
    open_intents = [i for i in state.intents if i.intent_id not in draft.clears]
    if any(now - i.created < policy.intent_timeout for i in open_intents):
        return None
    return RenewCertificate(
        f"newest certificate v{newest.version} expires {newest.not_after.isoformat()}"
    )
