"""Graph v1.0 applications and service principals: shapes, errors, authorization, proofs."""

from __future__ import annotations

import base64
import time
from typing import cast

import pytest
import requests

from sidecar.emulator import MANAGEMENT_ROLE
from tests.emulator.conftest import GRAPH_SCOPE, World, make_proof, new_certificate


def _error(response: requests.Response) -> dict[str, object]:
    body = response.json()
    error: dict[str, object] = body["error"]
    inner = cast("dict[str, object]", error["innerError"])
    assert set(inner) >= {"date", "request-id", "client-request-id"}
    return error


def test_create_get_and_by_app_id(world: World) -> None:
    headers = world.headers()
    app = world.create_app(
        headers,
        displayName="int-a",
        signInAudience="AzureADMultipleOrgs",
        web={"redirectUris": ["https://ci.example/consent"]},
    )
    assert app["displayName"] == "int-a" and app["signInAudience"] == "AzureADMultipleOrgs"
    assert app["passwordCredentials"] == [] and app["keyCredentials"] == []
    assert app["web"]["redirectUris"] == ["https://ci.example/consent"]
    assert app["createdDateTime"].endswith("Z")
    world.settle()
    by_id = world.http.get(f"{world.graph}/applications/{app['id']}", headers=headers).json()
    by_app_id = world.http.get(
        f"{world.graph}/applications(appId='{app['appId']}')", headers=headers
    ).json()
    assert by_id["appId"] == by_app_id["appId"] == app["appId"]
    admin = world.emu.state.application(app["appId"])
    assert admin is not None and admin.owners == (world.mgmt.app_id,)


