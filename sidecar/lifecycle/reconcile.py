"""Our credentials in Azure against what Vault holds, for every kind, decided without I/O.

Every Azure credential we create is named after a write-ahead intent
(:func:`sidecar.model.credential_display_name`), so a crash between any two
steps of a creation leaves something these rules recognise and repair on a
later tick. The rules, each keyed by its target so that two naming the same
one agree (the first reason stands):

* Retired versions (expired, superseded: the kind decides): remove the key
  when the listing shows it or is unavailable, and destroy the version. A
  retired version whose key is unknown waits for a listing, so the key is
  never lost from sight.
* An intent whose credential is stored: clear it (a crash after the store).

With a listing only:

* Our credential on the application that Vault does not hold: its secret
  part is lost, remove it (an orphan) and clear its intent if pending;
  unless the intent is younger than ``intent_timeout``, when its writer may
  still store it.
* An intent older than ``intent_timeout`` with no credential visible: clear
  it (a crash before or during the create, or the call never landed).
* A stored version, not in use, whose credential the listing lacks although
  Azure accepted it ``missing_grace`` ago (replication lag cannot explain
  it): someone removed it in Azure, destroy the version, after
  :attr:`Kind.confirm_reads` fresh listings agree (:func:`confirm_destroy`).

Credentials whose display name is not ours belong to someone else and are
never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from sidecar.lifecycle.actions import Action, ClearIntent, DestroyStored, RemoveFromAzure
from sidecar.lifecycle.kind import Kind, View
from sidecar.model import intent_of
from sidecar.timing import TimingPolicy


@dataclass
class Draft:
    """The plan being built; keyed so that two rules naming the same target agree."""

    removals: dict[str, str] = field(default_factory=dict)
    destroys: dict[int, DestroyStored] = field(default_factory=dict)
    clears: dict[str, str] = field(default_factory=dict)

    def actions(self) -> list[Action]:
        """Removals, then destroys, then cleared intents, each in the order of its key."""
        actions: list[Action] = [
            RemoveFromAzure(k, self.removals[k]) for k in sorted(self.removals)
        ]
        actions += [self.destroys[v] for v in sorted(self.destroys)]
        actions += [ClearIntent(i, self.clears[i]) for i in sorted(self.clears)]
        return actions


def reconcile(kind: Kind, view: View, policy: TimingPolicy, now: datetime) -> Draft:
    """Every rule of the module docstring, in its order."""
    draft = Draft()
    _retire(view, draft)
    stored_intents = {h.intent_id for h in view.held}
    for i in view.intents:
        if i.intent_id in stored_intents:
            draft.clears[i.intent_id] = f"its {kind.stored} is stored; the clear was interrupted"
    if view.azure is not None:
        _against_listing(kind, view, policy, now, draft)
    return draft


def _retire(view: View, draft: Draft) -> None:
    by_version = {h.version: h for h in view.held}
    listed = None if view.azure is None else {a.key_id for a in view.azure}
    for r in view.retiring:
        key_id = by_version[r.version].key_id
        if listed is None and not key_id:
            continue  # which key is its? wait for a listing before forgetting it
        if listed is None or key_id in listed:
            draft.removals[key_id] = r.reason
        draft.destroys[r.version] = DestroyStored(r.version, key_id, r.destroy_reason)


def _against_listing(
    kind: Kind, view: View, policy: TimingPolicy, now: datetime, draft: Draft
) -> None:
    azure = view.azure or ()
    stored_keys = {h.key_id for h in view.held}
    pending = {i.intent_id for i in view.intents}
    in_flight = {i.intent_id for i in view.intents if now - i.created < policy.intent_timeout}
    for a in azure:
        intent_id = intent_of(a.display_name)
        if intent_id is None or a.key_id in stored_keys or intent_id in in_flight:
            continue
        draft.removals.setdefault(a.key_id, f"orphan of intent {intent_id}: Vault never stored it")
        if intent_id in pending:
            draft.clears.setdefault(intent_id, f"its {kind.listed} is orphaned and being removed")
    visible = {intent_of(a.display_name) for a in azure}
    for i in view.intents:
        if i.intent_id not in visible and now - i.created >= policy.intent_timeout:
            draft.clears.setdefault(i.intent_id, f"no {kind.listed} appeared in Azure; abandoned")
    listed = {a.key_id for a in azure}
    for h in view.held:
        if h.version in view.keep or h.key_id in listed or h.version in draft.destroys:
            continue
        if now - h.accepted >= policy.missing_grace:
            draft.destroys[h.version] = DestroyStored(
                h.version,
                h.key_id,
                "no longer on the application; removed outside us",
                kind.confirm_reads,
            )


class Verdict(Enum):
    DESTROY = "destroy"
    KEEP = "keep"
    READ_AGAIN = "read again"


def confirm_destroy(
    action: DestroyStored,
    expires: datetime | None,
    now: datetime,
    reads: Sequence[frozenset[str] | None],
) -> Verdict:
    """Whether a destroy that waits on confirming reads goes ahead, on what was read since.

    ``expires`` is the version's expiry as Vault holds it now (None when it
    no longer does) and ``reads`` the key ids each confirming listing showed,
    None for one that failed. A version no longer live has nothing left to
    protect. A listing that shows the key proves the planner's was stale, and
    one that failed cannot confirm: either keeps the version. The first guard
    is time (the destroy is only proposed after ``missing_grace``); these
    reads are a cheap second one.
    """
    if expires is None or expires <= now:
        return Verdict.DESTROY
    for listing in reads:
        if listing is None or action.key_id in listing:
            return Verdict.KEEP
    return Verdict.DESTROY if len(reads) >= action.confirm_reads else Verdict.READ_AGAIN
