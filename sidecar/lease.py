"""The leader lease: one KV key written with check-and-set, valid until it expires.

Several daemon replicas may run; only the holder of an unexpired lease
rotates. Taking over needs the lease to have expired, and the check-and-set
write means two replicas racing for it cannot both win: the version it
checks is the one whose record was read and found expired or absent
(:meth:`sidecar.store.Store.leader_lease` never pairs a "no lease" with a
version someone else just wrote).

Clock skew between replicas. The lease stores its expiry as the holder's
``renewed_at + ttl`` (rounded up to the second), and the holder writes to
Graph without asking Vault only until ``renewed_at + ttl / 3`` on its own
clock (:meth:`LeaderLease.confirm`). A replica whose clock runs ``s`` ahead
takes over at the holder's ``renewed_at + ttl - s``, so the two never
overlap while ``s`` plus one Graph request (``azure.request_timeout``) stays
under ``2/3 ttl``: 60 s less the request time with the default 90 s lease.
Replicas' clocks must agree that well (NTP keeps them within milliseconds).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from sidecar.clock import Clock
from sidecar.errors import LeaseLost, VaultConflict, VaultNotFound
from sidecar.model import LeaseRecord
from sidecar.store import Store

log = logging.getLogger(__name__)

#: What a released lease holds: no holder, expired since 1970.
_RELEASED = LeaseRecord(holder="", expires=datetime.fromtimestamp(0, UTC))


class LeaderLease:
    def __init__(self, store: Store, holder: str, clock: Clock, ttl: timedelta) -> None:
        self.store = store
        self.holder = holder
        self.clock = clock
        self.ttl = ttl
        self.held = False
        self.renewed_at: datetime | None = None
        # A pass's worker threads confirm concurrently: one renewal at a time, or
        # two check-and-set writes of our own lease would race and one would lose.
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take or renew the lease; False if another holder's lease is still valid.

        Raises VaultError subclasses other than a lost check-and-set.
        """
        with self._lock:
            return self._acquire()

    def _acquire(self) -> bool:
        now = self.clock.now()
        try:
            current, version = self.store.leader_lease()
        except VaultConflict:  # rewritten under every read: someone else is taking it
            self._set(False)
            return False
        if current and current.holder and current.holder != self.holder and current.expires > now:
            self._set(False)
            return False
        try:
            self.store.save_leader_lease(LeaseRecord(self.holder, now + self.ttl), cas=version)
        except VaultConflict:
            self._set(False)
            return False
        self.renewed_at = now
        self._set(True)
        return True

    def confirm(self) -> None:
        """Raise LeaseLost unless this process still leads; called before every Graph write.

        While less than a third of the lease has passed since it was renewed,
        nobody else can hold it (taking over needs it expired), so no Vault call
        is made. Past that -- a pass that ran long, a Retry-After of hours --
        the lease is renewed now, or the write is refused.
        """
        with self._lock:
            now = self.clock.now()
            fresh = self.renewed_at is not None and now - self.renewed_at < self.ttl / 3
            if self.held and fresh:
                return
            held = self._acquire()
        if not held:
            raise LeaseLost(
                f"{self.holder} no longer holds the leader lease; another daemon rotates now"
            )

    def release(self) -> None:
        """Give the lease up at shutdown so a replica can take over at once."""
        if not self.held:
            return
        try:
            current, version = self.store.leader_lease()
            if current is not None and current.holder == self.holder:
                self.store.save_leader_lease(_RELEASED, cas=version)
        except (VaultConflict, VaultNotFound):
            pass
        self.renewed_at = None
        self._set(False)

    def _set(self, held: bool) -> None:
        if held != self.held:
            log.info("%s the leader lease", "acquired" if held else "lost")
        self.held = held
