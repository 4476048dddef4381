"""The issuer's documents as plain data: JWT header and claims, JWKS, discovery.

No I/O and no cryptography here: public keys arrive as their RSA numbers
(``n``, ``e``), the signature as bytes Transit returned; this module encodes.

* The **JWT** is RS256 (RFC 7515/7518), the only algorithm Entra ID supports
  for workload identity federation
  (learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations).
  Its ``kid`` is the key's RFC 7638 thumbprint, so a Transit key deleted and
  recreated under the same name can never reuse a ``kid`` a verifier cached.
* The **claims**: ``iss`` must equal the federated credential's issuer
  exactly (no surrounding whitespace, at most 600 characters), ``sub`` its
  subject, ``aud`` its single audience, ``api://AzureADTokenExchange`` for
  Entra (learn.microsoft.com/entra/workload-id/includes/
  federated-credential-configuration-considerations). ``stack``, ``phase``
  and ``integration`` say which run it was for; Entra ignores them.
* The **discovery document** holds what Entra reads from an external issuer
  (``issuer``, which must equal ``iss``, and ``jwks_uri``) and the three
  fields OpenID Connect Discovery 1.0 requires besides. ``authorization_endpoint``
  is left out, as GitHub Actions' issuer leaves it out of the document Entra
  trusts every day (its published ``/.well-known/openid-configuration``, as
  quoted in public repositories): nobody signs in here interactively. Azure's
  guide for self-managed issuers (azure.github.io/azure-workload-identity,
  "Discovery Document") publishes the same fields plus a placeholder one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sidecar.clock import require_utc
from sidecar.errors import InputError

ALGORITHM = "RS256"
ENTRA_AUDIENCE = "api://AzureADTokenExchange"
DISCOVERY_PATH = ".well-known/openid-configuration"
DEFAULT_JWKS_PATH = ".well-known/jwks.json"
MAX_CLAIM_LENGTH = 600  # Entra's limit on a federated credential's issuer, subject, audience
_HTTPS_URL = re.compile(r"https://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?")


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515, section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(value: int) -> str:
    """An unsigned integer as JWK writes it: big-endian, shortest, base64url (RFC 7518 6.3.1)."""
    if value <= 0:
        raise InputError("an RSA modulus or exponent must be positive")
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _compact_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def check_issuer_url(url: str, what: str = "issuer URL") -> str:
    """An ``https://`` URL with no query, fragment or whitespace, as Entra compares it."""
    if len(url) > MAX_CLAIM_LENGTH:
        raise InputError(f"{what} is {len(url)} characters; Entra allows {MAX_CLAIM_LENGTH}")
    if not _HTTPS_URL.fullmatch(url):
        raise InputError(
            f"{what} {url[:80]!r} is not a public https:// URL without query or fragment: "
            "Entra fetches the discovery document over HTTPS"
        )
    return url


@dataclass(frozen=True)
class IssuerIdentity:
    """Where the issuer lives: its URL (the ``iss`` claim) and where its JWKS is served."""

    url: str
    jwks_uri: str = ""

    def __post_init__(self) -> None:
        check_issuer_url(self.url)
        if not self.jwks_uri:
            object.__setattr__(self, "jwks_uri", f"{self.base}/{DEFAULT_JWKS_PATH}")
        check_issuer_url(self.jwks_uri, "jwks_uri")

    @property
    def base(self) -> str:
        """The URL the well-known paths are appended to (a terminating ``/`` removed)."""
        return self.url.rstrip("/")

    @property
    def discovery_url(self) -> str:
        return f"{self.base}/{DISCOVERY_PATH}"

    def relative_path(self, url: str) -> str | None:
        """``url``'s path below the issuer (``.well-known/jwks.json``), None if not below it."""
        prefix = self.base + "/"
        if not url.startswith(prefix) or len(url) == len(prefix):
            return None
        rest = url[len(prefix) :]
        parts = rest.split("/")
        if any(p in ("", ".", "..") for p in parts):
            return None
        return rest


@dataclass(frozen=True)
class PublicKey:
    """One published key version: its RSA numbers and Transit version."""

    version: int
    n: int
    e: int

    @property
    def kid(self) -> str:
        return thumbprint(self.n, self.e)

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": ALGORITHM,
            "kid": self.kid,
            "n": b64url_uint(self.n),
            "e": b64url_uint(self.e),
        }


def thumbprint(n: int, e: int) -> str:
    """The RFC 7638 SHA-256 thumbprint of an RSA public key, base64url."""
    required = {"e": b64url_uint(e), "kty": "RSA", "n": b64url_uint(n)}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode("ascii")
    return b64url(hashlib.sha256(canonical).digest())


def jwks(keys: Iterable[PublicKey]) -> dict[str, Any]:
    """The JWKS document, newest version first."""
    return {"keys": [k.jwk() for k in sorted(keys, key=lambda k: -k.version)]}


def discovery(identity: IssuerIdentity) -> dict[str, Any]:
    """The OpenID Provider Configuration document (OpenID Connect Discovery 1.0, 3)."""
    return {
        "issuer": identity.url,
        "jwks_uri": identity.jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
    }


@dataclass(frozen=True)
class TokenRequest:
    """What a token says about whom it is for; the issuer adds the rest."""

    subject: str
    stack: str
    phase: str
    integration: str
    audience: str = ENTRA_AUDIENCE

    def __post_init__(self) -> None:
        for name in ("subject", "audience"):
            value = getattr(self, name)
            if not value or value != value.strip() or len(value) > MAX_CLAIM_LENGTH:
                raise InputError(
                    f"token {name} must be 1..{MAX_CLAIM_LENGTH} characters without "
                    "surrounding whitespace (Entra compares it exactly)"
                )


def header(kid: str) -> dict[str, str]:
    return {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}


def claims(
    identity: IssuerIdentity,
    request: TokenRequest,
    now: datetime,
    lifetime_seconds: int,
    jti: str,
) -> dict[str, Any]:
    """The claims of a token issued at ``now`` (whole seconds) for ``lifetime_seconds``."""
    if lifetime_seconds <= 0:
        raise InputError("a token lifetime must be positive")
    issued = int(require_utc(now, "now").timestamp())
    return {
        "iss": identity.url,
        "sub": request.subject,
        "aud": request.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime_seconds,
        "jti": jti,
        "stack": request.stack,
        "phase": request.phase,
        "integration": request.integration,
    }


def signing_input(head: Mapping[str, Any], body: Mapping[str, Any]) -> bytes:
    """``base64url(header) '.' base64url(claims)``: the bytes the signature covers."""
    return f"{b64url(_compact_json(head))}.{b64url(_compact_json(body))}".encode("ascii")


def compact(signed: bytes, signature: bytes) -> str:
    """The JWS compact serialization: the signing input, ``.``, the signature."""
    if not signature:
        raise InputError("an empty signature cannot make a token")
    return f"{signed.decode('ascii')}.{b64url(signature)}"
