"""JWTs: access tokens the emulator issues, and the client-signed JWTs it verifies.

Pure functions of their inputs (keys, claims, ``now``); no state, no I/O.

Two kinds of client-signed JWT are checked here: the ``client_assertion`` of
the token endpoint (RFC 7523, signed with a certificate registered on the
app) and the ``proof`` of Graph's ``addKey`` / ``removeKey``. Their time
claims are checked against a list of candidate "now" values, because MSAL
stamps assertions with the wall clock while the emulated clock may have
jumped days ahead; by default both the emulated and the real time count.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.emulator.records import KeyCredential

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ARM_RESOURCE = "https://management.azure.com/"
AAD_GRAPH_APP_ID = "00000002-0000-0000-c000-000000000000"
ACCESS_TOKEN_LIFETIME = 3600.0
ASSERTION_SKEW = 300.0
PROOF_MAX_LIFETIME = 600.0
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# scope (lower-cased, without "/.default") -> the audience the token carries
RESOURCES: dict[str, str] = {
    "https://graph.microsoft.com": GRAPH_RESOURCE,
    GRAPH_APP_ID: GRAPH_RESOURCE,
    "https://management.azure.com": ARM_RESOURCE,
    "https://management.core.windows.net": ARM_RESOURCE,
    "797f4846-ba00-4fd7-ba43-dac1f8f63013": ARM_RESOURCE,
}
GRAPH_AUDIENCES = frozenset({GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID})
ARM_AUDIENCES = frozenset(
    {
        ARM_RESOURCE,
        ARM_RESOURCE.rstrip("/"),
        "https://management.core.windows.net/",
        "797f4846-ba00-4fd7-ba43-dac1f8f63013",
    }
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def resource_for_scope(scope: str) -> str | None:
    """The audience for a client-credentials scope, or None if the scope is not valid."""
    parts = [p for p in scope.split() if p.lower() not in {"openid", "profile", "offline_access"}]
    if len(parts) != 1 or not parts[0].lower().endswith("/.default"):
        return None
    base = parts[0][: -len("/.default")].rstrip("/").lower()
    return RESOURCES.get(base)


class SigningKey:
    """The emulator's RSA key for access tokens, published in the JWKS."""

    def __init__(self, key: rsa.RSAPrivateKey | None = None) -> None:
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = b64url(hashlib.sha1(public_der, usedforsecurity=False).digest())

    def pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the token signing key must be RSA")
        return cls(key)

    def jwk(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(n),
            "e": b64url(e),
        }


@dataclass(frozen=True)
class TokenGrant:
    """What an access token says about its holder."""

    tenant_id: str
    app_id: str
    sp_object_id: str
    audience: str
    roles: tuple[str, ...]
    credential_kind: str  # "secret", "certificate" or "federated"


def issue_access_token(signing: SigningKey, grant: TokenGrant, now: float) -> tuple[str, int]:
    """A v1-style app-only access token as Entra issues for client credentials."""
    issued = int(now)
    expires = int(now + ACCESS_TOKEN_LIFETIME)
    issuer = f"https://sts.windows.net/{grant.tenant_id}/"
    claims: dict[str, Any] = {
        "aud": grant.audience,
        "iss": issuer,
        "iat": issued,
        "nbf": issued,
        "exp": expires,
        "aio": b64url(uuid.uuid4().bytes),
        "app_displayname": None,
        "appid": grant.app_id,
        "appidacr": "2" if grant.credential_kind == "certificate" else "1",
        "idp": issuer,
        "idtyp": "app",
        "oid": grant.sp_object_id,
        "rh": "0.emulated.",
        "sub": grant.sp_object_id,
        "tid": grant.tenant_id,
        "uti": b64url(uuid.uuid4().bytes),
        "ver": "1.0",
    }
    if grant.roles:
        claims["roles"] = list(grant.roles)
    token = jwt.encode(
        claims,
        signing.key,
        algorithm="RS256",
        headers={"typ": "JWT", "kid": signing.kid, "x5t": signing.kid},
    )
    return token, expires - issued


class InvalidToken(Exception):
    """An access token presented to Graph or ARM is not acceptable."""