def test_secret_text_is_returned_exactly_once(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    world.settle()
    added = world.add_password(
        headers, app["id"], displayName="ci", endDateTime="2099-01-01T00:00:00Z"
    )
    assert set(added) >= {
        "keyId",
        "displayName",
        "startDateTime",
        "endDateTime",
        "hint",
        "secretText",
    }
    assert added["endDateTime"] == "2099-01-01T00:00:00Z"
    world.settle()
    fetched = world.http.get(f"{world.graph}/applications/{app['id']}", headers=headers).json()
    [cred] = fetched["passwordCredentials"]
    assert cred["keyId"] == added["keyId"] and cred["secretText"] is None
    admin = world.http.get(f"{world.emu.base_url}/_emulator/applications/{app['id']}").json()
    assert admin["passwordCredentials"][0]["keyId"] == added["keyId"]
    assert added["secretText"] not in str(admin)
    assert added["secretText"] not in str(world.emu.state.snapshot())


def test_list_filter_and_paging(world: World) -> None:
    headers = world.headers()
    names = [f"page-{i}" for i in range(5)]
    for name in names:
        world.create_app(headers, displayName=name)
    world.settle()
    url = f"{world.graph}/applications"
    found = world.http.get(url, params={"$filter": "displayName eq 'page-3'"}, headers=headers)
    assert [a["displayName"] for a in found.json()["value"]] == ["page-3"]
    seen: list[str] = []
    page = world.http.get(url, params={"$top": "2"}, headers=headers).json()
    while True:
        seen += [a["displayName"] for a in page["value"]]
        if "@odata.nextLink" not in page:
            break
        page = world.http.get(page["@odata.nextLink"], headers=headers).json()
    # The management application owns itself (the documented set-up), so it is listed too.
    assert seen == ["azsidecar management", *names]
    bad = world.http.get(url, params={"$filter": "nonsense"}, headers=headers)
    assert bad.status_code == 400 and _error(bad)["code"] == "Request_UnsupportedQuery"


def test_patch_and_delete(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    world.settle()
    url = f"{world.graph}/applications/{app['id']}"
    cert = new_certificate("portal")
    patch = {
        "displayName": "renamed",
        "keyCredentials": [
            {
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": cert.der_base64,
                "displayName": "CN=portal",
            }
        ],
    }
    assert world.http.patch(url, json=patch, headers=headers).status_code == 204
    world.settle()
    got = world.http.get(url, headers=headers).json()
    assert got["displayName"] == "renamed"
    [key] = got["keyCredentials"]
    thumb = base64.b64encode(bytes.fromhex(cert.thumbprint_sha1)).decode()
    assert key["customKeyIdentifier"] == thumb and key["type"] == "AsymmetricX509Cert"
    bad = world.http.patch(url, json={"passwordCredentials": []}, headers=headers)
    assert bad.status_code == 400 and _error(bad)["code"] == "Request_BadRequest"
    assert world.http.delete(url, headers=headers).status_code == 204
    world.settle()
    gone = world.http.get(url, headers=headers)
    assert gone.status_code == 404 and _error(gone)["code"] == "Request_ResourceNotFound"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/applications", "{not json"),
        ("/applications", "[1, 2]"),
        ("/applications", "{}"),  # displayName missing
        ("/applications/{id}/addPassword", '{"passwordCredential": "x"}'),
        ("/applications/{id}/removePassword", "{}"),
        ("/applications/{id}/addKey", '{"proof": "x"}'),
    ],
)
def test_malformed_requests_get_graph_shaped_400(world: World, path: str, body: str) -> None:
    headers = {**world.headers(), "Content-Type": "application/json"}
    app = world.create_app(headers)
    world.settle()
    response = world.http.post(world.graph + path.format(id=app["id"]), data=body, headers=headers)
    assert response.status_code == 400, response.text
    assert _error(response)["code"] == "Request_BadRequest"


def test_remove_unknown_password_is_404(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    world.settle()
    response = world.http.post(
        f"{world.graph}/applications/{app['id']}/removePassword",
        json={"keyId": "00000000-0000-0000-0000-000000000000"},
        headers=headers,
    )
    assert response.status_code == 404 and _error(response)["code"] == "Request_ResourceNotFound"


def test_missing_and_expired_tokens_are_401(world: World) -> None:
    url = f"{world.graph}/applications"
    missing = world.http.get(url)
    assert missing.status_code == 401 and _error(missing)["code"] == "InvalidAuthenticationToken"
    headers = world.headers()
    world.emu.state.clock.advance(3601)
    expired = world.http.get(url, headers=headers)
    assert expired.status_code == 401
    assert _error(expired)["message"] == "Lifetime validation failed, the token is expired."
    garbage = world.http.get(url, headers={"Authorization": "Bearer abc.def.ghi"})
    assert garbage.status_code == 401


def test_arm_token_is_not_a_graph_token(world: World) -> None:
    token = world.msal_app(world.mgmt.msal_credential).acquire_token_for_client(
        scopes=["https://management.azure.com/.default"]
    )["access_token"]
    response = world.http.get(f"{world.graph}/applications", headers=world.headers(token))
    assert response.status_code == 401


def test_app_without_role_is_forbidden(world: World) -> None:
    other = world.emu.state.seed_management_app(world.tenant_id, "no-roles", roles=())
    token = world.msal_app(other.msal_credential, other.app_id).acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )["access_token"]
    response = world.http.post(
        f"{world.graph}/applications", json={"displayName": "x"}, headers=world.headers(token)
    )
    assert response.status_code == 403
    error = _error(response)
    assert error["code"] == "Authorization_RequestDenied"
    assert error["message"] == "Insufficient privileges to complete the operation."


def test_management_app_cannot_touch_an_app_it_does_not_own(world: World) -> None:
    foreign = world.emu.state.seed_application(world.tenant_id, "someone-elses")
    headers = world.headers()
    base = f"{world.graph}/applications/{foreign.object_id}"
    requests_made: list[tuple[str, str, dict[str, object] | None]] = [
        ("GET", base, None),
        ("PATCH", base, {"displayName": "mine"}),
        ("DELETE", base, None),
        ("POST", f"{base}/addPassword", {"passwordCredential": {}}),
    ]
    for method, url, body in requests_made:
        response = world.http.request(method, url, json=body, headers=headers)
        assert response.status_code == 403, (method, url, response.text)
        assert _error(response)["code"] == "Authorization_RequestDenied"
    listed = world.http.get(f"{world.graph}/applications", headers=headers).json()["value"]
    assert foreign.app_id not in {a["appId"] for a in listed}


def test_service_principal_create_and_filter(world: World) -> None:
    headers = world.headers()
    app = world.create_app(headers)
    world.settle()
    created = world.http.post(
        f"{world.graph}/servicePrincipals", json={"appId": app["appId"]}, headers=headers
    )
    assert created.status_code == 201 and created.json()["appId"] == app["appId"]
    again = world.http.post(
        f"{world.graph}/servicePrincipals", json={"appId": app["appId"]}, headers=headers
    )
    assert again.status_code == 409
    world.settle()
    found = world.http.get(
        f"{world.graph}/servicePrincipals",
        params={"$filter": f"appId eq '{app['appId']}'"},
        headers=headers,
    ).json()["value"]
    assert [sp["id"] for sp in found] == [created.json()["id"]]


# ----- addKey / removeKey with proof of possession ---------------------------------------


def _add_key(
    world: World, object_id: str, proof: str, headers: dict[str, str]
) -> requests.Response:
    cert = new_certificate("rotated")
    return world.http.post(
        f"{world.graph}/applications/{object_id}/addKey",
        json={
            "keyCredential": {
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": cert.der_base64,
                "displayName": "CN=rotated",
            },
            "passwordCredential": None,
            "proof": proof,
        },
        headers=headers,
    )


# Every refused proof is 401 Authentication_MissingOrMalformed, as Graph answers
# (see sidecar/emulator/graph/keys.py for the sources).
@pytest.mark.parametrize(
    ("signer", "kwargs", "status"),
    [
        ("unknown", {}, 401),
        ("mgmt", {"aud": "https://graph.microsoft.com"}, 401),
        ("mgmt", {"lifetime": 3600}, 401),
        ("mgmt", {"now": time.time() - 7200}, 401),
    ],
)
def test_add_key_rejects_bad_proofs(
    world: World, signer: str, kwargs: dict[str, object], status: int
) -> None:
    mgmt = world.mgmt
    cert = new_certificate("stranger") if signer == "unknown" else mgmt
    proof = make_proof(cert, mgmt.object_id, **kwargs)  # type: ignore[arg-type]
    response = _add_key(world, mgmt.object_id, proof, world.headers())
    assert response.status_code == status, response.text
    assert _error(response)["code"] == "Authentication_MissingOrMalformed"
    assert "proof" in str(_error(response)["message"]).lower()


def test_add_key_then_sign_in_with_new_certificate_and_remove_old(world: World) -> None:
    mgmt = world.mgmt
    headers = world.headers()
    new = new_certificate("next")
    response = world.http.post(
        f"{world.graph}/applications/{mgmt.object_id}/addKey",
        json={
            "keyCredential": {
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": new.der_base64,
                "displayName": "CN=next",
            },
            "passwordCredential": None,
            "proof": make_proof(mgmt, mgmt.object_id),
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    added = response.json()
    assert (
        added["customKeyIdentifier"]
        == base64.b64encode(bytes.fromhex(new.thumbprint_sha1)).decode()
    )
    world.settle()
    credential = {"private_key": new.private_key_pem, "thumbprint": new.thumbprint_sha1}
    assert "access_token" in world.msal_app(credential).acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )
    old_key = mgmt.key_id
    removed = world.http.post(
        f"{world.graph}/applications/{mgmt.object_id}/removeKey",
        json={"keyId": old_key, "proof": make_proof(new, mgmt.object_id)},
        headers=world.headers(),
    )
    assert removed.status_code == 204, removed.text
    app = world.emu.state.application(mgmt.object_id)
    assert app is not None and [k.key_id for k in app.keys] == [added["keyId"]]


def test_app_may_add_key_to_itself_without_roles(world: World) -> None:
    selfish = world.emu.state.seed_management_app(world.tenant_id, "self", roles=())
    token = world.msal_app(selfish.msal_credential, selfish.app_id).acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )["access_token"]
    response = _add_key(
        world, selfish.object_id, make_proof(selfish, selfish.object_id), world.headers(token)
    )
    assert response.status_code == 200, response.text
    assert MANAGEMENT_ROLE not in world.emu.state.roles_of(world.tenant_id, selfish.app_id)
