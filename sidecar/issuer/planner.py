"""Which signing-key version signs, which are published, when to rotate and retire.

The issuer's signing key is one Transit key; each rotation adds a version.
The JWKS is served from Transit's current key set, so a version is published
from the moment Transit created it, and Transit's ``creation_time`` of every
version is all this planner needs: no record of our own, nothing to lose in
a crash (see :mod:`sidecar.issuer.signing` for why that holds, and where it
does not: static hosting).

The rules, with ``T = token_lifetime + clock_skew``:

* **Publish ahead.** A version may sign only once it has been published for
  ``publish_ahead``: a verifier that cached the JWKS just before the version
  appeared has refreshed it by then. The newest such version signs; with none,
  nothing signs and :attr:`KeyPlan.ready_at` says when one will.
* **Stay published while its tokens live.** A version stops signing when a
  newer one becomes eligible (at ``created(newer) + publish_ahead``); the
  tokens it signed last expire ``T`` later, and only then it is retired.
  Retired versions are always the oldest ones (a prefix), so retirement is
  one number, :attr:`KeyPlan.retire_below` (Transit's
  ``min_decryption_version``, which hides older versions from the key read).
* **Rotate.** A new version is due ``rotation_period`` after the newest one
  was created, unless the JWKS would then exceed ``max_published`` keys.

What is known about the verifier's key cache (the default ``publish_ahead``):
Microsoft does not document how long Entra ID caches an external issuer's
JWKS. Its guidance for validators of its own tokens is a key cache with a
24-hour time-to-live, refreshed hourly and on an unknown ``kid`` at most
every 5 minutes (learn.microsoft.com/entra/identity-platform/signing-key-rollover,
"Keys metadata caching algorithm"); Azure's workload identity guide for
self-managed issuers publishes old and new key side by side across a
rotation (azure.github.io/azure-workload-identity, "Service Account Key
Rotation"). The default is therefore 24 hours, configurable. Entra stores
only the first 100 keys of an external issuer's JWKS
(learn.microsoft.com/entra/workload-id/workload-identity-federation), hence
``max_published``; it supports only RS256 (".../workload-identity-federation-considerations").
The token lifetime defaults to 10 minutes, what GitHub Actions' tokens live;
Entra refuses an assertion outside ``nbf``..``exp`` (AADSTS700024).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sidecar.clock import require_utc
from sidecar.errors import ConfigError

#: Entra ID keeps only the first 100 keys of an external issuer's JWKS.
ENTRA_MAX_KEYS = 100


@dataclass(frozen=True)
class IssuerPolicy:
    """The issuer's durations; see the module docstring for the defaults' sources."""

    publish_ahead: timedelta = timedelta(hours=24)
    token_lifetime: timedelta = timedelta(minutes=10)
    clock_skew: timedelta = timedelta(minutes=5)
    rotation_period: timedelta = timedelta(days=30)
    max_published: int = ENTRA_MAX_KEYS

    def __post_init__(self) -> None:
        zero = timedelta(0)
        if self.publish_ahead < zero:
            raise ConfigError("issuer.publish_ahead", "must not be negative")
        if self.token_lifetime <= zero:
            raise ConfigError("issuer.token_lifetime", "must be positive")
        if self.clock_skew < zero:
            raise ConfigError("issuer.clock_skew", "must not be negative")
        if self.rotation_period <= self.publish_ahead:
            raise ConfigError(
                "issuer.rotation_period",
                "must be longer than issuer.publish_ahead, or every new version is "
                "replaced before it signs",
            )
        if not 2 <= self.max_published <= ENTRA_MAX_KEYS:
            raise ConfigError(
                "issuer.max_published",
                f"must be 2..{ENTRA_MAX_KEYS} (a rotation publishes two keys; Entra reads 100)",
            )

    @property
    def token_tail(self) -> timedelta:
        """How long a version stays published after it signed last."""
        return self.token_lifetime + self.clock_skew


@dataclass(frozen=True)
class KeyVersion:
    """One version of the Transit key: its number and when Transit created it."""

    version: int
    created: datetime


@dataclass(frozen=True)
class KeyPlan:
    """What holds at ``now``.

    ``next_change`` is when the plan next differs by time alone (a version
    becomes eligible or retires, or a rotation falls due); ``next_retirement``
    when the JWKS next loses a version; ``rotation_due`` when the newest
    version is ``rotation_period`` old (None without a key).
    """

    signer: int | None
    ready_at: datetime | None
    published: tuple[int, ...]
    retire_below: int | None
    rotate: bool
    next_change: datetime | None
    next_retirement: datetime | None = None
    rotation_due: datetime | None = None


def eligible_at(version: KeyVersion, policy: IssuerPolicy) -> datetime:
    """When ``version`` has been published for ``publish_ahead`` and may sign."""
    return version.created + policy.publish_ahead


def retires_at(
    version: KeyVersion, newer: Iterable[KeyVersion], policy: IssuerPolicy
) -> datetime | None:
    """When every token ``version`` can have signed has expired; None while nothing replaces it.

    A version signs until the first newer version becomes eligible; its last
    token lives ``token_tail`` longer.
    """
    successors = [eligible_at(v, policy) for v in newer if v.version > version.version]
    if not successors:
        return None
    return min(successors) + policy.token_tail


def plan(versions: Iterable[KeyVersion], policy: IssuerPolicy, now: datetime) -> KeyPlan:
    """The signer, the published versions, retirement and rotation at ``now``.

    ``versions`` are the versions Transit still returns (retired ones already
    hidden are simply absent, which changes nothing for the others). With no
    version at all the key is missing: nothing signs and a key is due.
    """
    now = require_utc(now, "now")
    ordered = sorted(versions, key=lambda v: v.version)
    if not ordered:
        return KeyPlan(None, None, (), None, rotate=True, next_change=None)
    eligible = [v for v in ordered if eligible_at(v, policy) <= now]
    signer = eligible[-1].version if eligible else None
    ready_at = None if eligible else min(eligible_at(v, policy) for v in ordered)

    published: list[int] = []
    retired: list[int] = []
    changes: list[datetime] = []
    retirements: list[datetime] = []
    for index, version in enumerate(ordered):
        until = retires_at(version, ordered[index + 1 :], policy)
        # Only a prefix retires (one min_decryption_version): a version after a
        # published one stays, even were Transit's creation times out of order.
        if until is not None and until <= now and not published:
            retired.append(version.version)
        else:
            published.append(version.version)
            if until is not None and until > now:
                retirements.append(until)
        if eligible_at(version, policy) > now:
            changes.append(eligible_at(version, policy))
    retire_below = published[0] if retired else None

    newest = ordered[-1]
    due = newest.created + policy.rotation_period
    room = len(published) < policy.max_published
    rotate = due <= now and room
    if due > now:
        changes.append(due)
    changes.extend(retirements)
    return KeyPlan(
        signer=signer,
        ready_at=ready_at,
        published=tuple(published),
        retire_below=retire_below,
        rotate=rotate,
        next_change=min(changes) if changes else None,
        next_retirement=min(retirements) if retirements else None,
        rotation_due=due,
    )
