"""Directory replicas: lag distributions and a versioned store read per replica.

Every object keeps a short list of versions; each version records, per
replica, the emulated time from which that replica sees it. A write costs one
small record, never a copy of the whole directory; a replica's view of an
object is the newest version visible to it at ``now``. Replicas apply an
object's writes in order, so a replica never sees an older version after a
newer one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

MAX_LAG_SECONDS = 600.0


@dataclass(frozen=True)
class LagProfile:
    """How long a write takes to reach each replica other than the one that took it.

    A fraction ``fast_fraction`` of writes arrive within ``fast_max`` seconds
    (skewed towards zero); the rest spread evenly up to ``tail_max``. Replicas
    listed in ``stuck`` always lag by that many seconds instead.
    """

    name: str = "default"
    fast_fraction: float = 0.85
    fast_max: float = 60.0
    tail_max: float = 480.0
    stuck: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fast_fraction <= 1.0:
            raise ValueError("fast_fraction must be between 0 and 1")
        if self.fast_max < 0 or self.tail_max < self.fast_max:
            raise ValueError("lag bounds must satisfy 0 <= fast_max <= tail_max")

    @property
    def max_lag(self) -> float:
        """The longest any write can take to reach every replica."""
        return max([self.tail_max, *self.stuck.values()])

    def sample(self, rng: random.Random, replica: int) -> float:
        if replica in self.stuck:
            return self.stuck[replica]
        if self.tail_max == 0:
            return 0.0
        if rng.random() < self.fast_fraction:
            return rng.triangular(0.0, self.fast_max, 0.0)
        return rng.uniform(self.fast_max, self.tail_max)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fast_fraction": self.fast_fraction,
            "fast_max": self.fast_max,
            "tail_max": self.tail_max,
            "stuck": {str(k): v for k, v in self.stuck.items()},
            "max_lag": self.max_lag,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LagProfile:
        """A named profile (``{"name": "heavy"}``), optionally overridden field by field."""
        base = named_profile(str(data.get("name", "custom"))) if "name" in data else None
        start = base or LagProfile(name="custom")
        stuck_raw = data.get("stuck", start.stuck)
        if not isinstance(stuck_raw, dict):
            raise ValueError("stuck must map replica index to lag seconds")
        return LagProfile(
            name=str(data.get("name", "custom")),
            fast_fraction=float(data.get("fast_fraction", start.fast_fraction)),
            fast_max=float(data.get("fast_max", start.fast_max)),
            tail_max=float(data.get("tail_max", start.tail_max)),
            stuck={int(k): float(v) for k, v in stuck_raw.items()},
        )


PROFILES: dict[str, LagProfile] = {
    "none": LagProfile(name="none", fast_fraction=1.0, fast_max=0.0, tail_max=0.0),
    "default": LagProfile(name="default"),
    "heavy": LagProfile(name="heavy", fast_fraction=0.5, fast_max=90.0, tail_max=540.0),
    "stuck-replica": LagProfile(name="stuck-replica", stuck={-1: 1800.0}),
    # Longer than any delay secret_renew_before leaves room for: the previous
    # secret must carry the runs (verified readiness, issue 20).
    "stuck-2h": LagProfile(name="stuck-2h", stuck={-1: 7200.0}),
}


def named_profile(name: str) -> LagProfile | None:
    return PROFILES.get(name)


def resolve_stuck(profile: LagProfile, replicas: int) -> LagProfile:
    """Turn negative replica indexes (``-1`` = last replica) into real ones."""
    if not any(k < 0 for k in profile.stuck):
        return profile
    stuck = {(k % replicas): v for k, v in profile.stuck.items()}
    return LagProfile(
        profile.name, profile.fast_fraction, profile.fast_max, profile.tail_max, stuck
    )


V = TypeVar("V")


@dataclass
class Version(Generic[V]):
    """One write: its value (None = deleted) and when each replica starts seeing it."""

    visible_at: list[float]
    value: V | None


class ReplicatedStore(Generic[V]):
    """Objects keyed by ``str``, each a list of versions. Not thread-safe on its own."""

    def __init__(self) -> None:
        self._versions: dict[str, list[Version[V]]] = {}

    def __len__(self) -> int:
        return len(self._versions)

    def write(self, key: str, value: V | None, visible_at: list[float], now: float) -> None:
        """Record a write at ``now``; ``visible_at`` is clamped so replicas keep the order."""
        history = self._versions.setdefault(key, [])
        if history:
            last = history[-1].visible_at
            if len(last) == len(visible_at):
                visible_at = [max(a, b) for a, b in zip(visible_at, last, strict=True)]
        history.append(Version(visible_at, value))
        self._prune(history, now)

    @staticmethod
    def _prune(history: list[Version[V]], now: float) -> None:
        # Versions older than the newest one every replica already sees are unreachable.
        for index in range(len(history) - 1, 0, -1):
            if max(history[index].visible_at) <= now:
                del history[:index]
                return

    def latest(self, key: str) -> V | None:
        """The authoritative value: the last write, whatever the replicas see."""
        history = self._versions.get(key)
        return history[-1].value if history else None

    def read(self, key: str, replica: int, now: float) -> V | None:
        history = self._versions.get(key)
        if not history:
            return None
        for version in reversed(history):
            seen = version.visible_at
            when = seen[replica] if replica < len(seen) else max(seen)
            if when <= now:
                return version.value
        return None

    def object_keys(self) -> Iterator[str]:
        return iter(list(self._versions))

    def history(self, key: str) -> list[Version[V]]:
        return list(self._versions.get(key, []))

    def set_history(self, key: str, history: list[Version[V]]) -> None:
        self._versions[key] = history

    def clear(self) -> None:
        self._versions.clear()
