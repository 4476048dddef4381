"""Doctor's checks of the daemon's Vault token: what it may do, whether it outlives the process."""

from __future__ import annotations

from datetime import timedelta

import hvac

from sidecar.doctor.check import Check, days
from sidecar.durations import format_duration
from sidecar.errors import VaultError
from sidecar.vault import capabilities_self, token_self
from sidecar.vault_login import VaultLogin


# What the daemon does on each product path (sidecar/policies/sidecar.hcl).
def daemon_paths(kv_mount: str, prefix: str) -> dict[str, set[str]]:
    base = f"{kv_mount}/{{}}/{prefix}"
    return {
        f"{base.format('data')}/integrations/x": {"create", "read", "update"},
        f"{base.format('data')}/credentials/x": {"create", "read", "update"},
        f"{base.format('metadata')}/credentials/x": {"read", "update", "list"},
        f"{base.format('destroy')}/credentials/x": {"update"},
        f"{base.format('data')}/management/certificate": {"create", "read", "update"},
        f"{base.format('data')}/state/leader": {"create", "read", "update"},
    }


def token_capabilities(client: hvac.Client, kv_mount: str, prefix: str) -> Check:
    """The token may do what the daemon does on every product path."""
    try:
        info = token_self(client).get("data") or {}
    except VaultError as exc:
        return Check(
            "fail",
            f"the Vault token is not valid: {exc}",
            "give the daemon's token (VAULT_TOKEN, vault.token_file) or its AppRole/JWT login",
        )
    policies = ", ".join(sorted(info.get("policies") or [])) or "none"
    ttl = int(info.get("ttl") or 0)
    expiry = f", expires in {days(timedelta(seconds=ttl))}" if ttl else ""
    missing = []
    for path, needed in daemon_paths(kv_mount, prefix).items():
        have = capabilities_self(client, path)
        if "root" in have:
            continue
        lacking = needed - have
        if lacking or "deny" in have:
            missing.append(f"{', '.join(sorted(lacking)) or 'everything (deny)'} on {path}")
    if missing:
        return Check(
            "fail",
            f"token (policies {policies}) lacks: " + "; ".join(missing[:3]),
            "write the sidecar policy for this mount and prefix: azsidecar policies render"
            f" --kv-mount {kv_mount} --prefix {prefix} ..., then bao policy write"
            " azsidecar-sidecar",
        )
    return Check(
        "ok", f"token (policies {policies}{expiry}) may do what the daemon does on {prefix}/"
    )


def token_lifetime(login: VaultLogin) -> Check:
    """Will the token outlive the process, by renewal or a new login? (Real time.)"""
    status = login.status()
    source = login.spec.method
    if status.problem:
        return Check(
            "fail",
            f"Vault token ({source}): {status.problem}",
            "see the message; `/healthz` of a running daemon shows the same",
        )
    remaining = status.remaining(status.checked_at)
    if remaining is None:
        return Check("ok", f"Vault token ({source}) does not expire")
    left = days(timedelta(seconds=remaining))
    if remaining < 3600:
        left = format_duration(timedelta(seconds=max(0, int(remaining))))
    if login.spec.can_login:
        return Check(
            "ok",
            f"Vault token ({source} login) expires in {left}; renewed at 2/3 of its TTL,"
            " replaced by a new login before its maximum TTL",
        )
    file_hint = login.spec.key("token_file")
    if not status.renewable:
        return Check(
            "warn",
            f"Vault token expires in {left} and cannot be renewed: the daemon stops then"
            f" unless {file_hint} is rewritten with a new token",
            f"use AppRole or JWT login, or let Vault Agent keep {file_hint} fresh",
        )
    return Check(
        "ok",
        f"Vault token expires in {left}, renewable (renewed at 2/3 of its TTL; past its"
        f" maximum TTL only a new token in {file_hint} helps)",
    )
