"""What to do next for one integration's credentials, decided without I/O.

An integration's client secrets, its certificate credentials and its
federated identity credentials are three kinds of the shared credential life
cycle (:mod:`sidecar.lifecycle`): its rules of reconciliation and renewal are
written there once, and this module
plans each kind with them. What is the integration's own:

* an expired credential is retired: removed from the application and its KV
  version destroyed;
* only the kind the integration wants (:attr:`IntegrationRecord.kind`) is
  created and renewed, judged by its credential that expires last,
  ``secret_renew_before`` (``certificate_renew_before``) ahead of its expiry;
* the other kind is not renewed, and once the wanted kind has had a ready
  credential (:func:`sidecar.ready.choose_ready`, with the probes readers
  see) for ``ready_safety_margin``, every version of the other kind is
  retired: readers switch as soon as the wanted kind is ready
  (:func:`sidecar.ready.choose_for_kind`), and a run handed the old kind just
  before keeps at least the margin a run is always given;
* Azure never holds more than :data:`MAX_OURS` of our credentials of a kind,
  counting ones an unresolved intent may have made unseen;
* a credential the listing lacks is destroyed only once
  :data:`CONFIRMING_READS` fresh listings lack it too (a keep-alive
  connection stays on one replica, which may lag far behind).

A federated credential (#18) never expires, so it is never renewed for
age; an integration has one, created when it wants the kind, and at most
:data:`MAX_FEDERATED_OURS` of ours at once (Entra allows 20 per application,
learn.microsoft.com/graph/api/application-post-federatedidentitycredentials,
and a replacement needs two). Its listing is Graph's ``federatedIdentityCredentials``,
each named ``azsidecar-<intent>`` (:func:`sidecar.model.federated_credential_name`):
:func:`federated_listed` shows ours to the life cycle under the display name
its reconciliation recognises, and everyone else's under none. A federated
credential whose stored issuer or audience is no longer the configured one
(:class:`FederatedTrust`) is replaced like a renewal: the life cycle sees it
as expiring now, so one with the configured trust is created, and the old
one is retired once the new one has been ready for ``ready_safety_margin``.

Certificates have Graph's proof rules besides
(learn.microsoft.com/graph/api/application-addkey,
learn.microsoft.com/graph/api/application-removekey): a new certificate is
added by ``addKey`` with a proof signed by a valid key of ours (preferring
one the application lists, then one accepted ``propagation_delay`` ago, so
every replica knows it), and only when we hold no valid key at all by
writing the whole ``keyCredentials`` collection (PATCH); a certificate is
removed by ``removeKey`` with a proof signed by itself while it is valid,
else by a valid key of ours still on the application at that point of the
plan, else by PATCH. The plan names the stored version that signs
(:class:`CreateCertificate`, :class:`RemoveKeyCredential`).

Why a valid key we hold proves an action even when the listing lacks it: a
PATCH replaces the collection with what the daemon read, and a read served
by a lagging replica lacks the keys written since, ours included. A PATCH
built from it would delete a certificate Vault hands to runs. An ``addKey``
proven by a key the serving replica does not know yet is refused instead
(nothing changes, the next tick tries again), and a key that is really gone
is destroyed after ``missing_grace`` and confirming reads, after which PATCH
is the way in again.

The executor (``rotation/run.py``) applies the returned actions in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sidecar.issuer.documents import ENTRA_AUDIENCE
from sidecar.lifecycle import plan as lifecycle
from sidecar.lifecycle.actions import Action, ClearIntent, Create, DestroyStored, RemoveFromAzure
from sidecar.lifecycle.kind import Held, Kind, Retirement, View, latest_accepted, latest_expiry
from sidecar.model import (
    FEDERATED_NEVER_EXPIRES,
    AzureCredential,
    CredentialKind,
    Intent,
    IntentKind,
    StoredCredential,
    credential_display_name,
    intent_of_federated,
)
from sidecar.probes.rule import ProbeRecord
from sidecar.ready import Ready, choose_ready
from sidecar.timing import TimingPolicy

#: Most of our own secrets one application may hold at once, counting ones
#: that may exist unseen because an intent is unresolved.
MAX_OURS = 3

#: Fresh listings that must also lack a stored secret before it is destroyed.
CONFIRMING_READS = 2

SECRET = Kind(
    stored="secret",
    listed="credential",
    renew_before=lambda policy: policy.secret_renew_before,
    newest=latest_expiry,
    max_ours=MAX_OURS,
    confirm_reads=CONFIRMING_READS,
)

CERTIFICATE = Kind(
    stored="certificate",
    listed="key credential",
    renew_before=lambda policy: policy.client_certificate_renew_before,
    newest=latest_expiry,
    max_ours=MAX_OURS,
    confirm_reads=CONFIRMING_READS,
)

#: Most of our own federated credentials one application may hold at once:
#: the one in use and its replacement (Entra allows 20 of any owner).
MAX_FEDERATED_OURS = 2

FEDERATED = Kind(
    stored="federated credential",
    listed="federated credential",
    renew_before=lambda policy: timedelta(0),  # it never expires: never renewed for age
    newest=latest_accepted,
    max_ours=MAX_FEDERATED_OURS,
    confirm_reads=CONFIRMING_READS,
)

#: Each kind of integration credential as the shared life cycle sees it.
KINDS: Mapping[CredentialKind, Kind] = {
    CredentialKind.SECRET: SECRET,
    CredentialKind.CERTIFICATE: CERTIFICATE,
    CredentialKind.FEDERATED: FEDERATED,
}


@dataclass(frozen=True)
class FederatedTrust:
    """What a federated credential trusts: tokens of ``issuer`` (``iss``) for ``audience``."""

    issuer: str
    audience: str = ENTRA_AUDIENCE


def federated_listed(key_id: str, name: str) -> AzureCredential:
    """A federated credential as the life cycle's listing shows it.

    ``key_id`` is its Graph ``id``. Ours (``azsidecar-<intent>``) carry the
    display name :func:`sidecar.model.intent_of` reads back to the intent;
    anyone else's carry none, so reconciliation never touches them.
    """
    intent_id = intent_of_federated(name)
    shown = "" if intent_id is None else credential_display_name(intent_id)
    never = FEDERATED_NEVER_EXPIRES
    return AzureCredential(key_id=key_id, display_name=shown, start=never, end=never)


# The secret's names for the shared actions.
CreateSecret = Create
RemoveAzureCredential = RemoveFromAzure


@dataclass(frozen=True)
class CreateCertificate(Create):
    """Create a certificate credential: ``addKey`` with a proof signed by the key of
    stored version ``proof_version``, or, when None, PATCH of ``keyCredentials``."""

    proof_version: int | None = None


@dataclass(frozen=True)
class RemoveKeyCredential(RemoveFromAzure):
    """Remove a certificate credential: ``removeKey`` with a proof signed by the key
    of stored version ``proof_version``, or, when None, PATCH of ``keyCredentials``."""

    proof_version: int | None = None


@dataclass(frozen=True)
class CreateFederated(Create):
    """Create a federated identity credential trusting the configured issuer."""


@dataclass(frozen=True)
class RemoveFederated(RemoveFromAzure):
    """Remove the federated identity credential whose Graph ``id`` is ``key_id``."""


__all__ = [
    "CERTIFICATE",
    "CONFIRMING_READS",
    "FEDERATED",
    "KINDS",
    "MAX_FEDERATED_OURS",
    "MAX_OURS",
    "SECRET",
    "Action",
    "ClearIntent",
    "CreateCertificate",
    "CreateFederated",
    "CreateSecret",
    "DestroyStored",
    "FederatedTrust",
    "IntegrationState",
    "RemoveAzureCredential",
    "RemoveFederated",
    "RemoveKeyCredential",
    "federated_listed",
    "outdated_federated",
    "plan",
    "replan_at",
]


@dataclass(frozen=True)
class IntegrationState:
    """What a tick knows about one integration; a listing is None if Graph failed.

    ``stored`` holds the live versions of every kind, ``azure`` the
    application's client secrets, ``keys`` its certificate credentials and
    ``federated`` its federated credentials (:func:`federated_listed`),
    ``intents`` the pending intents of every kind, ``kind`` the kind the
    integration wants and ``probes`` the probe records readers see.
    ``trust`` is the configured issuer's (None: no ``[issuer]``) and
    ``trusts`` what each stored federated version trusts.
    """

    name: str
    stored: tuple[StoredCredential, ...]
    azure: tuple[AzureCredential, ...] | None
    intents: tuple[Intent, ...]
    kind: CredentialKind = CredentialKind.SECRET
    keys: tuple[AzureCredential, ...] | None = None
    probes: Mapping[int, ProbeRecord] = field(default_factory=dict)
    federated: tuple[AzureCredential, ...] | None = None
    trust: FederatedTrust | None = None
    trusts: Mapping[int, FederatedTrust] = field(default_factory=dict)


def outdated_federated(state: IntegrationState) -> frozenset[int]:
    """Stored federated versions whose trust is no longer the configured one.

    Only while the integration wants federated credentials and an issuer is
    configured; a version whose trust is unknown is taken as current.
    """
    if state.kind is not CredentialKind.FEDERATED or state.trust is None:
        return frozenset()
    return frozenset(
        c.version
        for c in state.stored
        if c.kind is CredentialKind.FEDERATED
        and state.trusts.get(c.version, state.trust) != state.trust
    )


def plan(state: IntegrationState, policy: TimingPolicy, now: datetime) -> list[Action]:
    """Per kind (secrets first): removals, then destroys, then cleared intents, then a creation."""
    switched = _switched(state, policy, now)
    actions: list[Action] = []
    for kind in CredentialKind:
        actions += _plan_kind(state, kind, switched, policy, now)
    return actions


def _plan_kind(
    state: IntegrationState,
    kind: CredentialKind,
    switched: bool,
    policy: TimingPolicy,
    now: datetime,
) -> list[Action]:
    mine = [c for c in state.stored if c.kind is kind]
    wanted = kind is state.kind
    retiring = [
        Retirement(
            c.version, f"{kind.noun} v{c.version} expired at {c.expires.isoformat()}", "expired"
        )
        for c in mine
        if c.expires <= now
    ]
    if not wanted and switched:
        retiring += [
            Retirement(
                c.version,
                f"{kind.noun} v{c.version} retired: {state.name} hands out {state.kind.noun}s now",
                f"retired: the integration switched to {state.kind.noun}s",
            )
            for c in mine
            if c.expires > now
        ]
    listings = {
        CredentialKind.SECRET: state.azure,
        CredentialKind.CERTIFICATE: state.keys,
        CredentialKind.FEDERATED: state.federated,
    }
    listing = listings[kind]
    outdated = outdated_federated(state) if kind is CredentialKind.FEDERATED else frozenset()
    held = tuple(
        # An outdated federated credential is shown expiring now: the life
        # cycle then creates its replacement as it renews any expiring credential.
        Held(
            c.version, c.key_id, c.intent_id, c.created, now if c.version in outdated else c.expires
        )
        for c in mine
    )
    current = [c for c in mine if c.version not in outdated]
    if outdated and _ready_for_margin(current, state, policy, now):
        retiring += [
            Retirement(
                c.version,
                f"{kind.noun} v{c.version} retired: it trusts an issuer or audience no longer"
                " configured",
                "retired: replaced by one trusting the configured issuer",
            )
            for c in mine
            if c.version in outdated and c.expires > now
        ]
    view = View(
        subject=state.name,
        held=held,
        azure=listing,
        intents=tuple(i for i in state.intents if i.kind == IntentKind(kind)),
        retiring=tuple(retiring),
        renew=wanted,
    )
    actions = lifecycle.plan(_capped(kind, mine, outdated, listing, policy, now), view, policy, now)
    if kind is CredentialKind.CERTIFICATE:
        return _with_proofs(actions, mine, listing, policy, now)
    if kind is CredentialKind.FEDERATED:
        return _as_federated(actions, outdated)
    return actions


def _capped(
    kind: CredentialKind,
    mine: Sequence[StoredCredential],
    outdated: frozenset[int],
    listing: tuple[AzureCredential, ...] | None,
    policy: TimingPolicy,
    now: datetime,
) -> Kind:
    """The kind, its cap lowered by the outdated credentials Azure may hold unseen.

    The life cycle counts toward ``max_ours`` the live versions and what the
    listing shows; an outdated federated credential is shown to it expiring
    now, so one the listing lacks (lag, or no listing) would not be counted,
    although Azure holds it until missing_grace says it is gone.
    """
    if not outdated or KINDS[kind].max_ours is None:
        return KINDS[kind]
    listed = None if listing is None else {a.key_id for a in listing}
    unseen = [
        c
        for c in mine
        if c.version in outdated
        and (listed is None or (c.key_id not in listed and now - c.created < policy.missing_grace))
    ]
    return replace(KINDS[kind], max_ours=(KINDS[kind].max_ours or 0) - len(unseen))


def _as_federated(actions: list[Action], outdated: frozenset[int]) -> list[Action]:
    """The shared actions under the federated kind's names, for its executor."""
    result: list[Action] = []
    for action in actions:
        match action:
            case RemoveFromAzure(key_id=key_id, reason=reason):
                result.append(RemoveFederated(key_id, reason))
            case Create(reason=reason):
                if outdated:
                    reason = (
                        f"federated credential v{min(outdated)} trusts an issuer or audience"
                        " no longer configured"
                    )
                result.append(CreateFederated(reason))
            case _:
                result.append(action)
    return result


