"""Which directory replica serves a request.

Azure's front ends keep a client's keep-alive connection on one backend (what
the independent stand-in of issue #14 modelled, and what made our confirming
re-reads ask the same replica twice), so all requests on one TCP connection
read the same replica, and only a new connection may reach another one. That
is the default here (``sticky``); the older model, a random replica for every
request, stays available. A client
that wants a second opinion from another replica must open a new connection.

``round_robin`` hands new connections the replicas in turn instead of at
random (a load balancer's other common policy); with
:meth:`ReplicaRouting.route_next_connection_to` a test puts a client's next
connection on a chosen replica, e.g. one that lags.
"""

from __future__ import annotations

import random
import weakref
from typing import Any


class ReplicaRouting:
    """Not thread-safe on its own; the emulator calls it under its state lock."""

    def __init__(self, *, sticky: bool = True, round_robin: bool = False) -> None:
        self.sticky = sticky
        self.round_robin = round_robin
        self._next = 0
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
            chosen = self._new_connection(replicas, rng)
            self._by_connection[connection] = chosen
            self.connections += 1
        return chosen

    def _new_connection(self, replicas: int, rng: random.Random) -> int:
        if not self.round_robin:
            return rng.randrange(replicas)
        chosen = self._next % replicas
        self._next = chosen + 1
        return chosen

    def route_next_connection_to(self, replica: int) -> None:
        """Round-robin from ``replica``: the next new connection is served by it."""
        self.round_robin = True
        self._next = replica

    def to_dict(self) -> dict[str, Any]:
        return {
            "sticky": self.sticky,
            "round_robin": self.round_robin,
            "connections": self.connections,
        }
