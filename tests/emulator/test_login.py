"""The token endpoint, OIDC metadata and JWKS as MSAL and plain HTTP clients see them."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import jwt
import pytest
import requests

from tests.emulator.conftest import ARM_SCOPE, GRAPH_SCOPE, World, make_proof, new_certificate


def test_openid_configuration_has_what_msal_reads(world: World) -> None:
    url = f"{world.emu.base_url}/{world.tenant_id}/v2.0/.well-known/openid-configuration"
    meta = world.http.get(url).json()
    base = f"{world.emu.base_url}/{world.tenant_id}"
    assert meta["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert meta["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert meta["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert meta["issuer"] and meta["device_authorization_endpoint"]


@pytest.mark.parametrize("form", ["x5t", "x5t#S256"])
def test_msal_gets_a_graph_token_with_the_management_certificate(world: World, form: str) -> None:
    mgmt = world.mgmt
    credential = (
        {"private_key": mgmt.private_key_pem, "thumbprint": mgmt.thumbprint_sha1}
        if form == "x5t"
        else {"private_key": mgmt.private_key_pem, "public_certificate": mgmt.certificate_pem}
    )
    sent: list[dict[str, object]] = []

    def capture(response: requests.Response, *args: object, **kwargs: object) -> None:
        body = response.request.body
        if isinstance(body, str) and "client_assertion=" in body:
            assertion = parse_qs(body)["client_assertion"][0]
            sent.append(jwt.get_unverified_header(assertion))

    world.http.hooks["response"].append(capture)
    result = world.msal_app(credential).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3500
    token = result["access_token"]
    assert len(sent) == 1 and form in sent[0]
    assert sent[0]["alg"] == ("RS256" if form == "x5t" else "PS256")
    keys = world.http.get(f"{world.emu.base_url}/{world.tenant_id}/discovery/v2.0/keys").json()
    jwk = jwt.PyJWK(keys["keys"][0])
    claims = jwt.decode(
        token,
        jwk.key,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["iss"] == f"https://sts.windows.net/{world.tenant_id}/"
    assert claims["tid"] == world.tenant_id and claims["appid"] == mgmt.app_id
    assert claims["oid"] == mgmt.sp_object_id
    assert claims["roles"] == ["Application.ReadWrite.OwnedBy"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["iat"] == int(world.emu.state.now())
    calls = world.emu.state.calls.query(kind="token")
    assert calls[-1].status == 200 and calls[-1].client == mgmt.app_id


def test_arm_scope_gives_an_arm_audience(world: World) -> None:
    result = world.msal_app(world.mgmt.msal_credential).acquire_token_for_client(scopes=[ARM_SCOPE])
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://management.azure.com/"
    assert "roles" not in claims


def _post(world: World, **form: str) -> tuple[int, dict[str, object]]:
    response = world.http.post(world.token_url, data=form)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        (
            {"client_id": "x", "scope": GRAPH_SCOPE, "client_secret": "s"},
            400,
            "invalid_request",
            900144,
        ),
        ({"grant_type": "password", "client_id": "x"}, 400, "unsupported_grant_type", 70003),
        (
            {"grant_type": "client_credentials", "scope": GRAPH_SCOPE},
            400,
            "invalid_request",
            900144,
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "x",
                "client_secret": "s",
                "scope": "https://graph.microsoft.com/User.Read",
            },
            400,
            "invalid_scope",
            70011,
        ),
        (
            {"grant_type": "client_credentials", "client_id": "x", "scope": GRAPH_SCOPE},
            401,
            "invalid_client",
            7000218,
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "nope",
                "client_secret": "s",
                "scope": GRAPH_SCOPE,
            },
            400,
            "unauthorized_client",
            700016,
        ),
    ],
)
def test_malformed_token_requests_get_entra_errors(
    world: World, form: dict[str, str], status: int, error: str, code: int
) -> None:
    got_status, body = _post(world, **form)
    assert got_status == status
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert str(body["error_description"]).startswith(f"AADSTS{code}: ")
    assert "Trace ID: " in str(body["error_description"])
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert body[key]


def test_unknown_tenant_is_90002(world: World) -> None:
    response = world.http.post(
        f"{world.emu.base_url}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "x",
            "client_secret": "s",
            "scope": GRAPH_SCOPE,
        },
    )
    assert response.status_code == 400 and response.json()["error_codes"] == [90002]


def _assertion(world: World, signer: object, **claims: object) -> str:
    cert = signer if signer is not None else new_certificate()
    body = {
        "aud": world.token_url,
        "iss": world.mgmt.app_id,
        "sub": world.mgmt.app_id,
        "exp": int(time.time()) + 600,
        "nbf": int(time.time()),
        "jti": "x",
    }
    body.update(claims)
    x5t = jwt.utils.base64url_encode(bytes.fromhex(cert.thumbprint_sha1)).decode()  # type: ignore[attr-defined]
    return jwt.encode(body, cert.private_key_pem, algorithm="RS256", headers={"x5t": x5t})  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("use_mgmt", "claims", "code"),
    [
        (False, {}, 700027),
        # AADSTS700023: learn.microsoft.com/azure/developer/java/sdk/
        # troubleshooting-authentication-service-principal (700212 is the
        # federated-credential audience code, not the certificate one).
        (True, {"aud": "https://elsewhere.example/token"}, 700023),
        (True, {"iss": "someone-else"}, 700021),
        (True, {"exp": 1000, "nbf": 400}, 700024),
    ],
)
def test_bad_client_assertions_are_rejected(
    world: World, use_mgmt: bool, claims: dict[str, object], code: int
) -> None:
    assertion = _assertion(world, world.mgmt if use_mgmt else None, **claims)
    status, body = _post(
        world,
        grant_type="client_credentials",
        client_id=world.mgmt.app_id,
        scope=GRAPH_SCOPE,
        client_assertion=assertion,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )
    assert status == 401 and body["error"] == "invalid_client"
    assert body["error_codes"] == [code]


def test_expired_key_credential_cannot_sign_in(world: World) -> None:
    world.emu.state.clock.advance(366 * 86400)
    assertion = _assertion(world, world.mgmt)
    status, body = _post(
        world,
        grant_type="client_credentials",
        client_id=world.mgmt.app_id,
        scope=GRAPH_SCOPE,
        client_assertion=assertion,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )
    assert status == 401 and body["error_codes"] == [700027]
    assert "expired" in str(body["error_description"])


def test_proof_helper_is_not_a_client_assertion(world: World) -> None:
    # A Graph addKey proof has the wrong audience for the token endpoint.
    status, body = _post(
        world,
        grant_type="client_credentials",
        client_id=world.mgmt.app_id,
        scope=GRAPH_SCOPE,
        client_assertion=make_proof(world.mgmt, world.mgmt.app_id),
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )
    assert status == 401 and body["error_codes"] in ([700021], [700023])
