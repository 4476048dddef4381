"""What the daemon's ``/healthz`` says: its :class:`Health` and the answer built from it.

The daemon keeps a :class:`Health` up to date as it ticks; :func:`healthz`
turns it, with the Vault token's state, into the status code and the JSON body.
The body names only the kind of the last error: its text (Graph and Vault
paths, tenant ids) goes to the log, not to whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sidecar.vault_login import VaultLogin

#: How long after a failed tick an integration is tried again (and ``/healthz`` tolerates it).
RETRY_AFTER_FAILURE = timedelta(minutes=5)


@dataclass
class Health:
    """What ``/healthz`` reports."""

    leader: bool = False
    last_tick: datetime | None = None
    last_error: str = ""
    failing: set[str] = field(default_factory=set)
    certificate_stuck: str = ""
    #: Integrations whose newest secret is refused at sign-in past its delay (the
    #: previous secret carries the runs meanwhile).
    probe_failing: set[str] = field(default_factory=set)

    def healthy(self, now: datetime, tick: timedelta) -> bool:
        if self.certificate_stuck:
            return False
        if not self.leader:
            return not self.last_error
        return self.last_tick is not None and now - self.last_tick <= tick * 2 + RETRY_AFTER_FAILURE


def token_health(login: VaultLogin | None) -> dict[str, Any] | None:
    """The Vault token's state for /healthz (real time, like the token)."""
    if login is None:
        return None
    status = login.status()
    return status.as_dict(status.checked_at)


def healthz(
    health: Health, now: datetime, tick: timedelta, token: dict[str, Any] | None
) -> tuple[int, dict[str, Any]]:
    """``/healthz``'s status code (200 or 503) and body."""
    healthy = health.healthy(now, tick)
    healthy = healthy and not (token or {}).get("problem")
    body = {
        "status": "ok" if healthy else "failing",
        "leader": health.leader,
        "last_tick": health.last_tick.isoformat() if health.last_tick else None,
        "last_error": health.last_error.split(":", 1)[0],
        "failing_integrations": sorted(health.failing),
        "management_certificate_stuck": bool(health.certificate_stuck),
        "vault_token": token,
        # Degraded, not failing: the previous secret still serves these.
        "probe_failing_integrations": sorted(health.probe_failing),
    }
    return (200 if healthy else 503), body
