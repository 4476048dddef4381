"""The emulated clock that drives expiry, replication lag and token lifetimes.

Three modes:

* ``real``: wall-clock time.
* ``accelerated``: ``origin_virtual + (time.time() - origin_real) * factor``; another
  process that knows the three numbers computes the same ``now``.
* ``manual``: frozen until ``set`` or ``advance`` moves it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

ClockMode = Literal["real", "accelerated", "manual"]
_MODES: tuple[ClockMode, ...] = ("real", "accelerated", "manual")


def iso(ts: float) -> str:
    """Format epoch seconds the way Graph does: ``2024-05-01T12:00:00Z``."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float:
    """Epoch seconds from a number or an ISO 8601 string (``Z`` or offset; naive is UTC)."""
    if isinstance(value, bool):
        raise ValueError("a time must be epoch seconds or an ISO 8601 string")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        # Graph sends up to 7 fractional digits; Python parses at most 6.
        if "." in text:
            head, _, rest = text.partition(".")
            digits = "".join(c for c in rest if c.isdigit())
            tail = rest[len(digits) :]
            text = f"{head}.{digits[:6]}{tail}" if digits else f"{head}{tail}"
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError("a time must be epoch seconds or an ISO 8601 string")


class Clock:
    """A thread-safe emulated clock; every time the emulator uses comes from ``now``."""

    def __init__(
        self,
        mode: ClockMode = "real",
        *,
        factor: float = 1.0,
        origin_virtual: float | None = None,
        origin_real: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown clock mode {mode!r}; use one of {', '.join(_MODES)}")
        if factor <= 0:
            raise ValueError("clock factor must be positive")
        self._wall = wall
        self._lock = threading.Lock()
        real_now = wall()
        self._mode: ClockMode = mode
        self._factor = float(factor)
        self._origin_real = real_now if origin_real is None else float(origin_real)
        self._origin_virtual = real_now if origin_virtual is None else float(origin_virtual)

    def _now_locked(self) -> float:
        if self._mode == "real":
            return self._wall()
        if self._mode == "manual":
            return self._origin_virtual
        return self._origin_virtual + (self._wall() - self._origin_real) * self._factor

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    @property
    def mode(self) -> ClockMode:
        return self._mode

    @property
    def factor(self) -> float:
        return self._factor

    def _rebase(self, virtual: float) -> None:
        self._origin_virtual = virtual
        self._origin_real = self._wall()
        if self._mode == "real":
            self._mode = "accelerated"
            self._factor = 1.0

    def set(self, when: float) -> None:
        """Jump to ``when`` (epoch seconds); a real clock becomes accelerated with factor 1."""
        with self._lock:
            self._rebase(float(when))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._rebase(self._now_locked() + float(seconds))

    def set_factor(self, factor: float) -> None:
        """Run ``factor`` emulated seconds per real second from now on."""
        if factor <= 0:
            raise ValueError("clock factor must be positive")
        with self._lock:
            current = self._now_locked()
            self._mode = "accelerated"
            self._factor = float(factor)
            self._origin_virtual = current
            self._origin_real = self._wall()

    def set_mode(self, mode: ClockMode) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown clock mode {mode!r}; use one of {', '.join(_MODES)}")
        with self._lock:
            current = self._now_locked()
            self._mode = mode
            self._origin_virtual = current
            self._origin_real = self._wall()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            now = self._now_locked()
            return {
                "now": now,
                "iso": iso(now),
                "mode": self._mode,
                "factor": self._factor,
                "origin_virtual": self._origin_virtual,
                "origin_real": self._origin_real,
            }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Clock:
        mode = data.get("mode", "real")
        if mode not in _MODES:
            raise ValueError(f"unknown clock mode {mode!r}")
        if mode == "manual":
            return cls("manual", origin_virtual=float(data["now"]))
        if mode == "accelerated":
            return cls(
                "accelerated",
                factor=float(data.get("factor", 1.0)),
                origin_virtual=float(data["origin_virtual"]),
                origin_real=float(data["origin_real"]),
            )
        return cls("real")
