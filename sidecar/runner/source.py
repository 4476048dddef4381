"""Where the runner gets the credential: the plugin's path, or the resolver.

Detection rule (``--via auto``, the default): read ``<mount>/creds/<stack>/<phase>``
from Vault. If Vault answers that nothing serves that path (404: the plugin is
not mounted there), ask the resolver given by ``--resolver``; without one,
say so. Every other answer is final, a refusal (403) included: the same
policy path governs the resolver, so it would refuse too. ``--via plugin`` or
``--via resolver`` skip the detection.

The plugin's refusals are classified by the :class:`sidecar.answers.Refusal`
in the response's ``data``, never by the wording of its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sidecar.answers import Refusal, ResolvedCredential, creds_path
from sidecar.errors import SidecarError, VaultError, VaultNotFound, VaultUnavailable
from sidecar.phases import DEFAULT_CREDS_MOUNT, Phase
from sidecar.vault_transport import PathRefusal, VaultTransport

if TYPE_CHECKING:
    import hvac

    from sidecar.resolver.client import ResolverClient

Via = Literal["auto", "plugin", "resolver"]


class PluginNotMounted(VaultNotFound):
    """Nothing serves ``<mount>/creds/...`` in this Vault."""


def _refusal(refused: PathRefusal) -> SidecarError:
    """The error the plugin's 400 stands for: by its structured answer, else a Vault error."""
    message = "; ".join(refused.errors)[:400]
    refusal = Refusal.from_data(refused.data, message)
    if refusal is not None:
        return refusal.error()
    return VaultError(f"the plugin refused: {message}")


def _read(client: VaultTransport | hvac.Client, path: str) -> dict[str, Any] | PathRefusal | None:
    if isinstance(client, VaultTransport):
        return client.read_data(path)
    from sidecar.vault import read_path  # noqa: PLC0415 - hvac only for an hvac client

    return read_path(client, path)


def read_plugin(
    client: VaultTransport | hvac.Client, mount: str, stack: str, phase: Phase
) -> ResolvedCredential:
    """``GET <mount>/creds/<stack>/<phase>`` with the runner's token (on any client)."""
    path = creds_path(mount, stack, phase)
    data: Any = _read(client, path)
    if isinstance(data, PathRefusal):
        raise _refusal(data) from None
    if data is None:
        raise PluginNotMounted(
            "nothing serves this path: mount the plugin there, or pass --resolver host:port",
            path=path,
            status=404,
        )
    return ResolvedCredential.from_data(data)


@dataclass
class CredentialSource:
    """The runner's logged-in client plus the way to the credential."""

    client: VaultTransport
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
