"""The planner every credential kind shares: reconcile, then perhaps renew.

A kind's planner builds a :class:`~sidecar.lifecycle.kind.View` of one tick
and hands it here with its :class:`~sidecar.lifecycle.kind.Kind`. The plan
is the reconciliation's actions (:mod:`sidecar.lifecycle.reconcile`), then
at most one creation, when:

* the view wants the kind renewed (:attr:`View.renew`);
* no version is live once this plan's destroys are done, or the newest
  (:attr:`Kind.newest`) has at most the kind's ``renew_before`` left;
* no intent younger than ``intent_timeout`` is in flight (one not cleared
  by this plan); and
* with :attr:`Kind.max_ours` set, Azure could then hold no more than that
  many of ours, counting every unresolved intent as one it may hold.

Without a listing there is no reconciliation against Azure, but the planner
still renews.
"""

from __future__ import annotations

from datetime import datetime

from sidecar.lifecycle.actions import Action, Create
from sidecar.lifecycle.kind import Kind, View
from sidecar.lifecycle.reconcile import Draft, reconcile
from sidecar.model import intent_of
from sidecar.timing import TimingPolicy


def plan(kind: Kind, view: View, policy: TimingPolicy, now: datetime) -> list[Action]:
    """Removals, then destroys, then cleared intents, then at most one creation."""
    draft = reconcile(kind, view, policy, now)
    actions = draft.actions()
    create = _renewal(kind, view, policy, now, draft) if view.renew else None
    if create is not None:
        actions.append(create)
    return actions


def _renewal(
    kind: Kind, view: View, policy: TimingPolicy, now: datetime, draft: Draft
) -> Create | None:
    live = [h for h in view.held if h.version not in draft.destroys and now < h.expires]
    newest = kind.newest(live)
    if newest is not None and now < newest.expires - kind.renew_before(policy):
        return None
    open_intents = [i for i in view.intents if i.intent_id not in draft.clears]
    if any(now - i.created < policy.intent_timeout for i in open_intents):
        return None
    if kind.max_ours is not None:
        held = {h.key_id for h in live}
        if view.azure is not None:
            held |= {a.key_id for a in view.azure if intent_of(a.display_name) is not None}
        held -= draft.removals.keys()
        if len(held) + len(open_intents) + 1 > kind.max_ours:
            return None
    if newest is None:
        return Create(f"{view.subject} has no live {kind.stored}")
    return Create(f"newest {kind.stored} v{newest.version} expires {newest.expires.isoformat()}")
