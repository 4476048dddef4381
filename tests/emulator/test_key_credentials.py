"""Certificate credentials of integration applications, through real HTTPS and real clients.

The rules come from learn.microsoft.com/graph/api/application-update (PATCH
``keyCredentials`` replaces the collection), /graph/api/resources/keycredential
(``key`` is null except on ``$select``), /graph/api/application-addkey and
-removekey (proof of possession; no addKey without a valid certificate) and
/entra/identity-platform/certificate-credentials (the client assertion). The
error codes and their sources are listed in ``sidecar.emulator.tokens``.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from sidecar.emulator import LagProfile
from sidecar.emulator.tls import ClientCertificate
from tests.emulator.conftest import GRAPH_SCOPE, MAX_LAG, World, make_proof, new_certificate

ARM_SCOPE = "https://management.azure.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DAY = 86400.0


def _integration(world: World) -> dict[str, Any]:
    """An application the management app owns, with its service principal, replicated."""
    headers = world.headers()
    app = world.create_app(headers)
    world.settle()
    sp = world.http.post(
        f"{world.graph}/servicePrincipals", json={"appId": app["appId"]}, headers=headers
    )
    assert sp.status_code == 201, sp.text
    world.settle()
    return app


def _entry(cert: ClientCertificate, **extra: Any) -> dict[str, Any]:
    return {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": cert.der_base64,
        "displayName": f"CN={cert.thumbprint_sha1[:8]}",
        **extra,
    }


def _patch_keys(
    world: World,
    object_id: str,
    entries: list[dict[str, Any]],
    http: requests.Session | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    return (http or world.http).patch(
        f"{world.graph}/applications/{object_id}",
        json={"keyCredentials": entries},
        headers=headers or world.headers(),
    )


def _keys(world: World, object_id: str, select: bool = False) -> list[dict[str, Any]]:
    params = {"$select": "keyCredentials"} if select else None
    response = world.http.get(
        f"{world.graph}/applications/{object_id}", params=params, headers=world.headers()
    )
    assert response.status_code == 200, response.text
    keys: list[dict[str, Any]] = response.json()["keyCredentials"]
    return keys


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _thumb_id(cert: ClientCertificate) -> str:
    return base64.b64encode(bytes.fromhex(cert.thumbprint_sha1)).decode()


def _msal_token(
    world: World, client_id: str, credential: dict[str, Any], http: requests.Session | None = None
) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        client_id,
        authority=f"{world.emu.base_url}/{world.tenant_id}",
        client_credential=credential,
        http_client=http or world.http,
        instance_discovery=False,
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[ARM_SCOPE])
    return result


def _sha1_credential(cert: ClientCertificate) -> dict[str, Any]:
    return {"private_key": cert.private_key_pem, "thumbprint": cert.thumbprint_sha1}


def _assertion(
    world: World,
    client_id: str,
    signer: ClientCertificate,
    *,
    named: ClientCertificate | None = None,
    header: str = "x5t",
    **claims: Any,
) -> str:
    """A client assertion signed by ``signer``'s key, naming ``named``'s certificate."""
    cert = named or signer
    now = int(time.time())
    body: dict[str, Any] = {
        "aud": world.token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": "j",
        "nbf": now,
        "exp": now + 600,
    }
    body.update(claims)
    digest = cert.thumbprint_sha1 if header == "x5t" else cert.thumbprint_sha256
    thumb = jwt.utils.base64url_encode(bytes.fromhex(digest)).decode()
    algorithm = "RS256" if header == "x5t" else "PS256"
    return jwt.encode(body, signer.private_key_pem, algorithm=algorithm, headers={header: thumb})


def _sign_in(world: World, client_id: str, assertion: str) -> tuple[int, dict[str, Any]]:
    response = world.http.post(
        world.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "scope": ARM_SCOPE,
            "client_assertion": assertion,
            "client_assertion_type": ASSERTION_TYPE,
        },
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def _add_key(world: World, object_id: str, new: ClientCertificate, proof: str) -> requests.Response:
    return world.http.post(
        f"{world.graph}/applications/{object_id}/addKey",
        json={"keyCredential": _entry(new), "passwordCredential": None, "proof": proof},
        headers=world.headers(),
    )


def _graph_error(response: requests.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# ----- PATCH keyCredentials --------------------------------------------------------------


def test_patch_replaces_the_collection_keeping_named_keys_and_dropping_the_rest(
    world: World,
) -> None:
    app = _integration(world)
    a, b, c = new_certificate("a"), new_certificate("b"), new_certificate("c")
    assert _patch_keys(world, app["id"], [_entry(a), _entry(b)]).status_code == 204
    world.settle()
    listed = _keys(world, app["id"])
    assert [k["customKeyIdentifier"] for k in listed] == [_thumb_id(a), _thumb_id(b)]
    assert all(k["key"] is None for k in listed)  # null on a plain GET
    selected = _keys(world, app["id"], select=True)
    assert [k["key"] for k in selected] == [a.der_base64, b.der_base64]
    key_a = listed[0]["keyId"]

    # Read, keep A by its keyId alone (no key, as a plain GET returns it), add C, leave B out.
    kept = _patch_keys(world, app["id"], [{"keyId": key_a}, _entry(c)])
    assert kept.status_code == 204, kept.text
    world.settle()
    after = _keys(world, app["id"])
    assert [k["customKeyIdentifier"] for k in after] == [_thumb_id(a), _thumb_id(c)]
    assert after[0]["keyId"] == key_a and after[0]["displayName"] == listed[0]["displayName"]

    for cert in (a, c):
        assert "access_token" in _msal_token(world, app["appId"], _sha1_credential(cert))
    status, body = _sign_in(world, app["appId"], _assertion(world, app["appId"], b))
    assert status == 401 and body["error_codes"] == [700027]
    assert "The key was not found" in body["error_description"]

    unknown = _patch_keys(world, app["id"], [{"keyId": "00000000-0000-0000-0000-000000000001"}])
    assert unknown.status_code == 400 and _graph_error(unknown)["code"] == "Request_BadRequest"
    emptied = _patch_keys(world, app["id"], [])
    assert emptied.status_code == 204
    world.settle()
    assert _keys(world, app["id"]) == []


def test_select_names_only_known_properties(world: World) -> None:
    app = _integration(world)
    url = f"{world.graph}/applications/{app['id']}"
    got = world.http.get(url, params={"$select": "id,displayName"}, headers=world.headers())
    assert got.status_code == 200 and set(got.json()) == {"@odata.context", "id", "displayName"}
    bad = world.http.get(url, params={"$select": "nonsense"}, headers=world.headers())
    assert bad.status_code == 400 and _graph_error(bad)["code"] == "Request_BadRequest"


def test_only_an_owner_may_patch_keys_with_owned_by(world: World) -> None:
    app = _integration(world)
    stranger = world.emu.state.seed_management_app(world.tenant_id, "other-manager")
    token = world.msal_app(stranger.msal_credential, stranger.app_id).acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )["access_token"]
    response = world.http.patch(
        f"{world.graph}/applications/{app['id']}",
        json={"keyCredentials": [_entry(new_certificate("x"))]},
        headers=world.headers(token),
    )
    assert response.status_code == 403
    assert _graph_error(response)["code"] == "Authorization_RequestDenied"


def test_a_patched_key_signs_in_only_where_it_has_replicated(world: World) -> None:
    app = _integration(world)
    state = world.emu.state
    state.set_replication(
        profile=LagProfile(
            name="one-lagging", fast_fraction=1.0, fast_max=0.0, tail_max=0.0, stuck={2: 300.0}
        )
    )
    cert = new_certificate("lagged")
    headers = world.headers()

    def on_replica(replica: int) -> requests.Session:
        state.routing.route_next_connection_to(replica)
        return world.emu.session()

    with on_replica(0) as writer:
        assert _patch_keys(world, app["id"], [_entry(cert)], writer, headers).status_code == 204
    with on_replica(2) as lagging:
        refused = _msal_token(world, app["appId"], _sha1_credential(cert), lagging)
    assert refused.get("error") == "invalid_client", refused
    assert refused["error_codes"] == [700027]
    assert "The key was not found" in refused["error_description"]
    with on_replica(0) as current:
        assert "access_token" in _msal_token(world, app["appId"], _sha1_credential(cert), current)
    admin = f"{world.emu.base_url}/_emulator/applications/{app['id']}"
    assert world.http.get(admin, params={"replica": 2}).json()["keyCredentials"] == []
    state.clock.advance(301)
    with on_replica(2) as caught_up:
        assert "access_token" in _msal_token(world, app["appId"], _sha1_credential(cert), caught_up)


# ----- addKey / removeKey ----------------------------------------------------------------


def test_a_just_added_key_cannot_sign_a_proof_on_a_lagging_replica(world: World) -> None:
    app = _integration(world)
    old, new = new_certificate("old"), new_certificate("new")
    assert _patch_keys(world, app["id"], [_entry(old)]).status_code == 204
    world.settle()
    old_id = _keys(world, app["id"])[0]["keyId"]
    state = world.emu.state
    state.set_replication(
        profile=LagProfile(
            name="one-lagging", fast_fraction=1.0, fast_max=0.0, tail_max=0.0, stuck={2: 300.0}
        )
    )
    headers = world.headers()

    def remove_old_on(replica: int) -> requests.Response:
        state.routing.route_next_connection_to(replica)
        with world.emu.session() as http:
            return http.post(
                f"{world.graph}/applications/{app['id']}/removeKey",
                json={"keyId": old_id, "proof": make_proof(new, app["id"])},
                headers=headers,
            )

    state.routing.route_next_connection_to(0)
    with world.emu.session() as writer:
        added = writer.post(
            f"{world.graph}/applications/{app['id']}/addKey",
            json={
                "keyCredential": _entry(new),
                "passwordCredential": None,
                "proof": make_proof(old, app["id"]),
            },
            headers=headers,
        )
    assert added.status_code == 200, added.text
    refused = remove_old_on(2)
    assert refused.status_code == 401
    assert "The key was not found" in _graph_error(refused)["message"]
    state.clock.advance(301)
    assert remove_old_on(2).status_code == 204


def test_add_key_is_refused_without_a_valid_certificate_and_patch_works_instead(
    world: World,
) -> None:
    app = _integration(world)
    first = new_certificate("first")
    refused = _add_key(world, app["id"], first, make_proof(first, app["id"]))
    assert refused.status_code == 401, refused.text
    error = _graph_error(refused)
    assert error["code"] == "Authentication_MissingOrMalformed"
    assert error["message"].startswith("Access Token missing or malformed.")
    assert "no valid certificate" in error["message"]

    # All certificates expired counts the same as none added yet.
    end = world.emu.state.now() + DAY
    assert _patch_keys(world, app["id"], [_entry(first, endDateTime=_iso(end))]).status_code == 204
    world.emu.state.clock.set(end + MAX_LAG)
    expired = _add_key(world, app["id"], new_certificate("n"), make_proof(first, app["id"]))
    assert expired.status_code == 401
    assert "no valid certificate" in _graph_error(expired)["message"]

    # PATCH is the way in; after it, addKey works with a proof from the new key.
    second = new_certificate("second")
    assert _patch_keys(world, app["id"], [_entry(second)]).status_code == 204
    world.settle()
    added = _add_key(world, app["id"], new_certificate("third"), make_proof(second, app["id"]))
    assert added.status_code == 200, added.text


def test_add_key_with_proof_then_remove_the_old_key_on_an_integration_app(world: World) -> None:
    app = _integration(world)
    old, new = new_certificate("old"), new_certificate("new")
    assert _patch_keys(world, app["id"], [_entry(old)]).status_code == 204
    world.settle()
    added = _add_key(world, app["id"], new, make_proof(old, app["id"]))
    assert added.status_code == 200, added.text
    assert added.json()["customKeyIdentifier"] == _thumb_id(new)
    world.settle()
    assert "access_token" in _msal_token(world, app["appId"], _sha1_credential(new))
    old_id = next(
        k["keyId"] for k in _keys(world, app["id"]) if k["customKeyIdentifier"] == _thumb_id(old)
    )
    removed = world.http.post(
        f"{world.graph}/applications/{app['id']}/removeKey",
        json={"keyId": old_id, "proof": make_proof(new, app["id"])},
        headers=world.headers(),
    )
    assert removed.status_code == 204, removed.text
    world.settle()
    assert [k["customKeyIdentifier"] for k in _keys(world, app["id"])] == [_thumb_id(new)]
    status, body = _sign_in(world, app["appId"], _assertion(world, app["appId"], old))
    assert status == 401 and body["error_codes"] == [700027]


def _proof(signer: ClientCertificate, iss: str, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "aud": "00000002-0000-0000-c000-000000000000",
        "iss": iss,
        "nbf": now,
        "exp": now + 600,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    x5t = jwt.utils.base64url_encode(bytes.fromhex(signer.thumbprint_sha1)).decode()
    return jwt.encode(body, signer.private_key_pem, algorithm="RS256", headers={"x5t": x5t})


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("aud-graph", "audience"),
        ("iss-app-id", "issuer"),
        ("lifetime-11-minutes", "lifetime"),
        ("no-nbf", "nbf and exp"),
        ("expired", "expired or not yet valid"),
        ("unknown-signer", "The key was not found"),
        ("other-apps-key", "The key was not found"),
    ],
)
def test_add_and_remove_key_refuse_bad_proofs(world: World, case: str, reason: str) -> None:
    app = _integration(world)
    other = _integration(world)
    cert, foreign = new_certificate("current"), new_certificate("foreign")
    assert _patch_keys(world, app["id"], [_entry(cert)]).status_code == 204
    assert _patch_keys(world, other["id"], [_entry(foreign)]).status_code == 204
    world.settle()
    now = int(time.time())
    proofs = {
        "aud-graph": _proof(cert, app["id"], aud="00000003-0000-0000-c000-000000000000"),
        "iss-app-id": _proof(cert, app["appId"]),
        "lifetime-11-minutes": _proof(cert, app["id"], exp=now + 660),
        "no-nbf": _proof(cert, app["id"], nbf=None),
        "expired": _proof(cert, app["id"], nbf=now - 7200, exp=now - 6600),
        "unknown-signer": _proof(new_certificate("stranger"), app["id"]),
        "other-apps-key": _proof(foreign, app["id"]),
    }
    key_id = _keys(world, app["id"])[0]["keyId"]
    for response in (
        _add_key(world, app["id"], new_certificate("next"), proofs[case]),
        world.http.post(
            f"{world.graph}/applications/{app['id']}/removeKey",
            json={"keyId": key_id, "proof": proofs[case]},
            headers=world.headers(),
        ),
    ):
        assert response.status_code == 401, response.text
        error = _graph_error(response)
        assert error["code"] == "Authentication_MissingOrMalformed"
        assert reason in error["message"], error["message"]
    assert len(_keys(world, app["id"])) == 1


def test_a_proof_signed_by_an_expired_key_is_refused(world: World) -> None:
    app = _integration(world)
    lasting, brief = new_certificate("lasting"), new_certificate("brief")
    end = world.emu.state.now() + DAY
    entries = [_entry(lasting), _entry(brief, endDateTime=_iso(end))]
    assert _patch_keys(world, app["id"], entries).status_code == 204
    world.emu.state.clock.set(end + MAX_LAG)
    refused = _add_key(world, app["id"], new_certificate("x"), make_proof(brief, app["id"]))
    assert refused.status_code == 401
    assert "The key used is expired" in _graph_error(refused)["message"]
    assert _add_key(world, app["id"], new_certificate("y"), make_proof(lasting, app["id"])).ok


# ----- the token endpoint ----------------------------------------------------------------


def _pfx(tmp_path: Path, cert: ClientCertificate) -> str:
    key = serialization.load_pem_private_key(cert.private_key_pem.encode(), password=None)
    loaded = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    path = tmp_path / "client.pfx"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"client",
            key,  # type: ignore[arg-type]
            loaded,
            None,
            serialization.BestAvailableEncryption(b"pfx-pass"),
        )
    )
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize(
    ("form", "header", "alg"),
    [
        ("thumbprint", "x5t", "RS256"),
        ("public_certificate", "x5t#S256", "PS256"),
        ("pfx", "x5t#S256", "PS256"),
    ],
)
def test_msal_signs_in_to_an_integration_app_with_x5t_and_x5t_s256(
    world: World, tmp_path: Path, form: str, header: str, alg: str
) -> None:
    app = _integration(world)
    cert = new_certificate("run")
    assert _patch_keys(world, app["id"], [_entry(cert)]).status_code == 204
    world.settle()
    credential: dict[str, Any] = {
        "thumbprint": _sha1_credential(cert),
        "public_certificate": {
            "private_key": cert.private_key_pem,
            "public_certificate": cert.certificate_pem,
        },
        "pfx": {"private_key_pfx_path": _pfx(tmp_path, cert), "passphrase": "pfx-pass"},
    }[form]
    sent: list[dict[str, Any]] = []

    def capture(response: requests.Response, *args: object, **kwargs: object) -> None:
        body = response.request.body
        if isinstance(body, str) and "client_assertion=" in body:
            sent.append(jwt.get_unverified_header(parse_qs(body)["client_assertion"][0]))

    world.http.hooks["response"].append(capture)
    result = _msal_token(world, app["appId"], credential)
    assert "access_token" in result, result
    assert len(sent) == 1 and header in sent[0] and sent[0]["alg"] == alg
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["appid"] == app["appId"] and claims["appidacr"] == "2"


@pytest.mark.parametrize("header", ["x5t", "x5t#S256"])
@pytest.mark.parametrize(
    ("case", "code", "text"),
    [
        ("unknown-key", 700027, "The key was not found"),
        ("bad-signature", 700027, "use of the key to verify the signature failed"),
        ("expired-assertion", 700024, "Client assertion is not within its valid time range"),
        ("future-assertion", 700024, "Client assertion is not within its valid time range"),
        ("wrong-audience", 700023, "Client assertion audience claim does not match Realm issuer"),
        ("wrong-issuer", 700021, "doesn't match 'client_id' parameter"),
        ("key-expired", 700027, "The key used is expired"),
        ("key-not-yet-valid", 700027, "The key used is not yet valid"),
    ],
)
def test_client_assertion_errors_carry_entras_codes(
    world: World, header: str, case: str, code: int, text: str
) -> None:
    app = _integration(world)
    cert, brief, later = new_certificate("c"), new_certificate("b"), new_certificate("l")
    now = world.emu.state.now()
    entries = [
        _entry(cert),
        _entry(brief, endDateTime=_iso(now + DAY)),
        _entry(later, startDateTime=_iso(now + 30 * DAY)),
    ]
    assert _patch_keys(world, app["id"], entries).status_code == 204
    world.settle()
    client = app["appId"]
    wall = int(time.time())
    if case == "key-expired":
        world.emu.state.clock.set(now + 2 * DAY)
    assertion = {
        "unknown-key": lambda: _assertion(world, client, new_certificate("u"), header=header),
        "bad-signature": lambda: _assertion(
            world, client, new_certificate("u"), named=cert, header=header
        ),
        "expired-assertion": lambda: _assertion(
            world, client, cert, header=header, nbf=wall - 7200, exp=wall - 6600
        ),
        "future-assertion": lambda: _assertion(
            world, client, cert, header=header, nbf=wall + 7200, exp=wall + 7800
        ),
        "wrong-audience": lambda: _assertion(
            world, client, cert, header=header, aud="https://elsewhere.example/token"
        ),
        "wrong-issuer": lambda: _assertion(world, client, cert, header=header, iss="x", sub="x"),
        "key-expired": lambda: _assertion(world, client, brief, header=header),
        "key-not-yet-valid": lambda: _assertion(world, client, later, header=header),
    }[case]()
    status, body = _sign_in(world, client, assertion)
    assert status == 401 and body["error"] == "invalid_client", body
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert text in body["error_description"]
    ok_status, _ = _sign_in(world, client, _assertion(world, client, cert, header=header))
    assert ok_status == 200


# ----- the admin API ---------------------------------------------------------------------


def test_admin_api_lists_key_credentials_without_private_material(world: World) -> None:
    app = _integration(world)
    cert = new_certificate("shown")
    start, end = world.emu.state.now() + 60, world.emu.state.now() + 90 * DAY
    entry = _entry(cert, startDateTime=_iso(start), endDateTime=_iso(end), displayName="run-1")
    assert _patch_keys(world, app["id"], [entry]).status_code == 204
    response = world.http.get(f"{world.emu.base_url}/_emulator/applications/{app['appId']}")
    assert response.status_code == 200
    [key] = response.json()["keyCredentials"]
    assert key["displayName"] == "run-1" and key["keyId"]
    assert key["thumbprint"] == cert.thumbprint_sha1.upper()
    assert key["thumbprintSha256"] == cert.thumbprint_sha256.upper()
    assert (key["start"], key["end"]) == (float(int(start)), float(int(end)))
    assert (key["startDateTime"], key["endDateTime"]) == (_iso(start), _iso(end))
    assert key["key"] is None
    assert "PRIVATE" not in response.text and cert.der_base64 not in response.text
