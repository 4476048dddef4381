"""The issuer's documents: JWK encoding, thumbprints, claims, discovery, URL rules.

The signature here is made locally with a key generated for the test, so the
documents can be checked by PyJWT without Vault; tests/test_issuer.py signs
through Transit.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sidecar.errors import InputError
from sidecar.issuer import documents
from sidecar.issuer.documents import IssuerIdentity, PublicKey, TokenRequest

NOW = datetime(2030, 6, 1, 12, 0, 0, 750000, tzinfo=UTC)
ISSUER = IssuerIdentity("https://issuer.example.com/oidc")

# RFC 7638, section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRX"
    "jBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
    "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPk"
    "sINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _uint(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def test_thumbprint_matches_rfc_7638() -> None:
    assert documents.thumbprint(_uint(RFC7638_N), 65537) == RFC7638_THUMBPRINT


def test_jwk_encodes_the_numbers_as_rfc_7518_says() -> None:
    key = PublicKey(version=3, n=_uint(RFC7638_N), e=65537)
    assert key.jwk() == {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": RFC7638_THUMBPRINT,
        "n": RFC7638_N,
        "e": "AQAB",
    }


def test_jwks_lists_newest_first() -> None:
    keys = [PublicKey(1, _uint(RFC7638_N), 65537), PublicKey(2, _uint(RFC7638_N) + 2, 3)]
    assert [k["e"] for k in documents.jwks(keys)["keys"]] == ["Aw", "AQAB"]


def test_discovery_names_issuer_and_jwks() -> None:
    assert documents.discovery(ISSUER) == {
        "issuer": "https://issuer.example.com/oidc",
        "jwks_uri": "https://issuer.example.com/oidc/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    assert (
        ISSUER.discovery_url == "https://issuer.example.com/oidc/.well-known/openid-configuration"
    )


def test_a_terminating_slash_stays_in_iss_and_leaves_the_paths() -> None:
    slashed = IssuerIdentity("https://acct.blob.core.windows.net/oidc/")
    assert documents.discovery(slashed)["issuer"] == "https://acct.blob.core.windows.net/oidc/"
    assert slashed.jwks_uri == "https://acct.blob.core.windows.net/oidc/.well-known/jwks.json"
    assert slashed.relative_path(slashed.jwks_uri) == ".well-known/jwks.json"


@pytest.mark.parametrize(
    "url",
    [
        "http://issuer.example.com",
        "https://issuer.example.com/a b",
        " https://issuer.example.com",
        "https://issuer.example.com/?x=1",
        "https://issuer.example.com/#frag",
        "https://" + "a" * 600 + ".example.com",
        "issuer.example.com",
    ],
)
def test_issuer_url_must_be_https_and_exact(url: str) -> None:
    with pytest.raises(InputError):
        IssuerIdentity(url)


@pytest.mark.parametrize(
    ("jwks_uri", "relative"),
    [
        ("https://issuer.example.com/oidc/keys/jwks.json", "keys/jwks.json"),
        ("https://other.example.com/oidc/jwks.json", None),
        ("https://issuer.example.com/oidcx/jwks.json", None),
        ("https://issuer.example.com/oidc/../jwks.json", None),
    ],
)
def test_relative_path_of_the_jwks(jwks_uri: str, relative: str | None) -> None:
    assert ISSUER.relative_path(jwks_uri) == relative


def test_claims_carry_what_entra_and_the_run_need() -> None:
    request = TokenRequest(
        subject="azsidecar:web:apply", stack="web", phase="apply", integration="i"
    )
    body = documents.claims(ISSUER, request, NOW, 600, "abc")
    issued = int(datetime(2030, 6, 1, 12, tzinfo=UTC).timestamp())
    assert body == {
        "iss": "https://issuer.example.com/oidc",
        "sub": "azsidecar:web:apply",
        "aud": "api://AzureADTokenExchange",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 600,
        "jti": "abc",
        "stack": "web",
        "phase": "apply",
        "integration": "i",
    }
    assert documents.header("kid1") == {"alg": "RS256", "kid": "kid1", "typ": "JWT"}


@pytest.mark.parametrize(
    "changes",
    [{"subject": ""}, {"subject": " padded"}, {"audience": "x" * 601}, {"audience": ""}],
)
def test_token_request_refuses_what_entra_would_not_match(changes: dict[str, str]) -> None:
    fields = {"subject": "s", "stack": "web", "phase": "plan", "integration": "i", **changes}
    with pytest.raises(InputError):
        TokenRequest(**fields)


def test_a_locally_signed_token_verifies_with_pyjwt_against_the_jwks() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()
    key = PublicKey(version=1, n=numbers.n, e=numbers.e)
    request = TokenRequest(subject="sub-1", stack="web", phase="plan", integration="web-plan")
    head = documents.header(key.kid)
    body = documents.claims(ISSUER, request, NOW, 600, "jti-1")
    signed = documents.signing_input(head, body)
    token = documents.compact(signed, private.sign(signed, padding.PKCS1v15(), hashes.SHA256()))

    jwk = jwt.PyJWKSet.from_dict(documents.jwks([key]))[key.kid]
    decoded = jwt.decode(
        token,
        jwk.key,
        algorithms=["RS256"],
        audience="api://AzureADTokenExchange",
        issuer=ISSUER.url,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert decoded == body
    assert jwt.get_unverified_header(token) == head
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==")) == head
