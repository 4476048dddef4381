"""The record of calls the emulator served: a bounded ring buffer with stable indexes."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    index: int
    method: str
    path: str
    status: int
    kind: str
    client: str | None
    tenant: str | None
    replica: int | None
    time: float
    throttled: bool = False
    fault: str | None = None
    error_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CallLog:
    """Not thread-safe on its own; the emulator appends under its state lock."""

    def __init__(self, capacity: int = 20000) -> None:
        self._calls: deque[Call] = deque(maxlen=capacity)
        self._next = 0
        self.throttled = 0
        self.faults = 0

    @property
    def next_index(self) -> int:
        return self._next

    def record(self, **fields: Any) -> Call:
        call = Call(index=self._next, **fields)
        self._next += 1
        self._calls.append(call)
        if call.throttled:
            self.throttled += 1
        if call.fault:
            self.faults += 1
        return call

    def query(
        self,
        *,
        since: int = 0,
        kind: str | None = None,
        status: int | None = None,
        client: str | None = None,
        path_prefix: str | None = None,
        limit: int | None = None,
    ) -> list[Call]:
        out: list[Call] = []
        for call in self._calls:
            if call.index < since:
                continue
            if kind is not None and call.kind != kind:
                continue
            if status is not None and call.status != status:
                continue
            if client is not None and call.client != client:
                continue
            if path_prefix is not None and not call.path.startswith(path_prefix):
                continue
            out.append(call)
            if limit is not None and len(out) >= limit:
                break
        return out

    def clear(self) -> None:
        self._calls.clear()
        self.throttled = 0
        self.faults = 0