def verify_access_token(
    signing: SigningKey, token: str, audiences: frozenset[str], now: float
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing.key.public_key(),
            algorithms=["RS256"],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("IDX10511: Signature validation failed.") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("IDX14100: JWT is not well formed.") from exc
    if claims.get("aud") not in audiences:
        raise InvalidToken("Invalid audience.")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise InvalidToken("Lifetime validation failed, the token is expired.")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + ASSERTION_SKEW:
        raise InvalidToken("Lifetime validation failed, the token is not yet valid.")
    tid = claims.get("tid")
    if not isinstance(tid, str) or claims.get("iss") != f"https://sts.windows.net/{tid}/":
        raise InvalidToken("Invalid issuer.")
    return claims


class JwtRejected(Exception):
    """A client assertion or proof failed; ``code`` is the AADSTS number when it has one."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Entra's answers to a bad ``client_assertion``. Sources (Microsoft's own pages):
#  * learn.microsoft.com/entra/identity-platform/reference-error-codes: AADSTS700027
#    "Client assertion failed signature validation."; AADSTS50027 InvalidJwtToken
#    (malformed JWT, missing claims).
#  * learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-
#    service-principal (and the Python SDK's TROUBLESHOOTING.md): AADSTS700027
#    "Client assertion contains an invalid signature."; AADSTS700021 "Client assertion
#    application identifier doesn't match 'client_id' parameter."; AADSTS700023 "Client
#    assertion audience claim does not match Realm issuer."
#  * learn.microsoft.com/azure-stack/hci/manage/troubleshoot-hci-registration and
#    learn.microsoft.com/entra/msal/dotnet/how-to/msal-net-migration-confidential-client:
#    the "[Reason - The key was not found.]" / "[Reason - The key used is expired.
#    Thumbprint of key used by client: '...', Found key 'Start=..., End=...']" details.
#    Entra's current wording for an unknown key, quoted in many public bug reports, is
#    "The certificate with identifier used to sign the client assertion is not
#    registered on application. [Reason - The key was not found., ...]"; for a key that
#    does not verify the signature "[Reason - Key was found, but use of the key to
#    verify the signature failed., ...]".
#  * github.com/Azure/azure-cli/issues/28708 (a maintainer quoting Entra): AADSTS700024
#    "Client assertion is not within its valid time range. Current time: ..., assertion
#    valid from ..., expiry time of assertion ...".
KEY_NOT_FOUND = 700027
ASSERTION_AUDIENCE = 700023
ASSERTION_CLIENT_ID = 700021
ASSERTION_TIME = 700024
MALFORMED_JWT = 50027
_CERT_DOCS = "https://learn.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials"
_SIGNATURE = "Client assertion failed signature validation."
_INVALID = "Client assertion contains an invalid signature."
_NOT_REGISTERED = (
    "The certificate with identifier used to sign the client assertion is not registered "
    "on application."
)


def _entra_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _key_window(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m/%d/%Y %H:%M:%S")


def _find_key(header: dict[str, Any], keys: Sequence[KeyCredential]) -> tuple[KeyCredential, str]:
    """The registered key the header names: ``x5t#S256`` (SHA-256) first, else ``x5t`` (SHA-1).

    The current certificate-credentials page asks for ``x5t#S256`` with PS256; its
    earlier version (learn.microsoft.com/previous-versions/azure/active-directory/develop/
    certificate-credentials) for ``x5t`` with RS256; Entra accepts both. MSAL Python
    1.39 sends ``x5t`` (RS256) when given a ``thumbprint`` and ``x5t#S256`` (PS256)
    when given only a ``public_certificate`` or a PFX.
    """
    s256 = header.get("x5t#S256")
    sha1 = header.get("x5t")
    for name, value, attribute in (("x5t#S256", s256, "sha256"), ("x5t", sha1, "sha1")):
        if not isinstance(value, str) or not value:
            continue
        try:
            wanted = b64url_decode(value)
        except ValueError as exc:
            raise JwtRejected(MALFORMED_JWT, f"JWT header {name} is not valid base64url.") from exc
        for key in keys:
            if getattr(key, attribute) == wanted:
                return key, wanted.hex().upper()
        raise JwtRejected(
            KEY_NOT_FOUND,
            f"{_NOT_REGISTERED} [Reason - The key was not found., Thumbprint of key used by "
            f"client: '{wanted.hex().upper()}']",
        )
    raise JwtRejected(
        KEY_NOT_FOUND,
        f"{_NOT_REGISTERED} [Reason - The key was not found., The JWT header carries neither "
        "x5t nor x5t#S256, so the key cannot be identified.]",
    )


def _decode_verified(
    token: str, keys: Sequence[KeyCredential], now: float, algorithms: list[str]
) -> tuple[dict[str, Any], KeyCredential]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise JwtRejected(MALFORMED_JWT, "JWT token is invalid or malformed.") from exc
    key, thumbprint = _find_key(header, keys)
    found = f"Found key 'Start={_key_window(key.start)}, End={_key_window(key.end)}'"
    if now > key.end:
        raise JwtRejected(
            KEY_NOT_FOUND,
            f"{_INVALID} [Reason - The key used is expired., Thumbprint of key used by "
            f"client: '{thumbprint}', {found}]",
        )
    if now < key.start:
        # Not seen verbatim in a source: the expired case's wording, for the key's
        # other bound (its startDateTime still ahead).
        raise JwtRejected(
            KEY_NOT_FOUND,
            f"{_INVALID} [Reason - The key used is not yet valid., Thumbprint of key used "
            f"by client: '{thumbprint}', {found}]",
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.certificate.public_key(),  # type: ignore[arg-type]
            algorithms=algorithms,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iat": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidAlgorithmError as exc:
        raise JwtRejected(KEY_NOT_FOUND, f"{_SIGNATURE} [Reason - {exc}]") from exc
    except jwt.InvalidSignatureError as exc:
        raise JwtRejected(
            KEY_NOT_FOUND,
            f"{_INVALID} [Reason - Key was found, but use of the key to verify the signature "
            f"failed., Thumbprint of key used by client: '{thumbprint}', {found}]",
        ) from exc
    except jwt.PyJWTError as exc:
        raise JwtRejected(MALFORMED_JWT, "JWT token is invalid or malformed.") from exc
    return claims, key


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def verify_client_assertion(
    assertion: str,
    *,
    client_id: str,
    audiences: Iterable[str],
    keys: Sequence[KeyCredential],
    key_now: float,
    nows: Sequence[float],
) -> KeyCredential:
    """Check a token-endpoint ``client_assertion``; returns the key credential that signed it.

    The claims are those of learn.microsoft.com/entra/identity-platform/
    certificate-credentials: ``aud`` the token endpoint, ``iss`` = ``sub`` = the
    client id, ``exp`` (and ``nbf`` when present; MSAL sends ``iat`` instead).
    ``keys`` are the application's key credentials as the serving replica sees
    them, so a certificate not yet replicated there is "not found" (700027).
    """
    claims, key = _decode_verified(assertion, keys, key_now, ["RS256", "PS256"])
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise JwtRejected(
            ASSERTION_CLIENT_ID,
            "Client assertion application identifier doesn't match 'client_id' parameter. "
            f"Review the documentation at {_CERT_DOCS} .",
        )
    aud = claims.get("aud")
    allowed = {a.rstrip("/").lower() for a in audiences}
    aud_values = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a.rstrip("/").lower() in allowed for a in aud_values):
        raise JwtRejected(
            ASSERTION_AUDIENCE,
            "Client assertion audience claim does not match Realm issuer. Review the "
            f"documentation at {_CERT_DOCS} .",
        )
    exp, nbf = _number(claims, "exp"), _number(claims, "nbf")
    if exp is None:
        raise JwtRejected(
            MALFORMED_JWT, "JWT token is invalid or malformed: the exp claim is missing."
        )
    low = nbf if nbf is not None else float("-inf")
    if not any(low - ASSERTION_SKEW <= t <= exp + ASSERTION_SKEW for t in nows):
        valid_from = _entra_time(nbf if nbf is not None else _number(claims, "iat") or exp)
        raise JwtRejected(
            ASSERTION_TIME,
            "Client assertion is not within its valid time range. Current time: "
            f"{_entra_time(nows[0])}, assertion valid from {valid_from}, expiry time of "
            f"assertion {_entra_time(exp)}. Review the documentation at {_CERT_DOCS} .",
        )
    return key


class ProofRejected(Exception):
    """An ``addKey`` / ``removeKey`` proof Graph would not accept; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_proof(
    proof: str,
    *,
    object_id: str,
    keys: Sequence[KeyCredential],
    key_now: float,
    nows: Sequence[float],
) -> KeyCredential:
    """Check the proof-of-possession JWT of ``addKey`` / ``removeKey``.

    learn.microsoft.com/graph/api/application-addkey (and application-removekey):
    "A self-signed JWT token used as a proof of possession of the existing keys.
    This JWT token must be signed using the private key of one of the
    application's existing valid certificates", with ``aud``
    ``00000002-0000-0000-c000-000000000000``, ``iss`` the id of the application,
    ``nbf``, and ``exp`` at most ``nbf`` + 10 minutes. Raises :class:`ProofRejected`.
    """
    try:
        claims, key = _decode_verified(proof, keys, key_now, ["RS256", "PS256"])
    except JwtRejected as exc:
        raise ProofRejected(exc.message) from exc
    if claims.get("aud") != AAD_GRAPH_APP_ID:
        raise ProofRejected(f"the audience (aud) must be '{AAD_GRAPH_APP_ID}'.")
    if claims.get("iss") != object_id:
        raise ProofRejected("the issuer (iss) must be the application's object id.")
    exp, nbf = _number(claims, "exp"), _number(claims, "nbf")
    if exp is None or nbf is None:
        raise ProofRejected("nbf and exp claims are required.")
    if exp - nbf > PROOF_MAX_LIFETIME:
        raise ProofRejected("the lifetime (exp - nbf) exceeds 10 minutes.")
    if not any(nbf - ASSERTION_SKEW <= t <= exp + ASSERTION_SKEW for t in nows):
        raise ProofRejected("the token is expired or not yet valid.")
    return key
