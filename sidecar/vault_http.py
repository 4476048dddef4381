"""A Vault transport on the standard library alone, for the runner helper.

``azsidecar creds`` / ``exec`` run at the start of every CI job and make two or
three requests (a login, the credential's read, the upkeep while ``--wait``
lasts): importing hvac and requests would cost more than the requests
themselves. :class:`HttpTransport` offers the same few requests over
:mod:`http.client` and translates every failure as
:func:`sidecar.vault.translate_errors` does, carrying the path and status but
never a payload, a token or a secret.

It sends what :mod:`urllib.request` sent before it (the same headers, a new
connection per request) and follows redirects as urllib does (a GET on 301,
302, 303, 307 and 308, a POST on 301, 302 and 303 as a GET, at most 10 hops
and 4 visits of one address; any other 3xx is the error it was, and one to
``ftp://`` does not reach Vault), without urllib's import cost (issue 17).
With an ``http_proxy`` / ``https_proxy`` variable set (any case), requests go
through :mod:`urllib.request` itself, which honours it and ``no_proxy`` as
requests does.

TLS is verified against ``ca_cert`` (``vault.ca_cert``, ``VAULT_CACERT``) when
given, else against ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` if set (as
requests reads them), else the system's trust store, with the host name
checked (:func:`ssl.create_default_context`); there is no switch to skip
verification, as there is none for the hvac client.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import sys
import urllib.parse
from collections.abc import Mapping
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

from sidecar.errors import (
    VaultConflict,
    VaultError,
    VaultForbidden,
    VaultNotFound,
    VaultUnavailable,
)
from sidecar.vault_transport import PathRefusal

if TYPE_CHECKING:
    import urllib.request

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
    reason = getattr(exc, "reason", exc) if _is_url_error(exc) else exc
    name = type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__
    if isinstance(exc, (_NoHost, _NotHttp)):
        name = "URLError"
    return VaultUnavailable(
        f"cannot reach Vault ({name}); check the address and that it is up", path=path
    )


def _is_url_error(exc: BaseException) -> bool:
    """``exc`` is urllib's URLError (only the proxy path imports urllib.request)."""
    error = sys.modules.get("urllib.error")
    return error is not None and isinstance(exc, error.URLError)


#: What urllib.request sends as its User-Agent.
_USER_AGENT = f"Python-urllib/{sys.version_info[0]}.{sys.version_info[1]}"
#: urllib's HTTPRedirectHandler: the statuses it follows, and its limits.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTIONS = 10
_MAX_REPEATS = 4


def _proxied() -> bool:
    """A proxy variable urllib.request would read is set (a superset of when it uses one)."""
    return any(
        value and name.lower() in ("http_proxy", "https_proxy")
        for name, value in os.environ.items()
    )


class _NoHost(OSError):
    """urllib's ``URLError('no host given')``."""


class _NotHttp(OSError):
    """A redirect to ``ftp://``, which urllib would try to fetch: Vault is not there."""


class _Answer:
    """A response read whole: its status, its ``Location`` (or ``URI``) and its body.

    The body of a refusal that cannot be read is empty, as urllib's HTTPError
    reads it here; the error is kept for a redirect, which urllib reads unguarded.
    """

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        location = response.getheader("location")
        self.location = response.getheader("uri") if location is None else location
        self.unread: OSError | HTTPException | None = None
        if 200 <= self.status < 300:
            self.body = response.read()
            return
        try:
            self.body = response.read()
        except (OSError, HTTPException) as exc:
            self.body, self.unread = b"", exc


def _tls_context(ca_cert: str | None) -> ssl.SSLContext:
    cafile = ca_cert or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return ssl.create_default_context(cafile=cafile or None)


class HttpTransport:
    """Vault over :mod:`http.client`: a :class:`~sidecar.vault_transport.VaultTransport`."""

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
        self._context = _tls_context(ca_cert) if self._url.startswith("https:") else None
        # urllib read the proxy variables when its opener was built: here, likewise.
        self._opener = self._urllib_opener() if _proxied() else None

    def _urllib_opener(self) -> urllib.request.OpenerDirector:
        import urllib.request  # noqa: PLC0415 - only with a proxy to honour

        handlers: list[urllib.request.BaseHandler] = []
        if self._context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self._context))
        return urllib.request.build_opener(*handlers)

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
        url = f"{self._url}/v1/{quoted}"
        if self._opener is not None:
            return self._request_urllib(method, url, payload, headers, path)
        try:
            answer = self._exchange(method, url, payload, headers)
        except (OSError, HTTPException) as exc:  # refused, timeouts, TLS, resets
            raise _unreachable(exc, path) from exc
        return _json(answer.body)

    def _exchange(
        self, method: str, url: str, payload: bytes | None, headers: dict[str, str]
    ) -> _Answer:
        """The 2xx answer to ``method url``, redirects followed as urllib follows them."""
        visited: dict[str, int] = {}
        while True:
            answer = self._send(method, url, payload, headers)
            if 200 <= answer.status < 300:
                return answer
            target = self._redirect(method, url, answer, visited)
            if target is None:
                raise _Refused(answer.status, _json(answer.body))
            if answer.unread is not None:
                raise answer.unread
            url, method, payload = target, "GET", None
            headers = {k: v for k, v in headers.items() if k != "Content-Type"}

    def _redirect(
        self, method: str, url: str, answer: _Answer, visited: dict[str, int]
    ) -> str | None:
        """Where urllib's HTTPRedirectHandler would go next; None: the status is the error."""
        if answer.status not in _REDIRECTS or answer.location is None:
            return None
        new = urllib.parse.urlparse(answer.location)
        if new.scheme not in ("http", "https", "ftp", ""):
            return None  # urllib refuses it
        if not (method == "GET" or (answer.status in (301, 302, 303) and method == "POST")):
            return None
        if new.scheme == "ftp":
            raise _NotHttp
        parts = list(new)
        if not new.path and new.netloc:
            parts[2] = "/"
        import string  # noqa: PLC0415 - only for a redirect

        target = urllib.parse.quote(
            urllib.parse.urlunparse(parts), encoding="iso-8859-1", safe=string.punctuation
        )
        target = urllib.parse.urljoin(url, target)
        if visited.get(target, 0) >= _MAX_REPEATS or len(visited) >= _MAX_REDIRECTIONS:
            return None
        visited[target] = visited.get(target, 0) + 1
        return target

    def _send(
        self, method: str, url: str, payload: bytes | None, headers: Mapping[str, str]
    ) -> _Answer:
        """One request on a new connection (``Connection: close``), as urllib sends it."""
        # Split as urllib.request.Request does: no fragment, the host up to / or ?.
        scheme, rest = url.partition("#")[0].split(":", 1)
        rest = rest.removeprefix("//")
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        host, selector = urllib.parse.unquote(rest[:cut]), rest[cut:]
        if not host:
            raise _NoHost
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, timeout=self._timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(host, timeout=self._timeout)
        sent = {"Host": host, "User-Agent": _USER_AGENT, "Connection": "close", **headers}
        try:
            connection.request(method, selector, payload, sent)
            with connection.getresponse() as response:
                return _Answer(response)
        finally:
            connection.close()

    def _request_urllib(
        self, method: str, url: str, payload: bytes | None, headers: dict[str, str], path: str
    ) -> dict[str, Any]:
        """The request through urllib.request's opener, which honours the proxy variables."""
        import urllib.error  # noqa: PLC0415 - loaded with urllib.request
        import urllib.request  # noqa: PLC0415 - only with a proxy to honour

        assert self._opener is not None
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            url, data=payload, headers=headers, method=method
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
