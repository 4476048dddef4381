"""Pure: when to renew a Vault token, when to log in again, when to report it.

Vault tokens live in real time. A token has a TTL that ``renew-self`` extends,
up to a maximum (the role's ``token_max_ttl``, the mount's, or an explicit one)
that no renewal passes; past it only a new login helps. The rule here:

- renew at about two thirds of the TTL, asking for the token's creation TTL again;
- when a renewal granted less than asked, the maximum is near: log in again at once;
- a token that cannot be renewed (or no longer can) and cannot be replaced by a
  login (a plain token) is *reported* from two thirds of its TTL on, so an
  operator hears of it before requests start failing;
- a token without a TTL (root, or ``ttl = 0``) needs nothing.

Nothing here reads a clock or calls Vault; :mod:`sidecar.vault_login` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

#: Fraction of the TTL after which a token is renewed (or replaced).
RENEW_AT = 2 / 3
#: A renewal that granted this much less than asked hit the maximum TTL.
CAP_TOLERANCE = timedelta(seconds=1)
#: How long a token without expiry waits before it is looked at again.
IDLE = timedelta(minutes=5)


class Step(Enum):
    WAIT = "wait"  # nothing to do before ``at``
    RENEW = "renew"  # renew-self
    LOGIN = "login"  # log in again (AppRole, JWT) or adopt a rewritten token file
    EXPIRING = "expiring"  # cannot be renewed or replaced: report it


@dataclass(frozen=True)
class TokenView:
    """What is known of the current token, as of ``seen_at``."""

    seen_at: datetime
    ttl: timedelta  # left at ``seen_at``; zero means it never expires
    renewable: bool
    capped: bool = False  # the last renewal granted less than it asked for

    @property
    def expires_at(self) -> datetime | None:
        return None if self.ttl <= timedelta(0) else self.seen_at + self.ttl

    @property
    def due_at(self) -> datetime:
        return self.seen_at + self.ttl * RENEW_AT


@dataclass(frozen=True)
class Decision:
    step: Step
    at: datetime  # when the step is due (it is due now when ``at <= now``)
    reason: str


def was_capped(asked: timedelta, granted: timedelta) -> bool:
    """Did a renewal hit the maximum TTL (granted noticeably less than asked)?"""
    return asked > timedelta(0) and granted + CAP_TOLERANCE < asked


def decide(view: TokenView, now: datetime, can_login: bool) -> Decision:
    """The next thing to do for the token, and when."""
    expires = view.expires_at
    if expires is None:
        return Decision(Step.WAIT, now + IDLE, "the token does not expire")
    if now >= expires:
        if can_login:
            return Decision(Step.LOGIN, now, "the token has expired")
        return Decision(Step.EXPIRING, now, f"the token expired at {_iso(expires)}")
    if view.renewable and not view.capped:
        return Decision(Step.RENEW, view.due_at, "two thirds of the TTL have passed")
    why = "its maximum TTL is reached" if view.capped else "it is not renewable"
    if can_login:
        at = now if view.capped else view.due_at
        return Decision(Step.LOGIN, at, f"the token cannot be renewed further: {why}")
    return Decision(
        Step.EXPIRING,
        view.due_at,
        f"the token expires at {_iso(expires)} and cannot be renewed: {why};"
        " give a new token (rewrite the token file) or use AppRole / JWT login",
    )


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")
