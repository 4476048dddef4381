"""How a credential kind shows itself to the shared life cycle.

A kind's planner translates its own records into these: each stored version
as a :class:`Held`, the application's listing as it is (anything with a key
id and a display name), and the versions its own rules retire as
:class:`Retirement` rows. Its :class:`Kind` says the rest: the words its
reasons use, when it renews, and how careful a destroy must be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sidecar.model import Intent
from sidecar.timing import TimingPolicy


class Listed(Protocol):
    """A credential as Graph lists it on the application."""

    @property
    def key_id(self) -> str: ...

    @property
    def display_name(self) -> str: ...


@dataclass(frozen=True)
class Held:
    """One stored version as the life cycle sees it; what it holds stays with its kind.

    ``key_id`` is the credential's key id in Azure as matched against the
    listing ("" when not known); ``accepted`` is when Azure accepted it, from
    which the missing grace counts.
    """

    version: int
    key_id: str
    intent_id: str
    accepted: datetime
    expires: datetime


@dataclass(frozen=True)
class Retirement:
    """A stored version its kind's rules retire: its key is removed and its version destroyed."""

    version: int
    reason: str
    destroy_reason: str


@dataclass(frozen=True)
class View:
    """What a tick knows of one kind's credentials; ``azure`` is None if Graph failed.

    ``keep`` names versions in use, which reconciliation never destroys;
    ``renew`` False means no new credential of the kind is wanted (an
    integration switched to another kind), only reconciliation.
    """

    subject: str
    held: tuple[Held, ...]
    azure: tuple[Listed, ...] | None
    intents: tuple[Intent, ...]
    retiring: tuple[Retirement, ...] = ()
    keep: frozenset[int] = frozenset()
    renew: bool = True


def latest_expiry(held: Sequence[Held]) -> Held | None:
    """The version that expires last (ties: the later accepted, then the higher version)."""
    return max(held, key=lambda h: (h.expires, h.accepted, h.version), default=None)


def latest_accepted(held: Sequence[Held]) -> Held | None:
    """The version Azure accepted last (ties: the higher version)."""
    return max(held, key=lambda h: (h.accepted, h.version), default=None)


@dataclass(frozen=True)
class Kind:
    """What sets one credential kind's life cycle apart from another's.

    ``stored`` and ``listed`` name the credential as Vault holds it and as
    the application lists it ("secret" and "credential"), for reasons.
    ``renew_before`` picks the kind's renewal window from the policy, and
    ``newest`` the version a renewal is judged by. ``max_ours``, if set, caps
    how many of ours Azure may hold after a creation; ``confirm_reads`` is how
    many fresh listings must also lack a stored credential before its version
    is destroyed as removed outside us.
    """

    stored: str
    listed: str
    renew_before: Callable[[TimingPolicy], timedelta]
    newest: Callable[[Sequence[Held]], Held | None]
    max_ours: int | None = None
    confirm_reads: int = 0
