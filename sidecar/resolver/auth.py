"""Who may resolve what: the caller's own Vault token, asked about the plugin's path.

The resolver holds a read-only token for the product's KV data, so it must
not decide on its own who gets which credential. It asks Vault, with the
caller's token, for that token's capabilities on ``<mount>/creds/<stack>/<phase>``
(``sys/capabilities-self``): the same policy path that governs the plugin,
so one policy decides for both.

A GRANTED answer is remembered for ``grant_ttl`` seconds (default 2) under a
hash of the token, so a run that asks repeatedly costs one capabilities call
per window; the price is that a token revoked within the window keeps access
until it closes. Denials are never cached. The raw token is never stored.
"""

from __future__ import annotations

import hashlib
import threading
import time
from enum import Enum

import requests

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
        grant_ttl: float = 2.0,
    ) -> None:
        self.addr = addr
        self.mount = mount
        self.ca_cert = ca_cert
        self.namespace = namespace
        self.timeout = timeout
        self.grant_ttl = grant_ttl
        self._granted: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        """One kept-alive connection per resolver thread (tokens travel per request)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def check(self, token: str | None, stack: str, phase: Phase) -> Access:
        """Raises VaultUnavailable when Vault cannot answer; never logs the token."""
        if not token:
            return Access.UNAUTHENTICATED
        path = creds_path(self.mount, stack, phase)
        key = (hashlib.sha256(token.encode()).hexdigest(), path)
        now = time.monotonic()
        with self._lock:
            granted_at = self._granted.get(key)
            if granted_at is not None and now - granted_at < self.grant_ttl:
                return Access.GRANTED
        client = connect(
            self.addr,
            token=token,
            ca_cert=self.ca_cert,
            namespace=self.namespace,
            timeout=self.timeout,
            session=self._session(),
        )
        try:
            capabilities = capabilities_self(client, path)
        except VaultForbidden:
            # capabilities-self is in every token's default policy: a refusal
            # means Vault does not know the token (unknown, expired, revoked).
            return Access.UNAUTHENTICATED
        if capabilities & {"read", "root"} and "deny" not in capabilities:
            with self._lock:
                self._granted = {k: t for k, t in self._granted.items() if now - t < self.grant_ttl}
                self._granted[key] = now
            return Access.GRANTED
        return Access.DENIED
