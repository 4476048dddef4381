"""The tenant's application-management policy, as far as client secrets go.

An administrator can cap the lifetime of new password credentials with the
default app-management policy (``passwordCredentialConfiguration`` with
``restrictionType = passwordLifetime`` and an ISO 8601 ``maxLifetime``;
learn.microsoft.com/graph/api/resources/passwordcredentialconfiguration).
``addPassword`` asking for a longer ``endDateTime`` is then refused with HTTP
400 and the error code ``CredentialInvalidLifetimeAsPerAppPolicy``. The code is
not in Graph's reference pages; it is the one Microsoft's Teams Toolkit checks
for after ``addPassword`` (its ``aadErrorCode`` table), and users report the
message as "Credential lifetime exceeds the max value allowed as per assigned
policy".
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.emulator.responses import GraphError

LIFETIME_CODE = "CredentialInvalidLifetimeAsPerAppPolicy"


@dataclass(frozen=True)
class AppManagementPolicy:
    """``max_password_lifetime`` in seconds; None: no restriction (the default)."""

    max_password_lifetime: float | None = None

    def check_password(self, start: float, end: float) -> None:
        """Raise the 400 answer for a password credential the policy refuses."""
        cap = self.max_password_lifetime
        if cap is None or end - start <= cap:
            return
        raise GraphError(
            400,
            LIFETIME_CODE,
            "Credential lifetime exceeds the max value allowed as per assigned policy"
            f" (maxLifetime {iso_duration(cap)}).",
        )


def iso_duration(seconds: float) -> str:
    """``P1DT2H`` style, as Graph writes ``maxLifetime``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if v)
    if not days and not time:
        return "PT0S"
    return f"P{f'{days}D' if days else ''}{'T' + time if time else ''}"
