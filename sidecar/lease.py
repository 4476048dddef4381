"""The leader lease: one KV key written with check-and-set, valid until it expires.

Several daemon replicas may run; only the holder of an unexpired lease
rotates. Taking over needs the lease to have expired, and the check-and-set
write means two replicas racing for it cannot both win.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sidecar.clock import Clock
from sidecar.errors import LeaseLost, VaultConflict, VaultNotFound
from sidecar.store import from_epoch, to_epoch
from sidecar.vault import VaultKV

log = logging.getLogger(__name__)

LEASE_PATH = "state/leader"


class LeaderLease:
    def __init__(self, kv: VaultKV, holder: str, clock: Clock, ttl: timedelta) -> None:
        self.kv = kv
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
            found = self.kv.read(LEASE_PATH)
            holder = str(found.data.get("holder", ""))
            expires = from_epoch(found.data.get("expires", 0))
            version = found.version
        except VaultNotFound:
            holder, expires, version = "", now, self._current_version()
        if holder and holder != self.holder and expires > now:
            self._set(False)
            return False
        try:
            self.kv.write(
                LEASE_PATH,
                {"holder": self.holder, "expires": to_epoch(now + self.ttl)},
                cas=version,
            )
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

    def _current_version(self) -> int:
        try:
            return self.kv.read_metadata(LEASE_PATH).current_version
        except VaultNotFound:
            return 0

    def release(self) -> None:
        """Give the lease up at shutdown so a replica can take over at once."""
        if not self.held:
            return
        try:
            found = self.kv.read(LEASE_PATH)
            if found.data.get("holder") == self.holder:
                self.kv.write(LEASE_PATH, {"holder": "", "expires": 0}, cas=found.version)
        except (VaultConflict, VaultNotFound):
            pass
        self.renewed_at = None
        self._set(False)

    def _set(self, held: bool) -> None:
        if held != self.held:
            log.info("%s the leader lease", "acquired" if held else "lost")
        self.held = held
