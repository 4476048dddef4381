"""The Vault requests a login needs, over a small transport any client can offer.

Logging in (AppRole, JWT), looking the token up and renewing it are the same
few requests for every part of the product; :mod:`sidecar.vault_login` performs
them through these functions, whatever carries them: the hvac client of
:mod:`sidecar.vault` (the daemon, the resolver, the plugin) or
:class:`sidecar.vault_http.HttpTransport`, the standard library's HTTP client
(the runner helper, which runs at the start of every CI job and would
otherwise pay for importing hvac and requests).

A transport translates failures into :mod:`sidecar.errors` as
:func:`sidecar.vault.translate_errors` does, and never puts a token or a
secret in an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class PathRefusal:
    """A 400 from a logical path: its messages, and the ``data`` object sent beside them."""

    errors: list[str]
    data: Mapping[str, Any] | None


@runtime_checkable
class VaultTransport(Protocol):
    """What the login's requests need: Vault's address, the token, GET and POST."""

    @property
    def url(self) -> str: ...

    @property
    def token(self) -> str | None: ...

    @token.setter
    def token(self, value: str | None) -> None: ...

    def get(self, path: str) -> dict[str, Any]:
        """``GET /v1/<path>``: the answer's body, errors translated."""
        ...

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/<path>`` with a JSON body: the answer's body, errors translated."""
        ...

    def read_data(self, path: str) -> dict[str, Any] | PathRefusal | None:
        """``GET /v1/<path>``: its ``data``; a PathRefusal for a 400; None if nothing serves it."""
        ...


def renew_self(transport: VaultTransport, increment: str | None) -> dict[str, Any]:
    """``POST auth/token/renew-self``."""
    return transport.post(
        "auth/token/renew-self", {} if increment is None else {"increment": increment}
    )


def lookup_self(transport: VaultTransport) -> dict[str, Any]:
    """``GET auth/token/lookup-self``: the whole answer (policies, ttl, ...)."""
    return transport.get("auth/token/lookup-self")


def approle_login(
    transport: VaultTransport, role_id: str, secret_id: str, mount: str
) -> dict[str, Any]:
    """``POST auth/<mount>/login`` (AppRole); the answer, the token not yet used."""
    return transport.post(f"auth/{mount}/login", {"role_id": role_id, "secret_id": secret_id})


def jwt_login(transport: VaultTransport, role: str, assertion: str, mount: str) -> dict[str, Any]:
    """``POST auth/<mount>/login`` (JWT); the answer, the token not yet used."""
    return transport.post(f"auth/{mount}/login", {"role": role, "jwt": assertion})
