"""Clocks: the only place the package reads the time.

Decisions take ``now`` as an argument; whoever drives them holds a
:class:`Clock`. Production uses :class:`SystemClock`; the demo and long
end-to-end runs use :class:`AcceleratedClock` so days pass in minutes while
several processes still agree on the time; simulations use
:class:`ManualClock`, whose ``sleep`` returns at once after moving time on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


def require_utc(value: datetime, what: str = "datetime") -> datetime:
    """Return ``value`` in UTC, refusing naive datetimes.

    A naive datetime would silently compare as local time, which is how
    expiry arithmetic goes wrong by hours.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class Clock(Protocol):
    """A source of aware UTC time and a way to wait in that time."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's own time."""


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class AcceleratedClock:
    """Virtual time running ``factor`` times faster than real time.

    The three numbers fully determine the clock, so another process given
    the same ``origin_virtual``, ``factor`` and ``origin_real`` (an epoch
    timestamp, e.g. passed in the environment) reads the same virtual time.
    """

    def __init__(
        self, origin_virtual: datetime, factor: float, origin_real: float | None = None
    ) -> None:
        if not factor > 0:
            raise ValueError(f"clock factor must be > 0, got {factor}")
        self.origin_virtual = require_utc(origin_virtual, "origin_virtual")
        self.factor = float(factor)
        self.origin_real = time.time() if origin_real is None else float(origin_real)

    def now(self) -> datetime:
        return self.at(time.time())

    def at(self, wall: datetime | float) -> datetime:
        """The virtual time when the wall clock read ``wall`` (aware datetime or epoch seconds).

        For times another system stamped with the wall clock (Vault's Transit
        key versions), to compare them with this clock's ``now``.
        """
        stamp = wall if isinstance(wall, float | int) else require_utc(wall, "wall").timestamp()
        return self.origin_virtual + timedelta(seconds=(stamp - self.origin_real) * self.factor)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)


class ManualClock:
    """Time that moves only when told to; ``sleep`` moves it and returns at once."""

    def __init__(self, start: datetime) -> None:
        self._now = require_utc(start, "start")

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move time forward; returns the new ``now``."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"a clock cannot go back: advance({step})")
        self._now += step
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``, which must not be in this clock's past.

        Leases and intents compare against earlier readings; a clock that
        went back would make them look younger than they are.
        """
        target = require_utc(when, "when")
        if target < self._now:
            raise ValueError(
                f"a clock cannot go back: set({target.isoformat()}) < {self._now.isoformat()}"
            )
        self._now = target
