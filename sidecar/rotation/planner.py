"""What to do next for one integration's client secrets, decided without I/O.

The client secret is one kind of the shared credential life cycle
(:mod:`sidecar.lifecycle`): its rules of reconciliation and renewal are
written there once. What is the secret's own:

* an expired secret is retired: removed from the application and its KV
  version destroyed;
* renewal is judged by the secret that expires last, ``secret_renew_before``
  ahead of its expiry;
* Azure never holds more than :data:`MAX_OURS` of our secrets, counting ones
  an unresolved intent may have made unseen;
* a secret the listing lacks is destroyed only once :data:`CONFIRMING_READS`
  fresh listings lack it too (a keep-alive connection stays on one replica,
  which may lag far behind).

The executor (``rotation/run.py``) applies the returned actions in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sidecar.lifecycle import plan as lifecycle
from sidecar.lifecycle.actions import Action, ClearIntent, Create, DestroyStored, RemoveFromAzure
from sidecar.lifecycle.kind import Held, Kind, Retirement, View, latest_expiry
from sidecar.model import AzureCredential, Intent, StoredCredential
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

# The secret's names for the shared actions.
CreateSecret = Create
RemoveAzureCredential = RemoveFromAzure

__all__ = [
    "CONFIRMING_READS",
    "MAX_OURS",
    "SECRET",
    "Action",
    "ClearIntent",
    "CreateSecret",
    "DestroyStored",
    "IntegrationState",
    "RemoveAzureCredential",
    "plan",
    "replan_at",
]


@dataclass(frozen=True)
class IntegrationState:
    """What a tick knows about one integration; ``azure`` is None if Graph failed."""

    name: str
    stored: tuple[StoredCredential, ...]
    azure: tuple[AzureCredential, ...] | None
    intents: tuple[Intent, ...]


def plan(state: IntegrationState, policy: TimingPolicy, now: datetime) -> list[Action]:
    """Removals, then destroys, then cleared intents, then at most one creation."""
    view = View(
        subject=state.name,
        held=tuple(
            Held(c.version, c.key_id, c.intent_id, c.created, c.expires) for c in state.stored
        ),
        azure=state.azure,
        intents=state.intents,
        retiring=tuple(
            Retirement(
                c.version, f"secret v{c.version} expired at {c.expires.isoformat()}", "expired"
            )
            for c in state.stored
            if c.expires <= now
        ),
    )
    return lifecycle.plan(SECRET, view, policy, now)


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
