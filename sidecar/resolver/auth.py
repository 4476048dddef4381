"""Who may resolve what: the caller's own Vault token, asked about the plugin's path.

The resolver holds a read-only token for the product's KV data, so it must
not decide on its own who gets which credential. It asks Vault, with the
caller's token, for that token's capabilities on ``<mount>/creds/<stack>/<phase>``
(``sys/capabilities-self``): the same policy path that governs the plugin,
so one policy decides for both.
"""

from __future__ import annotations

from enum import Enum

from sidecar.errors import VaultForbidden
from sidecar.model import Phase
from sidecar.vault import capabilities_self, connect


class Access(Enum):
    GRANTED = "granted"
    DENIED = "denied"  # a valid token without read on the path
    UNAUTHENTICATED = "unauthenticated"  # no token, or Vault does not accept it


def creds_path(mount: str, stack: str, phase: Phase) -> str:
    return f"{mount.strip('/')}/creds/{stack}/{phase}"


class VaultAuthorizer:
    """Checks a caller's token against Vault; keeps no token beyond one call."""

    def __init__(
        self,
        addr: str,
        *,
        mount: str = "azure",
        ca_cert: str | None = None,
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.addr = addr
        self.mount = mount
        self.ca_cert = ca_cert
        self.namespace = namespace
        self.timeout = timeout

    def check(self, token: str | None, stack: str, phase: Phase) -> Access:
        """Raises VaultUnavailable when Vault cannot answer; never logs the token."""
        if not token:
            return Access.UNAUTHENTICATED
        client = connect(
            self.addr,
            token=token,
            ca_cert=self.ca_cert,
            namespace=self.namespace,
            timeout=self.timeout,
        )
        try:
            capabilities = capabilities_self(client, creds_path(self.mount, stack, phase))
        except VaultForbidden:
            # capabilities-self is in every token's default policy: a refusal
            # means Vault does not know the token (unknown, expired, revoked).
            return Access.UNAUTHENTICATED
        finally:
            client.adapter.close()
        if capabilities & {"read", "root"} and "deny" not in capabilities:
            return Access.GRANTED
        return Access.DENIED
