"""An external OIDC issuer for benchmarks: an RSA key in memory, its documents over HTTPS.

Entra (and the emulator standing in for it) reads an issuer's
``/.well-known/openid-configuration`` and its ``jwks_uri`` over HTTPS before it
accepts a federated client assertion
(learn.microsoft.com/entra/workload-id/workload-identity-federation). The
product's issuer signs through Vault's Transit engine; a benchmark that only
needs *some* issuer the emulator trusts makes an RSA key here instead (it never
leaves this process's memory), builds the documents and tokens with the
product's pure :mod:`sidecar.issuer.documents`, and serves them from a small
``http.server`` thread (:class:`sidecar.emulator.json_site.JsonSite`) under a
certificate of a CA made for the run (:attr:`BenchIssuer.ca_path`, for
``EmulatorConfig.issuer_ca``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sidecar.emulator.json_site import JsonSite
from sidecar.issuer import documents
from sidecar.issuer.documents import ENTRA_AUDIENCE, IssuerIdentity, PublicKey, TokenRequest
from sidecar.sensitive import Sensitive


class BenchIssuer:
    """An issuer at ``https://127.0.0.1:<port>`` signing RS256 tokens with one in-memory key."""

    def __init__(self, ca_dir: Path) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self.public = PublicKey(version=1, n=numbers.n, e=numbers.e)
        self._site = JsonSite(ca_dir, self.document)
        self.ca_path = self._site.ca_path
        #: Paths fetched, in order (the emulator's discovery and JWKS reads).
        self.requests = self._site.requests
        self.identity = IssuerIdentity(self._site.origin)

    @property
    def url(self) -> str:
        """The issuer's URL: the ``iss`` of its tokens, a federated credential's ``issuer``."""
        return self.identity.url

    def document(self, path: str) -> dict[str, Any] | None:
        if path == urlsplit(self.identity.discovery_url).path:
            return documents.discovery(self.identity)
        if path == urlsplit(self.identity.jwks_uri).path:
            return documents.jwks([self.public])
        return None

    def sign(
        self,
        subject: str,
        now: datetime,
        lifetime: timedelta = timedelta(minutes=10),
        audience: str = ENTRA_AUDIENCE,
    ) -> Sensitive:
        """A token for ``subject`` issued at ``now``, as a run would present it."""
        request = TokenRequest(subject, "bench", "run", "bench", audience)
        body = documents.claims(
            self.identity, request, now, int(lifetime.total_seconds()), uuid.uuid4().hex
        )
        signed = documents.signing_input(documents.header(self.public.kid), body)
        signature = self._key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return Sensitive(documents.compact(signed, signature))

    def stop(self) -> None:
        self._site.stop()

    def __enter__(self) -> BenchIssuer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
