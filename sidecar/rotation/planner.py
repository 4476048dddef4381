"""What to do next for one integration's client secrets, decided without I/O.

The executor (``rotation/run.py``) applies the returned actions in order;
a crash between any two steps is repaired by a later plan, because every
Azure credential we create is named after a write-ahead intent
(:func:`sidecar.model.credential_display_name`) and everything here is
recomputed from Vault and the Graph listing each tick.

Rules, in the order their actions are returned:

* Expired secret: remove it from the application (when the listing shows it
  or is unavailable; ``removePassword`` of an unknown keyId counts as done)
  and destroy its KV version.
* Our credential on the application that Vault does not hold: its text is
  lost, remove it (an orphan); clear its intent if one is pending.
* Vault holds a secret the listing lacks although it is older than
  ``intent_timeout`` (replication lag cannot explain it): someone removed it
  in Azure, destroy the version.
* Intent whose secret is stored: clear it (crash after the KV write).
* Intent older than ``intent_timeout`` with no credential visible: clear it
  (crash before or during ``addPassword``, or the call never landed).
* Renewal: no live secret, or the newest has at most ``secret_renew_before``
  left, and no intent younger than ``intent_timeout`` is in flight: create
  one, unless Azure could then hold more than :data:`MAX_OURS` of ours.

Credentials whose display name is not ours belong to someone else and are
never touched. Reconciliation against Azure only happens when the listing
is available; without it the planner still renews, counting every
unresolved intent as a credential Azure may hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sidecar.model import AzureCredential, Intent, StoredCredential, intent_of
from sidecar.timing import TimingPolicy

#: Most of our own secrets one application may hold at once, counting ones
#: that may exist unseen because an intent is unresolved.
MAX_OURS = 3


@dataclass(frozen=True)
class IntegrationState:
    """What a tick knows about one integration; ``azure`` is None if Graph failed."""

    name: str
    stored: tuple[StoredCredential, ...]
    azure: tuple[AzureCredential, ...] | None
    intents: tuple[Intent, ...]


@dataclass(frozen=True)
class CreateSecret:
    """Write an intent, addPassword named after it, store the secret, clear the intent."""

    reason: str


@dataclass(frozen=True)
class RemoveAzureCredential:
    key_id: str
    reason: str


@dataclass(frozen=True)
class DestroyStored:
    version: int
    key_id: str
    reason: str


@dataclass(frozen=True)
class ClearIntent:
    intent_id: str
    reason: str


Action = CreateSecret | RemoveAzureCredential | DestroyStored | ClearIntent


@dataclass
class _Draft:
    """The plan being built; keyed so that two rules naming the same target agree."""

    removals: dict[str, str] = field(default_factory=dict)
    destroys: dict[int, DestroyStored] = field(default_factory=dict)
    clears: dict[str, str] = field(default_factory=dict)


def plan(state: IntegrationState, policy: TimingPolicy, now: datetime) -> list[Action]:
    """Removals, then destroys, then cleared intents, then at most one creation."""
    draft = _Draft()
    listed = None if state.azure is None else {a.key_id for a in state.azure}
    for c in state.stored:
        if c.expires <= now:
            if listed is None or c.key_id in listed:
                draft.removals[c.key_id] = f"secret v{c.version} expired at {c.expires.isoformat()}"
            draft.destroys[c.version] = DestroyStored(c.version, c.key_id, "expired")
    stored_intents = {c.intent_id for c in state.stored}
    for i in state.intents:
        if i.intent_id in stored_intents:
            draft.clears[i.intent_id] = "its secret is stored; the clear was interrupted"
    _reconcile(state, policy, now, draft)

    actions: list[Action] = [
        RemoveAzureCredential(k, draft.removals[k]) for k in sorted(draft.removals)
    ]
    actions += [draft.destroys[v] for v in sorted(draft.destroys)]
    actions += [ClearIntent(i, draft.clears[i]) for i in sorted(draft.clears)]
    create = _renewal(state, policy, now, draft)
    if create is not None:
        actions.append(create)
    return actions


def _reconcile(
    state: IntegrationState,
    policy: TimingPolicy,
    now: datetime,
    draft: _Draft,
) -> None:
    azure = state.azure
    if azure is None:
        return
    stored_keys = {c.key_id for c in state.stored}
    pending = {i.intent_id for i in state.intents}
    in_flight = {i.intent_id for i in state.intents if now - i.created < policy.intent_timeout}
    for a in azure:
        intent_id = intent_of(a.display_name)
        if intent_id is None or a.key_id in stored_keys:
            continue
        if intent_id in in_flight:
            continue  # its writer (another process's create) may still store it
        draft.removals.setdefault(a.key_id, f"orphan of intent {intent_id}: Vault never stored it")
        if intent_id in pending:
            draft.clears.setdefault(intent_id, "its credential is orphaned and being removed")
    visible = {intent_of(a.display_name) for a in azure}
    for i in state.intents:
        if i.intent_id not in visible and now - i.created >= policy.intent_timeout:
            draft.clears.setdefault(i.intent_id, "no credential appeared in Azure; abandoned")
    listed = {a.key_id for a in azure}
    for c in state.stored:
        if c.key_id in listed or c.version in draft.destroys:
            continue
        if now - c.created >= policy.missing_grace:
            draft.destroys[c.version] = DestroyStored(
                c.version, c.key_id, "no longer on the application; removed outside us"
            )


def _renewal(
    state: IntegrationState, policy: TimingPolicy, now: datetime, draft: _Draft
) -> CreateSecret | None:
    kept = [c for c in state.stored if c.version not in draft.destroys]
    newest = max(kept, key=lambda c: (c.expires, c.created, c.version), default=None)
    if newest is not None and now < newest.expires - policy.secret_renew_before:
        return None
    open_intents = [i for i in state.intents if i.intent_id not in draft.clears]
    if any(now - i.created < policy.intent_timeout for i in open_intents):
        return None
    held = {c.key_id for c in kept}
    if state.azure is not None:
        held |= {a.key_id for a in state.azure if intent_of(a.display_name) is not None}
    held -= draft.removals.keys()
    if len(held) + len(open_intents) + 1 > MAX_OURS:
        return None
    if newest is None:
        return CreateSecret(f"{state.name} has no live secret")
    return CreateSecret(f"newest secret v{newest.version} expires {newest.expires.isoformat()}")


def replan_at(state: IntegrationState, policy: TimingPolicy, now: datetime) -> datetime | None:
    """The next instant at which :func:`plan` could decide differently on the same state.

    A daemon that wakes then as well as every ``tick`` retries a crashed
    renewal as soon as its intent times out, instead of a whole tick later.
    """
    moments = [i.created + policy.intent_timeout for i in state.intents]
    for c in state.stored:
        moments += [c.expires, c.expires - policy.secret_renew_before]
        moments.append(c.created + policy.missing_grace)
    return min((m for m in moments if m > now), default=None)
