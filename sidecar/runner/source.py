"""Where the runner gets the credential: the plugin's path, or the resolver.

Detection rule (``--via auto``, the default): read ``<mount>/creds/<stack>/<phase>``
from Vault. If Vault answers that nothing serves that path (404: the plugin is
not mounted there), ask the resolver given by ``--resolver``; without one,
say so. Every other answer is final, a refusal (403) included: the same
policy path governs the resolver, so it would refuse too. ``--via plugin`` or
``--via resolver`` skip the detection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import hvac
import hvac.exceptions

from sidecar.errors import (
    NotFoundError,
    SidecarError,
    VaultError,
    VaultNotFound,
    VaultUnavailable,
)
from sidecar.model import DEFAULT_CREDS_MOUNT, Phase
from sidecar.resolve import ResolvedCredential
from sidecar.resolver.auth import creds_path
from sidecar.resolver.client import NotReadyYet, ResolverClient
from sidecar.sensitive import Sensitive
from sidecar.vault import translate_errors

Via = Literal["auto", "plugin", "resolver"]

_RETRY = re.compile(r"retry after (\S+Z) \(in (\d+) s\)")
_NOT_FOUND = ("no stack named", "has no integration attached", "does not exist")


class PluginNotMounted(VaultNotFound):
    """Nothing serves ``<mount>/creds/...`` in this Vault."""


def _time(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _refusal(message: str) -> SidecarError:
    """Turn the plugin's error text into the error the resolver would have raised."""
    match = _RETRY.search(message)
    if match:
        return NotReadyYet(message, _time(match.group(1)), timedelta(seconds=int(match.group(2))))
    if "no ready credential" in message:
        return NotReadyYet(message, None, None)
    if any(marker in message for marker in _NOT_FOUND):
        return NotFoundError(message)
    return VaultError(f"the plugin refused: {message}")


def read_plugin(client: hvac.Client, mount: str, stack: str, phase: Phase) -> ResolvedCredential:
    """``GET <mount>/creds/<stack>/<phase>`` with the runner's token."""
    path = creds_path(mount, stack, phase)
    with translate_errors(path):
        try:
            body: Any = client.read(path)
        except hvac.exceptions.InvalidRequest as exc:
            errors = getattr(exc, "errors", None) or [str(exc)]
            raise _refusal("; ".join(str(e) for e in errors)[:400]) from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise PluginNotMounted(
            "nothing serves this path: mount the plugin there, or pass --resolver host:port",
            path=path,
            status=404,
        )
    data = body["data"]
    return ResolvedCredential(
        client_id=str(data["client_id"]),
        client_secret=Sensitive(str(data["client_secret"])),
        tenant_id=str(data["tenant_id"]),
        subscription_id=data.get("subscription_id") or None,
        integration=str(data.get("integration", "")),
        key_id=str(data.get("key_id", "")),
        created=_time(data["created_at"]),
        expires=_time(data["expires_at"]),
        safe_until=_time(data["safe_until"]),
    )


@dataclass
class CredentialSource:
    """The runner's logged-in client plus the way to the credential."""

    client: hvac.Client
    mount: str = DEFAULT_CREDS_MOUNT
    via: Via = "auto"
    resolver: ResolverClient | None = None
    used: str = field(default="", init=False)

    def fetch(self, stack: str, phase: Phase) -> ResolvedCredential:
        if self.via != "resolver":
            try:
                credential = read_plugin(self.client, self.mount, stack, phase)
            except VaultUnavailable as exc:
                raise VaultUnavailable(f"Vault at {self.client.url}: {exc}") from exc
            except PluginNotMounted:
                if self.via == "plugin" or self.resolver is None:
                    raise
                self.via = "resolver"  # remembered for the next try while waiting
            else:
                self.used = "plugin"
                return credential
        if self.resolver is None:
            raise SidecarError("--via resolver needs --resolver host:port")
        self.used = "resolver"
        return self.resolver.resolve(str(self.client.token), stack, phase)
