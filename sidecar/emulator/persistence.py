"""The emulator's state on disk: a JSON snapshot to resume from, written atomically.

Secrets are kept as hashes only (what ``records`` snapshots). A snapshot holds
the clock, the replication set-up, the token-signing key, the directory with
every object's replica history, the grants and the throttle.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.emulator.clock import Clock
from sidecar.emulator.records import Application, ServicePrincipal
from sidecar.emulator.replicas import LagProfile, Version, resolve_stuck
from sidecar.emulator.seeding import AdminError, seed_tenant
from sidecar.emulator.throttle import ThrottleConfig
from sidecar.emulator.tokens import SigningKey

if TYPE_CHECKING:
    from sidecar.emulator.state import EmulatorState

SNAPSHOT_VERSION = 1


def snapshot(state: EmulatorState) -> dict[str, Any]:
    """Everything needed to resume, as JSON-ready data (secret hashes only)."""
    with state.lock:
        apps = {
            key: [
                {
                    "visible": v.visible_at,
                    "value": None if v.value is None else v.value.snapshot(),
                }
                for v in state.apps.history(key)
            ]
            for key in state.apps.object_keys()
        }
        sps = {
            key: [
                {
                    "visible": v.visible_at,
                    "value": None if v.value is None else v.value.snapshot(),
                }
                for v in state.sps.history(key)
            ]
            for key in state.sps.object_keys()
        }
        return {
            "version": SNAPSHOT_VERSION,
            "clock": state.clock.to_dict(),
            "replicas": state.replicas,
            "lag": state.lag.to_dict(),
            "signingKey": state.signing.pem(),
            "tenants": [
                {
                    "id": t.tenant_id,
                    "displayName": t.display_name,
                    "subscriptions": [
                        {"id": s.subscription_id, "displayName": s.display_name}
                        for s in t.subscriptions.values()
                    ],
                }
                for t in state.tenants.values()
            ],
            "applications": apps,
            "servicePrincipals": sps,
            "appRoles": {k: sorted(v) for k, v in state.app_roles.items()},
            "azureRoles": {
                sub: {app: sorted(roles) for app, roles in grants.items()}
                for sub, grants in state.azure_roles.items()
            },
            "throttle": state.throttle.config.to_dict(),
        }


def restore(state: EmulatorState, data: dict[str, Any], *, keep_clock: bool = False) -> None:
    with state.lock:
        if data.get("version") != SNAPSHOT_VERSION:
            raise AdminError("unsupported snapshot version")
        state.clear_directory()
        if not keep_clock:
            state.clock = Clock.from_dict(data["clock"])
        state.replicas = int(data.get("replicas", state.replicas))
        state.lag = resolve_stuck(LagProfile.from_dict(data.get("lag", {})), state.replicas)
        if data.get("signingKey"):
            state.signing = SigningKey.from_pem(data["signingKey"])
        for t in data.get("tenants", []):
            seed_tenant(state, t["id"], t.get("displayName", ""), t.get("subscriptions", []))
        for key, history in data.get("applications", {}).items():
            versions: list[Version[Application]] = [
                Version(
                    [float(x) for x in v["visible"]],
                    None if v["value"] is None else Application.from_snapshot(v["value"]),
                )
                for v in history
            ]
            state.apps.set_history(key, versions)
            for version in versions:
                if version.value is not None:
                    state.app_ids[version.value.app_id] = key
                    for owner in version.value.owners:
                        state.owned.setdefault(owner, {})[key] = None
        for key, history in data.get("servicePrincipals", {}).items():
            sp_versions: list[Version[ServicePrincipal]] = [
                Version(
                    [float(x) for x in v["visible"]],
                    None if v["value"] is None else ServicePrincipal.from_snapshot(v["value"]),
                )
                for v in history
            ]
            state.sps.set_history(key, sp_versions)
            tenant_id, _, app_id = key.partition("/")
            state.sp_by_tenant.setdefault(tenant_id, {})[app_id] = None
        state.app_roles = {k: set(v) for k, v in data.get("appRoles", {}).items()}
        state.azure_roles = {
            sub: {app: set(roles) for app, roles in grants.items()}
            for sub, grants in data.get("azureRoles", {}).items()
        }
        state.throttle.configure(ThrottleConfig.from_dict(data.get("throttle", {})))
        state.changes = 0


def save(state: EmulatorState, path: Path) -> None:
    """Write the snapshot atomically (temp file in the same directory, then os.replace)."""
    data = snapshot(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    text = json.dumps(data, separators=(",", ":"))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load(state: EmulatorState, path: Path, *, keep_clock: bool = False) -> None:
    restore(state, json.loads(path.read_text(encoding="utf-8")), keep_clock=keep_clock)
