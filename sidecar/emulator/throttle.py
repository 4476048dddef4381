"""Graph throttling: token buckets in emulated time, answered as Microsoft Graph answers.

Microsoft documents the identity-and-access limits as token buckets at
several scopes at once, the first one spent throttling the request: per
application+tenant pair, per application, and a write quota per *tenant*
across all applications ("Microsoft Graph service-specific throttling
limits", learn.microsoft.com/graph/throttling-limits, "Identity and access
service limits"). A throttled answer is 429 with ``Retry-After`` and, on
identity requests, ``x-ms-throttle-scope``
(``<Scope>/<Limit>/<ApplicationId>/<TenantId>``, Scope one of
``Tenant_Application``, ``Tenant``, ``Application``; Limit ``Read``,
``Write`` or ``ReadWrite``) and ``x-ms-throttle-information`` (a reason such as
``WriteLimitExceeded`` or ``ResourceUnitLimitExceeded``).
"""

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
    #: Writes per ``per_seconds`` for one tenant across every application (None: unlimited).
    tenant_writes: float | None = None

    @property
    def enabled(self) -> bool:
        return self.writes is not None or self.reads is not None or self.tenant_writes is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "writes": self.writes,
            "reads": self.reads,
            "per_seconds": self.per_seconds,
            "tenant_writes": self.tenant_writes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThrottleConfig:
        if data.get("enabled") is False:
            return cls()
        per = float(data.get("per_seconds", 150.0))
        if per <= 0:
            raise ValueError("per_seconds must be positive")
        writes, reads = data.get("writes"), data.get("reads")
        tenant_writes = data.get("tenant_writes")
        for name, value in (("writes", writes), ("reads", reads), ("tenant_writes", tenant_writes)):
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"{name} must be a positive number or null")
        return cls(
            writes=None if writes is None else float(writes),
            reads=None if reads is None else float(reads),
            per_seconds=per,
            tenant_writes=None if tenant_writes is None else float(tenant_writes),
        )


class Throttle:
    """Not thread-safe on its own; the emulator calls it under its state lock."""

    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def configure(self, config: ThrottleConfig) -> None:
        self.config = config
        self._buckets.clear()

    def take(self, app_id: str, tenant_id: str, kind: str, now: float) -> Throttled | None:
        """Spend one request from every bucket it counts against; None if all allowed it."""
        own = self.config.writes if kind == "writes" else self.config.reads
        limit = "Write" if kind == "writes" else "Read"
        reason = "WriteLimitExceeded" if kind == "writes" else "ResourceUnitLimitExceeded"
        checks = [((app_id, tenant_id, kind), own, "Tenant_Application")]
        if kind == "writes":
            checks.append((("*", tenant_id, kind), self.config.tenant_writes, "Tenant"))
        for key, capacity, scope in checks:
            if capacity is None:
                continue
            retry = self._spend(key, capacity, now)
            if retry is not None:
                return Throttled(retry, f"{scope}/{limit}/{app_id}/{tenant_id}", reason)
        return None

    def _spend(self, key: tuple[str, str, str], capacity: float, now: float) -> int | None:
        rate = capacity / self.config.per_seconds
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))


@dataclass(frozen=True)
class Throttled:
    """A refusal: how long to wait and which limit was spent."""

    retry_after: int
    scope: str  # x-ms-throttle-scope
    information: str  # x-ms-throttle-information

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "x-ms-throttle-scope": self.scope,
            "x-ms-throttle-information": self.information,
        }
