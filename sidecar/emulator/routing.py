"""Which directory replica serves a request.

Azure front ends keep a client's keep-alive connection on one backend, so all
requests on one TCP connection read the same replica, and only a new
connection may reach another one. That is the default here (``sticky``); the
older model, a random replica for every request, stays available. A client
that wants a second opinion from another replica must open a new connection.
"""

from __future__ import annotations

import random
import weakref
from typing import Any


class ReplicaRouting:
    """Not thread-safe on its own; the emulator calls it under its state lock."""

    def __init__(self, *, sticky: bool = True) -> None:
        self.sticky = sticky
        self._by_connection: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.connections = 0  # distinct connections routed, for tests and the admin API

    def pick(self, connection: object | None, replicas: int, rng: random.Random) -> int:
        """The replica for one request on ``connection`` (a socket, or None if unknown)."""
        if not self.sticky or connection is None:
            return rng.randrange(replicas)
        try:
            chosen = self._by_connection.get(connection)
        except TypeError:  # not weak-referenceable: treat as a new connection
            return rng.randrange(replicas)
        if chosen is None or chosen >= replicas:
            chosen = rng.randrange(replicas)
            self._by_connection[connection] = chosen
            self.connections += 1
        return chosen

    def to_dict(self) -> dict[str, Any]:
        return {"sticky": self.sticky, "connections": self.connections}
