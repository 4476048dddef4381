"""Who may resolve what: the caller's own Vault token, asked about the plugin's path.

The resolver holds a read-only token for the product's KV data, so it must
not decide on its own who gets which credential. It asks Vault, with the
caller's token, for that token's capabilities on ``<mount>/creds/<stack>/<phase>``
(``sys/capabilities-self``): the same policy path that governs the plugin,
so one policy decides for both.

Every call asks Vault again: a grant is never remembered, so a token revoked
or expired a moment ago gets nothing (Vault refuses it). Two things are
remembered, under a hash of the token and never the token itself: the token's
login metadata (fixed at login; see :mod:`sidecar.login_scope`, checked so a
login for one stack and phase cannot use another's path), and the tokens Vault
refused (a refused token never becomes valid), so a flood of bogus tokens
costs Vault one call each, once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING

from sidecar.answers import creds_path
from sidecar.errors import VaultForbidden
from sidecar.login_scope import scope_refusal
from sidecar.model import DEFAULT_CREDS_MOUNT, Phase
from sidecar.vault import capabilities_self, connect, new_session, token_lookup_self

if TYPE_CHECKING:
    from requests import Session

#: Bounds of the two memories (entries, oldest dropped first).
REMEMBERED_LOGINS = 4096
REMEMBERED_REFUSALS = 16384


class Access(Enum):
    GRANTED = "granted"
    DENIED = "denied"  # a valid token without read on the path
    OTHER_LOGIN = "other-login"  # the policy admits the path, the token's own login does not
    UNAUTHENTICATED = "unauthenticated"  # no token, or Vault does not accept it


class _Bounded:
    """A small LRU map, safe across the resolver's threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Mapping[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Mapping[str, str] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: Mapping[str, str]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)


class VaultAuthorizer:
    """Checks a caller's token against Vault; keeps no token beyond one call."""

    def __init__(
        self,
        addr: str,
        *,
        mount: str = DEFAULT_CREDS_MOUNT,
        ca_cert: str | None = None,
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.addr = addr
        self.mount = mount
        self.ca_cert = ca_cert
        self.namespace = namespace
        self.timeout = timeout
        self._logins = _Bounded(REMEMBERED_LOGINS)
        self._refused = _Bounded(REMEMBERED_REFUSALS)
        self._local = threading.local()

    def _session(self) -> Session:
        """One kept-alive connection per resolver thread (tokens travel per request)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = new_session()
            self._local.session = session
        return session

    def known_refused(self, token: str) -> bool:
        """Whether Vault already refused ``token`` (answered without asking it again)."""
        return self._refused.get(hashlib.sha256(token.encode()).hexdigest()) is not None

    def check(self, token: str | None, stack: str, phase: Phase) -> Access:
        """Raises VaultUnavailable when Vault cannot answer; never logs the token."""
        if not token:
            return Access.UNAUTHENTICATED
        key = hashlib.sha256(token.encode()).hexdigest()
        if self._refused.get(key) is not None:
            return Access.UNAUTHENTICATED
        client = connect(
            self.addr,
            token=token,
            ca_cert=self.ca_cert,
            namespace=self.namespace,
            timeout=self.timeout,
            session=self._session(),
        )
        try:
            capabilities = capabilities_self(client, creds_path(self.mount, stack, phase))
            if not capabilities & {"read", "root"} or "deny" in capabilities:
                return Access.DENIED
            metadata = self._logins.get(key)
            if metadata is None:
                metadata = token_lookup_self(client).metadata
                self._logins.put(key, metadata)
        except VaultForbidden:
            # capabilities-self and lookup-self are in every token's default policy:
            # a refusal means Vault does not know the token (unknown, expired, revoked).
            self._refused.put(key, {})
            return Access.UNAUTHENTICATED
        if scope_refusal(metadata, stack, phase) is not None:
            return Access.OTHER_LOGIN
        return Access.GRANTED
