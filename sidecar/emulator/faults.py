"""Fault injection: fail the next N matching requests, fail at random, or drop connections."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

KINDS = ("token", "login", "graph", "arm")
FaultAction = Literal["status", "drop"]


@dataclass
class FaultRule:
    """Applies to requests whose kind and path prefix match, ``remaining`` times (None: forever)."""

    status: int = 503
    drop: bool = False
    remaining: int | None = 1
    kind: str | None = None
    prefix: str | None = None
    retry_after: int | None = None
    rate: float = 1.0
    gateway: bool = False  # answered by the gateway: HTML, Connection: close, no Retry-After
    commit: bool = False  # the request is carried out before the gateway answers
    methods: tuple[str, ...] = ()  # empty: every method

    def matches(self, kind: str, path: str, method: str = "") -> bool:
        if self.kind is not None and self.kind != kind:
            return False
        if self.methods and method.upper() not in self.methods:
            return False
        return self.prefix is None or path.startswith(self.prefix)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "drop": self.drop,
            "remaining": self.remaining,
            "kind": self.kind,
            "prefix": self.prefix,
            "retry_after": self.retry_after,
            "rate": self.rate,
            "gateway": self.gateway,
            "commit": self.commit,
            "methods": list(self.methods),
        }


@dataclass(frozen=True)
class Fault:
    """What to do to one request."""

    status: int
    drop: bool
    retry_after: int | None
    gateway: bool = False
    commit: bool = False


@dataclass
class FaultInjector:
    """Not thread-safe on its own; the emulator calls it under its state lock."""

    rules: list[FaultRule] = field(default_factory=list)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        kind: str | None = None,
        prefix: str | None = None,
        retry_after: int | None = None,
    ) -> FaultRule:
        """The next ``count`` matching requests answer ``status``."""
        return self._add(FaultRule(status, False, count, kind, prefix, retry_after))

    def drop_next(
        self, count: int = 1, *, kind: str | None = None, prefix: str | None = None
    ) -> FaultRule:
        """The next ``count`` matching requests get their connection closed without a response."""
        return self._add(FaultRule(0, True, count, kind, prefix))

    def random_errors(
        self,
        rate: float,
        statuses: tuple[int, ...] = (500, 503),
        *,
        kind: str | None = None,
        prefix: str | None = None,
        retry_after: int | None = None,
    ) -> list[FaultRule]:
        """Each matching request fails with probability ``rate``, status drawn from ``statuses``."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        share = rate / max(1, len(statuses))
        return [
            self._add(FaultRule(s, False, None, kind, prefix, retry_after, share)) for s in statuses
        ]

    def gateway_next(
        self,
        count: int = 1,
        *,
        status: int = 504,
        commit: bool = False,
        kind: str | None = "graph",
        prefix: str | None = None,
        methods: tuple[str, ...] = (),
    ) -> FaultRule:
        """The next ``count`` matching requests get a gateway answer (run first if ``commit``)."""
        rule = FaultRule(status, False, count, kind, prefix, None, 1.0, True, commit, methods)
        return self._add(rule)

    def gateway_errors(self, rate: float, *, kind: str | None = "graph") -> list[FaultRule]:
        """Gateway faults at ``rate``: half 503 before the request, half 504.

        Of the 504s, those for writes are committed first (``POST``, ``PATCH``,
        ``DELETE``), the case that makes a blind retry duplicate an object.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        share = rate / 2
        writes = ("POST", "PATCH", "DELETE")
        return [
            self._add(FaultRule(503, False, None, kind, None, None, share, True)),
            self._add(FaultRule(504, False, None, kind, None, None, share, True, True, writes)),
            self._add(FaultRule(504, False, None, kind, None, None, share, True, False, ("GET",))),
        ]

    def _add(self, rule: FaultRule) -> FaultRule:
        if rule.kind is not None and rule.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if not rule.drop and not 400 <= rule.status <= 599:
            raise ValueError("a fault status must be 4xx or 5xx")
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, kind: str, path: str, rng: random.Random, method: str = "") -> Fault | None:
        """Decide the fate of one request; consumes a count-limited rule when it fires."""
        draw = rng.random()
        cumulative = 0.0
        for rule in list(self.rules):
            if not rule.matches(kind, path, method):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.rules.remove(rule)
                return self._fault(rule)
            cumulative += rule.rate
            if draw < cumulative:
                return self._fault(rule)
        return None

    @staticmethod
    def _fault(rule: FaultRule) -> Fault:
        retry = rule.retry_after
        if rule.status == 429 and retry is None:
            retry = 1
        return Fault(rule.status, rule.drop, retry, rule.gateway, rule.commit)

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [r.to_dict() for r in self.rules]}
