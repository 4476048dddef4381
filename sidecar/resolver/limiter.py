"""How many refused tokens one peer may send before the resolver stops asking Vault.

Every unknown token costs the resolver a ``capabilities-self`` call to Vault
(a refused one is then remembered, see :mod:`sidecar.resolver.auth`), so a
peer sending many different bogus tokens would slow Vault, and with it every
legitimate caller. Past ``limit`` refusals within ``window`` seconds, a peer's
requests are refused at once until the window has moved on. Legitimate
callers sharing that address are refused too for that time, which is the
price; they are told when to retry. Pure but for the injected clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureLimiter:
    def __init__(
        self,
        limit: int = 30,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_peers: int = 4096,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_peers = max_peers
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, peer: str, now: float) -> deque[float]:
        times = self._failures.get(peer)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, peer: str) -> int:
        """0 if ``peer`` may be served; else whole seconds until it may be again."""
        now = self._clock()
        with self._lock:
            times = self._recent(peer, now)
            if len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[len(times) - self.limit] + self.window - now))

    def refused(self, peer: str) -> None:
        """Record that Vault (or the cache of refusals) refused a token from ``peer``."""
        now = self._clock()
        with self._lock:
            times = self._recent(peer, now)
            times.append(now)
            self._failures[peer] = times
            self._failures.move_to_end(peer)
            while len(self._failures) > self._max_peers:
                self._failures.popitem(last=False)
