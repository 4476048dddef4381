"""The issuer's discovery document and JWKS over HTTPS, for the emulator to fetch.

Entra (and the emulator standing in for it) reads an external issuer's
``/.well-known/openid-configuration`` and its ``jwks_uri`` over HTTPS. The
daemon's own listener for them is built elsewhere; tests serve
:meth:`sidecar.issuer.signing.Issuer.discovery` and
:meth:`~sidecar.issuer.signing.Issuer.jwks` with this small ``http.server``
thread (:class:`sidecar.emulator.json_site.JsonSite`), under a certificate of a
CA made for the test (``ca_path``, which the emulator is told to trust).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sidecar.emulator.json_site import JsonSite
from sidecar.issuer.signing import Issuer


class IssuerSite:
    """An HTTPS server on a loopback port; :meth:`serve` names the issuer it publishes."""

    def __init__(self, ca_dir: Path) -> None:
        self.issuer: Issuer | None = None
        self.site = JsonSite(ca_dir, self.document)
        self.ca_path = self.site.ca_path
        self.requests = self.site.requests
        self.url = self.site.origin

    def serve(self, issuer: Issuer) -> None:
        """Publish ``issuer``'s documents (its URL must be :attr:`url`)."""
        if issuer.identity.url != self.url:
            raise ValueError(f"the issuer's URL must be {self.url}")
        self.issuer = issuer

    def document(self, path: str) -> dict[str, Any] | None:
        issuer = self.issuer
        if issuer is None:
            return None
        if path == urlsplit(issuer.identity.discovery_url).path:
            return issuer.discovery()
        if path == urlsplit(issuer.identity.jwks_uri).path:
            return issuer.jwks()
        return None

    def stop(self) -> None:
        self.site.stop()
