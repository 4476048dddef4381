"""A Vault transport on the standard library alone, for the runner helper.

``azsidecar creds`` / ``exec`` run at the start of every CI job and make two or
three requests (a login, the credential's read, the upkeep while ``--wait``
lasts): importing hvac and requests would cost more than the requests
themselves. :class:`HttpTransport` offers the same few requests over
:mod:`urllib.request` (which honours ``HTTPS_PROXY`` / ``NO_PROXY`` as requests
does) and translates every failure as :func:`sidecar.vault.translate_errors`
does, carrying the path and status but never a payload, a token or a secret.

TLS is verified against ``ca_cert`` (``vault.ca_cert``, ``VAULT_CACERT``) when
given, else against ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` if set (as
requests reads them), else the system's trust store; there is no switch to
skip verification, as there is none for the hvac client.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any

from sidecar.errors import (
    VaultConflict,
    VaultError,
    VaultForbidden,
    VaultNotFound,
    VaultUnavailable,
)
from sidecar.vault_transport import PathRefusal

#: hvac's exceptions for these statuses are translated to VaultUnavailable.
_UNAVAILABLE = frozenset({429, 500, 502, 503})


class _Refused(Exception):
    """A non-2xx answer, before translation: its status and the body's ``errors``/``data``."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        errors = body.get("errors")
        self.errors = [str(e) for e in errors] if isinstance(errors, list) else []
        data = body.get("data")
        self.data = data if isinstance(data, dict) else None

    def message(self) -> str:
        if self.errors:
            return "; ".join(self.errors)[:300]
        return f"HTTP {self.status}"


def _translate(refused: _Refused, path: str) -> VaultError:
    """The error :func:`sidecar.vault.translate_errors` gives for hvac's exception."""
    status = refused.status
    if status == 404:
        return VaultNotFound("nothing stored in Vault", path=path, status=404)
    if status in (401, 403):
        return VaultForbidden(
            "Vault denied the request: check the token and its policy", path=path, status=403
        )
    message = refused.message()
    if status == 400:
        if "check-and-set" in message:
            return VaultConflict(
                "check-and-set lost: another writer changed it first; re-read and retry",
                path=path,
                status=400,
            )
        return VaultError(f"Vault rejected the request: {message}", path=path, status=400)
    if status in _UNAVAILABLE:
        return VaultUnavailable(f"Vault is unavailable ({message}); retry later", path=path)
    return VaultError(f"Vault failed: {message}", path=path)


def _unreachable(exc: BaseException, path: str) -> VaultUnavailable:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    name = type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__
    return VaultUnavailable(
        f"cannot reach Vault ({name}); check the address and that it is up", path=path
    )


def _tls_context(ca_cert: str | None) -> ssl.SSLContext:
    cafile = ca_cert or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return ssl.create_default_context(cafile=cafile or None)


class HttpTransport:
    """Vault over :mod:`urllib.request`: a :class:`~sidecar.vault_transport.VaultTransport`."""

    def __init__(
        self,
        addr: str,
        *,
        ca_cert: str | None = None,
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = addr.rstrip("/")
        if not self._url.startswith(("http://", "https://")):
            raise VaultError(f"the Vault address must be http:// or https://, not {addr!r}")
        self._namespace = namespace
        self._timeout = timeout
        self._token: str | None = None
        handlers: list[urllib.request.BaseHandler] = []
        if self._url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=_tls_context(ca_cert)))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"HttpTransport(url={self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        headers = {"X-Vault-Request": "true"}
        if self._token:
            headers["X-Vault-Token"] = self._token
        if self._namespace:
            headers["X-Vault-Namespace"] = self._namespace
        payload = None
        if body is not None:
            payload = json.dumps(dict(body)).encode()
            headers["Content-Type"] = "application/json"
        # Percent-encoded as requests does: a hostile path (a --mount of the runner's
        # choosing) reaches Vault as an odd name, never as a client-side encoding crash.
        quoted = urllib.parse.quote(path, safe="/")
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            f"{self._url}/v1/{quoted}", data=payload, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                answer = _json(exc.read())
            except (OSError, HTTPException):
                answer = {}
            finally:
                exc.close()
            raise _Refused(exc.code, answer) from None
        except (OSError, HTTPException) as exc:  # URLError, timeouts, TLS, resets
            raise _unreachable(exc, path) from exc
        return _json(raw)

    def get(self, path: str) -> dict[str, Any]:
        try:
            return self._request("GET", path, None)
        except _Refused as refused:
            raise _translate(refused, path) from None

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._request("POST", path, body)
        except _Refused as refused:
            raise _translate(refused, path) from None

    def read_data(self, path: str) -> dict[str, Any] | PathRefusal | None:
        try:
            answer = self._request("GET", path, None)
        except _Refused as refused:
            if refused.status == 404:
                return None
            if refused.status == 400:
                return PathRefusal(refused.errors or [refused.message()], refused.data)
            raise _translate(refused, path) from None
        data = answer.get("data")
        return dict(data) if isinstance(data, dict) else None


def _json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
