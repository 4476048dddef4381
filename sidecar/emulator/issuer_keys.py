"""External OIDC issuers' signing keys, fetched over HTTPS and cached per issuer.

For a federated client assertion Entra reads the issuer's OpenID Connect
discovery document (``<iss>/.well-known/openid-configuration``, OpenID Connect
Discovery 1.0 section 4) and the JWKS at its ``jwks_uri``
(learn.microsoft.com/entra/workload-id/workload-identity-federation: the
external token is validated against the issuer's published keys).

The emulator's choices (no Microsoft source states Entra's):

* HTTPS only, trusting the CA bundle the emulator is configured with
  (``EmulatorConfig.issuer_ca``, ``azsidecar emulator serve --issuer-ca`` or
  ``AZSIDECAR_EMULATOR_ISSUER_CA``, admin ``POST /_emulator/issuer-keys``),
  otherwise the system trust store (``ssl.create_default_context``). Proxy
  variables in the environment are ignored: the issuers a test stands up are
  local.
* An issuer's keys are kept for ``cache_seconds`` (default 300) of the
  emulated clock, then fetched again before the next use.
* A ``kid`` missing from the cached set fetches again at once, but at most once
  per ``refetch_seconds`` (default 60) per issuer, so a stream of tokens with an
  unknown ``kid`` cannot turn into a stream of fetches.
* The discovery document's ``issuer`` must equal the token's ``iss`` (OpenID
  Connect Discovery 1.0 section 4.3), and only RSA keys with a ``kid`` count.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_CACHE_SECONDS = 300.0
DEFAULT_REFETCH_SECONDS = 60.0
FETCH_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 1 << 20


class IssuerUnreachable(Exception):
    """The issuer's discovery document or JWKS could not be fetched or read."""


@dataclass(frozen=True)
class IssuerKeySet:
    keys: dict[str, rsa.RSAPublicKey]
    fetched_at: float


class IssuerKeyCache:
    """Per-issuer RSA public keys by ``kid``; thread-safe, I/O outside any emulator lock."""

    def __init__(
        self,
        *,
        ca_file: Path | None = None,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        refetch_seconds: float = DEFAULT_REFETCH_SECONDS,
    ) -> None:
        self.ca_file = ca_file
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self.fetches = 0
        self._lock = threading.Lock()
        self._sets: dict[str, IssuerKeySet] = {}

    def configure(
        self,
        *,
        ca_file: Path | None = None,
        cache_seconds: float | None = None,
        refetch_seconds: float | None = None,
    ) -> None:
        """Change the trusted CA and cache times; forgets every cached key."""
        with self._lock:
            self.ca_file = ca_file
            if cache_seconds is not None:
                self.cache_seconds = cache_seconds
            if refetch_seconds is not None:
                self.refetch_seconds = refetch_seconds
            self._sets.clear()

    def settings(self) -> dict[str, Any]:
        """The configuration and what is cached (kids and fetch instants), as JSON data."""
        with self._lock:
            return {
                "caFile": None if self.ca_file is None else str(self.ca_file),
                "cacheSeconds": self.cache_seconds,
                "refetchSeconds": self.refetch_seconds,
                "fetches": self.fetches,
                "issuers": {
                    issuer: {"kids": sorted(found.keys), "fetchedAt": found.fetched_at}
                    for issuer, found in self._sets.items()
                },
            }

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    def key(self, issuer: str, kid: str, now: float) -> rsa.RSAPublicKey | None:
        """The issuer's key named ``kid``, or None when the issuer does not publish it.

        Raises :class:`IssuerUnreachable` when a fetch is due and fails.
        """
        with self._lock:
            cached = self._sets.get(issuer)
        fresh = cached is not None and 0 <= now - cached.fetched_at < self.cache_seconds
        if cached is None or not fresh:
            cached = self._fetch(issuer, now)
        found = cached.keys.get(kid)
        if found is None and now - cached.fetched_at >= self.refetch_seconds:
            cached = self._fetch(issuer, now)
            found = cached.keys.get(kid)
        return found

    def _fetch(self, issuer: str, now: float) -> IssuerKeySet:
        if not issuer.startswith("https://"):
            raise IssuerUnreachable(f"issuer {issuer!r} is not an https URL")
        discovery = _get_json(
            issuer.rstrip("/") + "/.well-known/openid-configuration", self._context()
        )
        if discovery.get("issuer") != issuer:
            raise IssuerUnreachable(
                f"the discovery document names issuer {discovery.get('issuer')!r}, not {issuer!r}"
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise IssuerUnreachable("the discovery document has no https jwks_uri")
        jwks = _get_json(jwks_uri, self._context())
        keys: dict[str, rsa.RSAPublicKey] = {}
        entries = jwks.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str):
                continue
            try:
                key = RSAAlgorithm.from_jwk(json.dumps(entry))
            except (ValueError, TypeError, KeyError):
                continue
            if isinstance(key, rsa.RSAPublicKey):
                keys[kid] = key
        fetched = IssuerKeySet(keys, now)
        with self._lock:
            self._sets[issuer] = fetched
            self.fetches += 1
        return fetched

    def _context(self) -> ssl.SSLContext:
        cafile = str(self.ca_file) if self.ca_file is not None else None
        return ssl.create_default_context(cafile=cafile)


def _get_json(url: str, context: ssl.SSLContext) -> dict[str, Any]:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT) as response:
            raw = response.read(MAX_DOCUMENT_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise IssuerUnreachable(f"GET {url} failed: {exc}") from exc
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise IssuerUnreachable(f"GET {url}: the document is larger than 1 MiB")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IssuerUnreachable(f"GET {url}: not JSON") from exc
    if not isinstance(data, dict):
        raise IssuerUnreachable(f"GET {url}: not a JSON object")
    return data
