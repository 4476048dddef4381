"""Graph throttling: a token bucket per (application, tenant, reads|writes), in emulated time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ThrottleConfig:
    """``writes`` (or ``reads``) requests per ``per_seconds``; None means unlimited."""

    writes: float | None = None
    reads: float | None = None
    per_seconds: float = 150.0

    @property
    def enabled(self) -> bool:
        return self.writes is not None or self.reads is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "writes": self.writes,
            "reads": self.reads,
            "per_seconds": self.per_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThrottleConfig:
        if data.get("enabled") is False:
            return cls()
        per = float(data.get("per_seconds", 150.0))
        if per <= 0:
            raise ValueError("per_seconds must be positive")
        writes, reads = data.get("writes"), data.get("reads")
        for name, value in (("writes", writes), ("reads", reads)):
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"{name} must be a positive number or null")
        return cls(
            writes=None if writes is None else float(writes),
            reads=None if reads is None else float(reads),
            per_seconds=per,
        )


class Throttle:
    """Not thread-safe on its own; the emulator calls it under its state lock."""

    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def configure(self, config: ThrottleConfig) -> None:
        self.config = config
        self._buckets.clear()

    def take(self, app_id: str, tenant_id: str, kind: str, now: float) -> int | None:
        """Spend one request; returns None if allowed, else Retry-After seconds (>= 1)."""
        capacity = self.config.writes if kind == "writes" else self.config.reads
        if capacity is None:
            return None
        rate = capacity / self.config.per_seconds
        key = (app_id, tenant_id, kind)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))
