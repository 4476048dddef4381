"""A test issuer site: an :class:`Issuer`'s discovery document and JWKS over HTTPS.

What Entra (here the emulator) fetches from an external issuer. The documents
are built at every request from Transit's current key set, as the daemon's own
listener (branch i18issuer) will serve them; this helper only stands in for it
so tests do not depend on it. TLS is a test CA made at run time
(:func:`sidecar.emulator.tls.prepare_server_tls`); give the emulator its
``ca_path`` to trust.

:class:`WorldTransitTime` is the world's manual time for an issuer whose key
lives in a real Transit engine: Transit stamps each version with the wall
clock, and this clock maps a stamp to the emulated time at that wall-clock
moment, so that a version made on emulated day 10 counts as made on day 10.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sidecar.clock import AcceleratedClock
from sidecar.emulator.clock import Clock as EmuClock
from sidecar.emulator.json_site import JsonSite
from sidecar.issuer.documents import DISCOVERY_PATH, IssuerIdentity
from sidecar.issuer.signing import Issuer
from tests.world import EmulatorTime

ISSUER_PATH = "/azsidecar"


class IssuerSite:
    """``https://127.0.0.1:<port>/azsidecar`` serving whatever issuer :attr:`issuer` is."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.issuer: Issuer | None = None
        self.fetches = 0
        self.site = JsonSite(directory, self.document)
        self.url = f"{self.site.origin}{ISSUER_PATH}"
        self.identity = IssuerIdentity(self.url)

    @property
    def ca_path(self) -> Path:
        return self.site.ca_path

    def document(self, path: str) -> dict[str, Any] | None:
        issuer = self.issuer
        if issuer is None:
            return None
        self.fetches += 1
        if path == f"{ISSUER_PATH}/{DISCOVERY_PATH}":
            return issuer.discovery()
        if f"{self.site.origin}{path}" == issuer.identity.jwks_uri:
            return issuer.jwks()
        return None

    def __enter__(self) -> IssuerSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.site.stop()


class WorldTransitTime(EmulatorTime, AcceleratedClock):
    """The world's manual time (the emulator's clock), mapping Transit's wall-clock stamps.

    An :class:`EmulatorTime`, so a :class:`tests.world.World` can run on it,
    and an :class:`AcceleratedClock` only so that
    :func:`sidecar.issuer.signing.transit_time` asks :meth:`at`. Every move
    (``advance``, ``sleep``) records which emulated time began at which
    wall-clock instant; a stamp maps to the emulated time in force when it was
    made (time stands still between moves). Moving the emulator's clock by
    any other way breaks the mapping.
    """

    def __init__(self, clock: EmuClock, wall: Callable[[], float] = time.time) -> None:
        EmulatorTime.__init__(self, clock)
        self._wall = wall
        self._marks: list[tuple[float, datetime]] = [(wall(), self.now())]
        AcceleratedClock.__init__(self, self.now(), 1.0, self._marks[0][0])

    def now(self) -> datetime:
        return EmulatorTime.now(self)

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self.clock.mode == "manual":
            self.advance(timedelta(seconds=seconds))

    def advance(self, delta: timedelta) -> None:
        EmulatorTime.advance(self, delta)
        self._marks.append((self._wall(), self.now()))

    def at(self, wall: datetime | float) -> datetime:
        stamp = wall.timestamp() if isinstance(wall, datetime) else float(wall)
        chosen = self._marks[0][1]
        for real, emulated in self._marks:
            if real > stamp:
                break
            chosen = emulated
        return chosen.astimezone(UTC)