def _ready_for_margin(
    credentials: Sequence[StoredCredential],
    state: IntegrationState,
    policy: TimingPolicy,
    now: datetime,
) -> bool:
    """Whether ``credentials`` have had a ready one for ``ready_safety_margin``."""
    if not credentials:
        return False
    return all(
        isinstance(choose_ready(credentials, at, policy, state.probes), Ready)
        for at in (now, now - policy.ready_safety_margin)
    )


def _switched(state: IntegrationState, policy: TimingPolicy, now: datetime) -> bool:
    """Whether the wanted kind has had a ready credential for ``ready_safety_margin``."""
    wanted = [c for c in state.stored if c.kind is state.kind]
    return _ready_for_margin(wanted, state, policy, now)


def _with_proofs(
    actions: list[Action],
    certificates: Sequence[StoredCredential],
    listing: tuple[AzureCredential, ...] | None,
    policy: TimingPolicy,
    now: datetime,
) -> list[Action]:
    """The certificate's actions, each naming the stored key that proves it (module docstring).

    A key can prove an action only while the application still has it: a
    removal is proven by the key itself if it is ours and valid, else by a
    valid key of ours that no earlier action removes (one this plan keeps
    first); a creation, which comes last, only by a key this plan keeps.
    """
    listed = None if listing is None else {a.key_id for a in listing}
    valid = [c for c in certificates if c.created <= now < c.expires]
    removed_at = {a.key_id: i for i, a in enumerate(actions) if isinstance(a, RemoveFromAzure)}
    destroyed = {a.version for a in actions if isinstance(a, DestroyStored)}
    never = len(actions)

    def prover(at: int) -> int | None:
        usable = [c for c in valid if removed_at.get(c.key_id, never + 1) > at]
        if at == never:
            usable = [c for c in usable if c.version not in destroyed]
        best = max(
            usable,
            key=lambda c: (
                c.key_id not in removed_at,
                listed is None or c.key_id in listed,
                c.created + policy.propagation_delay <= now,
                c.expires,
                c.created,
                c.version,
            ),
            default=None,
        )
        return None if best is None else best.version

    by_key = {c.key_id: c.version for c in valid}
    result: list[Action] = []
    for i, action in enumerate(actions):
        match action:
            case RemoveFromAzure(key_id=key_id, reason=reason):
                proof = by_key.get(key_id)
                result.append(RemoveKeyCredential(key_id, reason, proof or prover(i)))
            case Create(reason=reason):
                result.append(CreateCertificate(reason, prover(never)))
            case _:
                result.append(action)
    return result


def replan_at(state: IntegrationState, policy: TimingPolicy, now: datetime) -> datetime | None:
    """The next instant at which :func:`plan` could decide differently on the same state.

    A daemon that wakes then as well as every ``tick`` retries a crashed
    renewal as soon as its intent times out, instead of a whole tick later,
    and retires a kind switched away from as soon as it may.
    """
    moments = [i.created + policy.intent_timeout for i in state.intents]
    outdated = outdated_federated(state)
    switching = any(c.kind is not state.kind for c in state.stored) or bool(outdated)
    for c in state.stored:
        renew = KINDS[c.kind].renew_before(policy)
        if c.expires < FEDERATED_NEVER_EXPIRES:
            moments += [c.expires, c.expires - renew]
        moments.append(c.created + policy.missing_grace)
        if switching and c.kind is state.kind and c.version not in outdated:
            moments.append(c.created + policy.propagation_delay + policy.ready_safety_margin)
    return min((m for m in moments if m > now), default=None)
