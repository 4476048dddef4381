"""Workload identity federation: a ``client_assertion`` issued by an external OIDC issuer.

learn.microsoft.com/entra/workload-id/workload-identity-federation: the
workload sends the external token as ``client_assertion`` (type
``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``); Entra checks it
against the issuer's published keys and matches its ``iss``, ``sub`` and
``aud`` against a federated identity credential of the application.
Matching is exact and case-sensitive
(learn.microsoft.com/entra/identity-platform/reference-breaking-changes,
"Federated identity credentials now use case-sensitive matching").

The checks run in this order: the claims are read unverified; the application
must have a credential visible on the serving replica (else AADSTS70021) whose
issuer is the token's ``iss`` (else AADSTS700211), and only then are that
issuer's keys fetched (:mod:`issuer_keys`), so the emulator never fetches from
an issuer nobody trusts. Then the signature by ``kid`` (RS256), the time
claims, and last ``sub`` (AADSTS700213) and ``aud`` (AADSTS700212).

Entra's answers, with their sources:

* AADSTS70021, ``400 invalid_request``: "No matching federated identity record
  found for presented assertion. Assertion Issuer: '...'. Assertion Subject:
  '...'. Assertion Audience: '...'." (quoted in
  github.com/Azure/azure-workload-identity issue 616 with the status and error,
  and in github.com/MicrosoftDocs/azure-docs issue 97699; listed in
  learn.microsoft.com/azure/devops/pipelines/release/troubleshoot-workload-identity).
  Used when no credential is visible, which includes one not yet replicated.
* AADSTS700211, ``invalid_client``: "No matching federated identity record
  found for presented assertion issuer '...'. Please check your federated
  identity credential Subject, Audience and Issuer against the presented
  assertion." (github.com/Azure/azure-workload-identity issue 1200).
* AADSTS700213, ``invalid_client``: "No matching federated identity record
  found for presented assertion subject '...'. Check your federated identity
  credential Subject, Audience and Issuer against the presented assertion."
  (the same issue, and github.com/dotnet/maui pull request 31978; listed in
  the Azure DevOps troubleshooting page above).
* AADSTS700212 for the audience: no source quoted its text; the emulator's
  text follows the issuer and subject ones.
* AADSTS7000272, ``invalid_client``: "The certificate with identifier ... used
  to sign the federated credential could not be found in the metadata of
  identity provider .... Please validate that your Identity Provider's metadata
  exposes the key used to sign the incoming token."
  (github.com/Azure/azure-workload-identity issue 1232). Used for an unknown or
  missing ``kid``.
* AADSTS50166, ``400 invalid_request``: "Request to External OIDC endpoint
  failed." (github.com/Azure/azure-workload-identity issue 1130); the emulator
  appends its reason.
* AADSTS700024, ``invalid_client``: "Client assertion is not within its valid
  time range." (listed for workload identity in the Azure DevOps page above;
  the full text as in :mod:`tokens`).
* A signature the issuer's key does not verify: no source for the federated
  case; the emulator answers AADSTS50013 "Assertion failed signature
  validation. [Reason - The provided signature value did not match the expected
  signature value., ...]", Entra's text for a JWT-bearer assertion with a bad
  signature (quoted in github.com/Azure/azure-sdk-for-java issue 25109).
* AADSTS50027 for a token that is not a JWT or lacks ``sub``/``aud``/``exp``
  (learn.microsoft.com/entra/identity-platform/reference-error-codes,
  InvalidJwtToken); the detail text is the emulator's.

``invalid_client`` answers are 401, as the rest of the token endpoint answers them.

Time claims: ``exp`` is required, ``nbf`` honoured when present, each with a
leeway of :data:`tokens.ASSERTION_SKEW` (300 s, the default clock skew of
Microsoft.IdentityModel's TokenValidationParameters), against the emulated and/or
real clock as configured (``EmulatorState.jwt_nows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt

from sidecar.emulator.issuer_keys import IssuerKeyCache, IssuerUnreachable
from sidecar.emulator.records import FederatedCredential
from sidecar.emulator.tokens import ASSERTION_SKEW, ASSERTION_TIME, MALFORMED_JWT

NO_MATCH = 70021
NO_MATCH_ISSUER = 700211
NO_MATCH_AUDIENCE = 700212
NO_MATCH_SUBJECT = 700213
KEY_NOT_IN_METADATA = 7000272
ISSUER_UNREACHABLE = 50166
BAD_SIGNATURE = 50013
WIF_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
_CHECK = (
    "Check your federated identity credential Subject, Audience and Issuer against the "
    f"presented assertion. {WIF_DOCS}"
)


@dataclass
class FederationRejected(Exception):
    """An answer of the token endpoint: HTTP status, OAuth ``error``, AADSTS code, text."""

    status: int
    error: str
    code: int
    message: str

    def __str__(self) -> str:
        return f"AADSTS{self.code}: {self.message}"


def _client(code: int, message: str) -> FederationRejected:
    return FederationRejected(401, "invalid_client", code, message)


def unverified_claims(assertion: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims


def is_federated(assertion: str, client_id: str) -> bool:
    """True for a JWT whose ``iss`` is a URL, not the client id.

    An application's own certificate assertion has ``iss`` = ``sub`` = client id
    (learn.microsoft.com/entra/identity-platform/certificate-credentials); a
    federated credential's issuer is "The URL of the external identity provider"
    (learn.microsoft.com/graph/api/resources/federatedidentitycredential). Any
    other ``iss`` stays on the certificate path, which answers AADSTS700021.
    """
    claims = unverified_claims(assertion)
    if claims is None:
        return False
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or issuer == client_id:
        return False
    parts = urlsplit(issuer)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def _entra_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _malformed(detail: str) -> FederationRejected:
    return _client(MALFORMED_JWT, f"JWT token is invalid or malformed: {detail}")


def verify_federated_assertion(
    assertion: str,
    *,
    credentials: Sequence[FederatedCredential],
    keys: IssuerKeyCache,
    key_now: float,
    nows: Sequence[float],
) -> FederatedCredential:
    """The credential an external token matches; raises :class:`FederationRejected`.

    ``credentials`` are the application's federated credentials as the serving
    replica sees them; ``key_now`` is the emulated instant for the key cache,
    ``nows`` the instants the time claims are checked against.
    """
    claims = unverified_claims(assertion)
    if claims is None:
        raise _malformed("the assertion is not a JWT.")
    issuer = claims.get("iss")
    subject = claims.get("sub")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not isinstance(issuer, str) or not isinstance(subject, str):
        raise _malformed("the iss and sub claims must be strings.")
    if not audiences or not all(isinstance(a, str) for a in audiences):
        raise _malformed("the aud claim is missing.")
    shown_aud = ", ".join(str(a) for a in audiences)
    if not credentials:
        raise FederationRejected(
            400,
            "invalid_request",
            NO_MATCH,
            "No matching federated identity record found for presented assertion. Assertion "
            f"Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: "
            f"'{shown_aud}'. {WIF_DOCS}",
        )
    trusted = [c for c in credentials if c.issuer == issuer]
    if not trusted:
        raise _client(
            NO_MATCH_ISSUER,
            "No matching federated identity record found for presented assertion issuer "
            f"'{issuer}'. Please check your federated identity credential Subject, Audience "
            f"and Issuer against the presented assertion. {WIF_DOCS}",
        )
    _verify_signature(assertion, issuer, keys, key_now)
    _check_time(claims, nows)
    by_subject = [c for c in trusted if c.subject == subject]
    if not by_subject:
        raise _client(
            NO_MATCH_SUBJECT,
            "No matching federated identity record found for presented assertion subject "
            f"'{subject}'. {_CHECK}",
        )
    for cred in by_subject:
        if any(a in audiences for a in cred.audiences):
            return cred
    raise _client(
        NO_MATCH_AUDIENCE,
        "No matching federated identity record found for presented assertion audience "
        f"'{shown_aud}'. {_CHECK}",
    )


def _verify_signature(assertion: str, issuer: str, keys: IssuerKeyCache, key_now: float) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise _malformed("the JWT header cannot be read.") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _key_not_found("(none: the JWT header has no kid)", issuer)
    try:
        key = keys.key(issuer, kid, key_now)
    except IssuerUnreachable as exc:
        raise FederationRejected(
            400,
            "invalid_request",
            ISSUER_UNREACHABLE,
            f"Request to External OIDC endpoint failed. [Reason - {exc}]",
        ) from exc
    if key is None:
        raise _key_not_found(kid, issuer)
    try:
        jwt.decode(
            assertion,
            key,
            algorithms=["RS256"],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iat": False,
                "verify_iss": False,
            },
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
        raise _client(
            BAD_SIGNATURE,
            "Assertion failed signature validation. [Reason - The provided signature value "
            f"did not match the expected signature value., Key id used by client: '{kid}', "
            f"issuer: '{issuer}']",
        ) from exc
    except jwt.PyJWTError as exc:
        raise _malformed("the JWT cannot be decoded.") from exc


def _key_not_found(kid: str, issuer: str) -> FederationRejected:
    return _client(
        KEY_NOT_IN_METADATA,
        f"The certificate with identifier {kid} used to sign the federated credential could "
        f"not be found in the metadata of identity provider {issuer}. Please validate that "
        "your Identity Provider's metadata exposes the key used to sign the incoming token.",
    )


def _check_time(claims: dict[str, Any], nows: Sequence[float]) -> None:
    exp, nbf = _number(claims, "exp"), _number(claims, "nbf")
    if exp is None:
        raise _malformed("the exp claim is missing.")
    low = nbf if nbf is not None else float("-inf")
    if any(low - ASSERTION_SKEW <= t <= exp + ASSERTION_SKEW for t in nows):
        return
    valid_from = _entra_time(nbf if nbf is not None else _number(claims, "iat") or exp)
    raise _client(
        ASSERTION_TIME,
        "Client assertion is not within its valid time range. Current time: "
        f"{_entra_time(nows[0])}, assertion valid from {valid_from}, expiry time of "
        f"assertion {_entra_time(exp)}. Review the documentation at {WIF_DOCS} .",
    )
