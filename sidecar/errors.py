"""The package's exception tree.

::

    SidecarError
    ├── ConfigError            bad configuration key or value
    ├── VaultError             any failure talking to Vault (path, status)
    │   ├── VaultUnavailable   Vault unreachable, sealed or 5xx: retry later
    │   ├── VaultNotFound      no data at the path
    │   ├── VaultForbidden     the token lacks a capability on the path
    │   │   └── VaultLoginError  a login refused, or its credential file unusable
    │   └── VaultConflict      check-and-set lost against another writer
    ├── GraphError             Microsoft Graph / login failure (status, method, code)
    │   ├── GraphThrottled     429 after the retries were spent
    │   └── GraphWriteUncertain a non-idempotent write got no clear answer: it may have happened
    ├── InputError             bad user input (names, ids, durations)
    ├── NotFoundError          no such stack / integration, or none attached for a phase
    │   └── InvalidRecord      a stored record fails its checks on read: no usable record
    └── NotReadyError          no credential is ready yet (``ready_at`` says when one will be)

Messages name what failed and what to do next. They never contain a secret:
callers pass paths, ids and status codes, never payloads.
"""

from __future__ import annotations

from datetime import datetime


class SidecarError(Exception):
    """Root of every error the package raises on purpose."""


class ConfigError(SidecarError):
    """A configuration key is unknown or its value is not allowed."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"configuration {key}: {message}")
        self.key = key


class InputError(SidecarError):
    """User input (a name, an id, a duration) is not acceptable."""


class VaultError(SidecarError):
    """Vault refused or failed a request."""

    def __init__(self, message: str, *, path: str = "", status: int | None = None) -> None:
        where = f" ({path})" if path else ""
        super().__init__(f"{message}{where}")
        self.path = path
        self.status = status


class VaultUnavailable(VaultError):
    """Vault is unreachable, sealed or answered 5xx; the request may be retried."""


class VaultNotFound(VaultError):
    """Nothing is stored at the path."""


class VaultForbidden(VaultError):
    """The token is missing, invalid or lacks the capability."""


class VaultLoginError(VaultForbidden):
    """A login was refused, or its credential could not be read: says which setting to fix."""


class VaultConflict(VaultError):
    """A check-and-set write lost: someone else wrote the path first."""


class GraphError(SidecarError):
    """Microsoft Graph or the login endpoint refused or failed a request."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        url: str = "",
        code: str = "",
    ) -> None:
        parts = [message]
        if method or url:
            parts.append(f"[{method} {url}]".replace(" ]", "]"))
        if status is not None:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(code)
        super().__init__(" ".join(parts))
        self.status = status
        self.method = method
        self.url = url
        self.code = code


class GraphThrottled(GraphError):
    """Graph kept answering 429 after the retries were spent."""


class GraphWriteUncertain(GraphError):
    """A non-idempotent write (a POST that creates) got a gateway error or no answer.

    Gateways answer 500/502/504 or drop the connection after the directory
    committed the write, so repeating it blindly can create a duplicate. The
    caller looks for the object by its idempotency key (a display name, an
    intent-named credential, a thumbprint) before writing again, or leaves it
    to reconciliation.
    """


class LeaseLost(GraphError):
    """A Graph write was refused locally: this daemon no longer holds the leader lease.

    A GraphError so that every caller treats it as a write that did not happen
    (the intent stays for reconciliation by the leader).
    """


class NotFoundError(SidecarError):
    """The stack or integration does not exist, or the stack has none for the phase."""


class InvalidRecord(NotFoundError):
    """A record read from KV fails the field checks: treated as no usable record.

    The message names the field and the path, never the value.
    """


class NotReadyError(SidecarError):
    """No credential is ready yet; ``ready_at`` is when one will be, if known."""

    def __init__(self, message: str, ready_at: datetime | None) -> None:
        super().__init__(message)
        self.ready_at = ready_at
