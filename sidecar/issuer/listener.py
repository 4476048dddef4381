"""The issuer's documents over HTTPS, served by every daemon (leader or not).

Two paths, at the path part of the issuer URL (so an issuer URL with a path
prefix, ``https://host/azsidecar``, works behind a reverse proxy or not):

* ``<path>/.well-known/openid-configuration``: the discovery document
  (:func:`sidecar.issuer.documents.discovery`), which never changes while the
  daemon runs;
* the path of the discovery's ``jwks_uri`` (by default
  ``<path>/.well-known/jwks.json``): the JWKS, computed from Transit's current
  key set (:meth:`sidecar.issuer.signing.Issuer.jwks`).

Both are ``application/json`` with ``Cache-Control: public, max-age=...``;
any other path is 404. The listener is :class:`sidecar.http_listener.BoundedHTTPServer`
with an :class:`ssl.SSLContext`: unauthenticated and reachable by anyone
(Entra must reach it), so bounded like ``/metrics``.

**The JWKS cache.** Each daemon reads Transit at most once per
:data:`JWKS_FRESH` (measured on the issuer's clock, so an accelerated clock
scales it with everything else), and tells HTTP caches the same
``max-age``. A new key version therefore reaches a verifier at most twice
that long after Transit created it: seconds, against a ``publish_ahead`` of
hours (keep ``publish_ahead`` far above it in emulated runs too).

**While Transit is unreachable** the last good copy is served, for at most
:data:`JWKS_MAX_STALE` after it was read, with ``no-store`` so nobody
caches it further. A stale copy is safe because its age stays below
``publish_ahead`` (both bounds are capped at it, and at half of it for
freshness): a version that signs now was created ``publish_ahead`` ago, so
before the copy was read, and is in it; a version the copy still lists that
has since retired only verifies tokens that have expired. Past that bound,
or with no copy at all, the answer is 503 with a JSON error and
``Retry-After``; the error never carries Vault's text (paths, status) to the
public.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sidecar import metrics
from sidecar.clock import Clock
from sidecar.errors import SidecarError
from sidecar.http_listener import BoundedHTTPServer
from sidecar.issuer.documents import DISCOVERY_PATH
from sidecar.issuer.signing import Issuer
from sidecar.tls_files import ReloadingServerContext

log = logging.getLogger(__name__)

#: How long a JWKS read from Transit is served before Transit is read again.
JWKS_FRESH = timedelta(seconds=5)
#: How old the last good JWKS may be and still be served while Transit fails.
JWKS_MAX_STALE = timedelta(minutes=10)
#: ``max-age`` of the discovery document, which changes only with the configuration.
DISCOVERY_MAX_AGE = 3600
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class CachedJwks:
    """A JWKS as served: its JSON bytes and when (issuer clock) Transit was read."""

    body: bytes
    read_at: datetime


class JwksUnavailable(Exception):
    """Transit cannot be read and no copy young enough is left."""


class JwksCache:
    """The JWKS read from Transit at most every ``fresh``; see the module docstring."""

    def __init__(
        self,
        issuer: Issuer,
        clock: Clock | None = None,
        fresh: timedelta = JWKS_FRESH,
        max_stale: timedelta = JWKS_MAX_STALE,
    ) -> None:
        self.issuer = issuer
        self.clock = clock or issuer.clock
        ahead = issuer.policy.publish_ahead
        self.fresh = min(fresh, ahead / 2)
        self.max_stale = min(max_stale, ahead - self.fresh)
        self._lock = threading.Lock()
        self._copy: CachedJwks | None = None

    def get(self) -> tuple[CachedJwks, bool]:
        """The JWKS to serve and whether it is fresh; JwksUnavailable if there is none.

        One reader at a time refreshes; the others wait for its answer rather
        than all calling Transit at once.
        """
        with self._lock:
            now = self.clock.now()
            copy = self._copy
            if copy is not None and now - copy.read_at < self.fresh:
                return copy, True
            try:
                document = self.issuer.jwks()
            except SidecarError as exc:
                metrics.ISSUER_JWKS_READ_FAILURES.inc()
                log.warning("issuer JWKS: cannot read the signing key from Vault: %s", exc)
                if copy is not None and now - copy.read_at <= self.max_stale:
                    return copy, False
                raise JwksUnavailable from exc
            self._copy = CachedJwks(_json(document), now)
            return self._copy, True


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class Paths:
    """The two paths served, from the issuer URL's and the ``jwks_uri``'s path parts."""

    discovery: str
    jwks: str

    @classmethod
    def of(cls, issuer: Issuer) -> Paths:
        prefix = urlsplit(issuer.identity.url).path.rstrip("/")
        jwks = urlsplit(str(issuer.discovery()["jwks_uri"])).path or "/"
        return cls(f"{prefix}/{DISCOVERY_PATH}", jwks)


class IssuerApp:
    """The WSGI application: the discovery document, the JWKS, 404 for anything else."""

    def __init__(self, issuer: Issuer, cache: JwksCache | None = None) -> None:
        self.issuer = issuer
        self.cache = cache or JwksCache(issuer)
        self.paths = Paths.of(issuer)
        self._discovery = _json(issuer.discovery())

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path == self.paths.discovery:
            return _answer(start_response, "200 OK", self._discovery, DISCOVERY_MAX_AGE)
        if path == self.paths.jwks:
            try:
                copy, fresh = self.cache.get()
            except JwksUnavailable:
                body = _json(
                    {
                        "error": "temporarily_unavailable",
                        "error_description": "the issuer's signing keys cannot be read now",
                    }
                )
                extra = [("Retry-After", str(RETRY_AFTER_SECONDS))]
                return _answer(start_response, "503 Service Unavailable", body, 0, extra)
            max_age = int(self.cache.fresh.total_seconds()) if fresh else 0
            return _answer(start_response, "200 OK", copy.body, max_age)
        body = _json({"error": "not_found"})
        return _answer(start_response, "404 Not Found", body, 0)


def _answer(
    start_response: Any,
    status: str,
    body: bytes,
    max_age: int,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    cache = f"public, max-age={max_age}" if max_age > 0 else "no-store"
    headers = [("Content-Type", "application/json"), ("Cache-Control", cache), *(extra or [])]
    start_response(status, headers)
    return [body]


def tls_context(cert_file: str, key_file: str) -> ReloadingServerContext:
    """The listener's TLS (1.2 or later) from PEM files, reloaded when they are rotated
    in place (cert-manager, Vault PKI): a new connection gets the new pair at once.
    ConfigError if the pair is unusable at start; the error names the files, never
    their content."""
    return ReloadingServerContext(
        cert_file, key_file, setting="issuer.tls_cert", label="issuer TLS"
    )


def serve(
    issuer: Issuer,
    host: str,
    port: int,
    context: ssl.SSLContext | Callable[[], ssl.SSLContext],
) -> BoundedHTTPServer:
    """Start serving ``issuer``'s documents over HTTPS on ``host:port``."""
    return BoundedHTTPServer(host, port, IssuerApp(issuer), ssl_context=context).start()
