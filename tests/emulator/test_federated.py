"""Workload identity federation: federated credentials over Graph, sign-in with an external JWT.

The rules come from learn.microsoft.com/graph/api/resources/federatedidentitycredential
and /graph/api/application-post-federatedidentitycredentials (at most 20, names,
lengths, one audience, unique issuer and subject), and the token endpoint's
answers from the sources listed in ``sidecar.emulator.federation``. The external
issuer is a small HTTPS server in the test, with its own CA, serving a discovery
document and a JWKS for RSA keys made here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.emulator import EmulatorConfig, EmulatorServer, EmulatorState, LagProfile
from sidecar.emulator.json_site import JsonSite
from tests.emulator.conftest import MAX_LAG, World

ARM_SCOPE = "https://management.azure.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE = "api://AzureADTokenExchange"
SUBJECT = "repo:contoso/infra:environment:prod"
PROBES = 30
#: Every write lags exactly this long on the replicas that did not take it.
LAG = 120.0


class Issuer:
    """An OIDC issuer over HTTPS: discovery document and JWKS, keys swappable by the test."""

    def __init__(self, ca_dir: Path) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.site = JsonSite(ca_dir, self.document)
        self.ca_path = self.site.ca_path
        self.requests = self.site.requests
        self.url = self.site.origin

    def document(self, path: str) -> dict[str, Any] | None:
        if path == "/.well-known/openid-configuration":
            return {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        if path == "/keys":
            return {"keys": [self.jwk(kid) for kid in self.keys]}
        return None

    def jwk(self, kid: str) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
        return {**public, "kid": kid, "use": "sig", "alg": "RS256"}

    def new_key(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]

    def token(
        self,
        kid: str = "k1",
        *,
        sub: str = SUBJECT,
        aud: str = EXCHANGE,
        iss: str | None = None,
        lifetime: float = 600,
        start: float | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        issued = time.time() if start is None else start
        claims = {
            "iss": iss or self.url,
            "sub": sub,
            "aud": aud,
            "iat": int(issued),
            "nbf": int(issued),
            "exp": int(issued + lifetime),
            "jti": str(uuid.uuid4()),
        }
        signer = key or self.keys[kid]
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})

    def stop(self) -> None:
        self.site.stop()


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[Issuer]:
    server = Issuer(tmp_path / "issuer-ca")
    server.new_key("k1")
    try:
        yield server
    finally:
        server.stop()


def _world(emu: EmulatorServer) -> World:
    tenant = emu.state.seed_tenant(display_name="Contoso", subscriptions=[{"displayName": "prod"}])
    mgmt = emu.state.seed_management_app(tenant.tenant_id)
    return World(emu, emu.session(), tenant.tenant_id, next(iter(tenant.subscriptions)), mgmt)


@pytest.fixture
def fed(issuer: Issuer) -> Iterator[World]:
    config = EmulatorConfig(clock_mode="manual", seed=1234, issuer_ca=issuer.ca_path)
    with EmulatorServer(config) as emu:
        yield _world(emu)


@pytest.fixture
def lagging(issuer: Issuer) -> Iterator[World]:
    """Every write reaches the replicas that did not take it exactly ``LAG`` seconds later."""
    profile = LagProfile(
        name="fixed", fast_fraction=1.0, fast_max=0.0, tail_max=0.0, stuck={0: LAG, 1: LAG, 2: LAG}
    )
    config = EmulatorConfig(
        clock_mode="manual", seed=99, issuer_ca=issuer.ca_path, lag_profile=profile
    )
    with EmulatorServer(config) as emu:
        yield _world(emu)


def _integration(world: World) -> tuple[dict[str, str], str, str]:
    """An owned application with its service principal, replicated: (headers, objId, appId)."""
    headers = world.headers()
    app = world.create_app(headers)
    world.emu.state.clock.advance(MAX_LAG)
    sp = world.http.post(
        f"{world.graph}/servicePrincipals", json={"appId": app["appId"]}, headers=headers
    )
    assert sp.status_code == 201, sp.text
    world.emu.state.clock.advance(MAX_LAG)
    return world.headers(), app["id"], app["appId"]


def _fic_url(world: World, object_id: str) -> str:
    return f"{world.graph}/applications/{object_id}/federatedIdentityCredentials"


def _create(
    world: World, headers: dict[str, str], object_id: str, **body: Any
) -> requests.Response:
    body.setdefault("name", f"fic-{uuid.uuid4().hex[:8]}")
    body.setdefault("issuer", "https://issuer.example")
    body.setdefault("subject", f"sub-{uuid.uuid4().hex[:8]}")
    body.setdefault("audiences", [EXCHANGE])
    return world.http.post(_fic_url(world, object_id), json=body, headers=headers)


def _sign_in(
    world: World, client_id: str, assertion: str, session: requests.Session | None = None
) -> requests.Response:
    return (session or world.http).post(
        world.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": ARM_SCOPE,
        },
    )


def _code(response: requests.Response) -> int:
    return int(response.json()["error_codes"][0])


def _probe(world: World, client_id: str, assertion: str) -> Counter[int]:
    """Sign-ins as separate runs make them: each on its own connection, so on any replica."""
    out: Counter[int] = Counter()
    for _ in range(PROBES):
        with world.emu.session() as fresh:
            response = _sign_in(world, client_id, assertion, fresh)
        out[200 if response.status_code == 200 else _code(response)] += 1
    return out


# ----- Graph: create, list, get, delete -------------------------------------------------


def test_create_list_get_delete_in_graph_shapes(fed: World) -> None:
    headers, object_id, app_id = _integration(fed)
    created = _create(
        fed,
        headers,
        object_id,
        name="deploy-prod",
        issuer="https://token.example",
        subject=SUBJECT,
        description="prod deploys",
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("name", "issuer", "subject", "audiences", "description")} == {
        "name": "deploy-prod",
        "issuer": "https://token.example",
        "subject": SUBJECT,
        "audiences": [EXCHANGE],
        "description": "prod deploys",
    }
    fic_id = body["id"]
    uuid.UUID(fic_id)
    assert created.headers["Location"].endswith(f"/federatedIdentityCredentials/{fic_id}")
    listed = fed.http.get(_fic_url(fed, object_id), headers=headers)
    assert listed.status_code == 200
    assert [f["id"] for f in listed.json()["value"]] == [fic_id]
    by_app_id = fed.http.get(
        f"{fed.graph}/applications(appId='{app_id}')/federatedIdentityCredentials/{fic_id}",
        headers=headers,
    )
    assert by_app_id.status_code == 200 and by_app_id.json()["name"] == "deploy-prod"
    no_description = _create(fed, headers, object_id, name="second")
    assert no_description.status_code == 201 and no_description.json()["description"] is None

    admin = fed.http.get(f"{fed.emu.base_url}/_emulator/applications/{object_id}").json()
    assert {f["name"] for f in admin["federatedIdentityCredentials"]} == {"deploy-prod", "second"}

    by_name = fed.http.get(f"{_fic_url(fed, object_id)}/deploy-prod", headers=headers)
    assert by_name.status_code == 200 and by_name.json()["id"] == fic_id
    deleted = fed.http.delete(f"{_fic_url(fed, object_id)}/{fic_id}", headers=headers)
    assert deleted.status_code == 204
    second = fed.http.delete(f"{_fic_url(fed, object_id)}/second", headers=headers)
    assert second.status_code == 204
    fed.settle()
    gone = fed.http.get(f"{_fic_url(fed, object_id)}/{fic_id}", headers=headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "Request_ResourceNotFound"
    assert fed.http.get(_fic_url(fed, object_id), headers=headers).json()["value"] == []
    again = fed.http.delete(f"{_fic_url(fed, object_id)}/{fic_id}", headers=headers)
    assert again.status_code == 404


def test_federated_credentials_survive_a_snapshot(fed: World) -> None:
    headers, object_id, _ = _integration(fed)
    assert _create(fed, headers, object_id, name="kept", subject="s").status_code == 201
    restored = EmulatorState()
    restored.restore(fed.emu.state.snapshot())
    app = restored.application(object_id)
    assert app is not None and [(f.name, f.subject) for f in app.federated] == [("kept", "s")]


def test_at_most_twenty_per_application(fed: World) -> None:
    headers, object_id, _ = _integration(fed)
    for i in range(20):
        assert _create(fed, headers, object_id, name=f"fic-{i}").status_code == 201
    refused = _create(fed, headers, object_id, name="fic-20")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "Request_BadRequest"
    assert "20" in refused.json()["error"]["message"]
    listed = fed.http.get(_fic_url(fed, object_id), headers=headers).json()["value"]
    assert len(listed) == 20


def test_duplicate_name_and_duplicate_issuer_subject_are_refused(fed: World) -> None:
    headers, object_id, _ = _integration(fed)
    assert _create(fed, headers, object_id, name="main", subject="a").status_code == 201
    same_name = _create(fed, headers, object_id, name="main", subject="b")
    assert same_name.status_code == 409
    assert same_name.json()["error"] == {
        **same_name.json()["error"],
        "code": "Request_MultipleObjectsWithSameKeyValue",
        "message": "FederatedIdentityCredential with name main already exists.",
    }
    same_trust = _create(fed, headers, object_id, name="other", subject="a")
    assert same_trust.status_code == 400
    error = same_trust.json()["error"]
    assert error["code"] == "InvalidFederatedIdentityCredentialValue"
    assert error["message"].startswith(
        "The combination of issuer and subject must be unique for the application."
    )
    other_issuer = _create(fed, headers, object_id, name="other", subject="a", issuer="https://b")
    assert other_issuer.status_code == 201


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("name", "ab", False),
        ("name", "abc", True),
        ("name", "a" * 120, True),
        ("name", "a" * 121, False),
        ("name", "-abc", False),
        ("name", "_abc", False),
        ("name", "a b c", False),
        ("name", "a.b.c", False),
        ("name", "A-b_9", True),
        ("issuer", "https://x/" + "a" * 590, True),
        ("issuer", "https://x/" + "a" * 591, False),
        ("subject", "s" * 600, True),
        ("subject", "s" * 601, False),
        ("description", "d" * 600, True),
        ("description", "d" * 601, False),
        ("audiences", ["a" * 600], True),
        ("audiences", ["a" * 601], False),
        ("audiences", [], False),
        ("audiences", [EXCHANGE, "api://other"], False),
        ("audiences", EXCHANGE, False),
    ],
)
def test_field_bounds(fed: World, field: str, value: Any, ok: bool) -> None:
    headers, object_id, _ = _integration(fed)
    response = _create(fed, headers, object_id, **{field: value})
    if ok:
        assert response.status_code == 201, response.text
        assert response.json()[field] == value
    else:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "InvalidFederatedIdentityCredentialValue"


@pytest.mark.parametrize("missing", ["name", "issuer", "subject", "audiences"])
def test_required_properties(fed: World, missing: str) -> None:
    headers, object_id, _ = _integration(fed)
    body = {"name": "n-1", "issuer": "https://i", "subject": "s", "audiences": [EXCHANGE]}
    del body[missing]
    response = fed.http.post(_fic_url(fed, object_id), json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        **response.json()["error"],
        "code": "Request_BadRequest",
        "message": f"Property '{missing}' is required.",
    }


def test_only_an_owner_may_add_and_an_unknown_app_is_404(fed: World) -> None:
    headers, _, _ = _integration(fed)
    other = fed.emu.state.seed_application(fed.tenant_id, "not owned")
    refused = _create(fed, headers, other.object_id)
    assert refused.status_code == 403
    missing = _create(fed, headers, str(uuid.uuid4()))
    assert missing.status_code == 404
    by_unknown_app_id = fed.http.get(
        f"{fed.graph}/applications(appId='{uuid.uuid4()}')/federatedIdentityCredentials",
        headers=headers,
    )
    assert by_unknown_app_id.status_code == 404


def test_new_credential_is_missing_on_lagging_replicas_then_everywhere(lagging: World) -> None:
    world = lagging
    headers, object_id, _ = _integration(world)
    created = _create(world, headers, object_id, name="fresh")
    assert created.status_code == 201
    url = f"{_fic_url(world, object_id)}/{created.json()['id']}"
    seen: Counter[int] = Counter()
    for _ in range(PROBES):
        with world.emu.session() as fresh:
            seen[fresh.get(url, headers=headers).status_code] += 1
    assert seen[404] > 0 and seen[200] > 0, seen
    world.emu.state.clock.advance(LAG + 1)
    seen.clear()
    for _ in range(PROBES):
        with world.emu.session() as fresh:
            seen[fresh.get(url, headers=headers).status_code] += 1
    assert seen == Counter({200: PROBES})


# ----- the token endpoint ---------------------------------------------------------------


def _trusting(world: World, source: Issuer, **body: Any) -> tuple[dict[str, str], str, str]:
    """An integration with a federated credential for ``source``, replicated everywhere."""
    headers, object_id, app_id = _integration(world)
    body.setdefault("issuer", source.url)
    body.setdefault("subject", SUBJECT)
    created = _create(world, headers, object_id, **body)
    assert created.status_code == 201, created.text
    world.settle()
    return headers, object_id, app_id


def test_sign_in_with_an_external_token_then_call_arm(fed: World, issuer: Issuer) -> None:
    _, _, app_id = _trusting(fed, issuer)
    fed.emu.state.grant_azure_role(fed.tenant_id, fed.subscription_id, app_id, "Reader")
    response = _sign_in(fed, app_id, issuer.token())
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["appid"] == app_id and claims["tid"] == fed.tenant_id
    arm = fed.http.get(
        f"{fed.emu.arm_url}/subscriptions/{fed.subscription_id}",
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert arm.status_code == 200, arm.text
    assert arm.json()["subscriptionId"] == fed.subscription_id
    assert issuer.requests == ["/.well-known/openid-configuration", "/keys"]


def test_own_certificate_assertion_still_signs_in(fed: World, issuer: Issuer) -> None:
    """iss == sub == client id stays the certificate path, next to federated credentials."""
    _trusting(fed, issuer)
    result = fed.msal_app(fed.mgmt.msal_credential).acquire_token_for_client(scopes=[ARM_SCOPE])
    assert "access_token" in result, result
    assert issuer.requests == []


@pytest.mark.parametrize(
    ("claims", "status", "error", "code"),
    [
        ({"sub": "repo:contoso/infra:environment:dev"}, 401, "invalid_client", 700213),
        ({"sub": SUBJECT.upper()}, 401, "invalid_client", 700213),
        ({"aud": "api://somewhere-else"}, 401, "invalid_client", 700212),
        ({"iss": "https://127.0.0.1:1/another-issuer"}, 401, "invalid_client", 700211),
    ],
)
def test_a_claim_that_matches_no_credential(
    fed: World, issuer: Issuer, claims: dict[str, str], status: int, error: str, code: int
) -> None:
    _, _, app_id = _trusting(fed, issuer)
    token = issuer.token(
        sub=claims.get("sub", SUBJECT), aud=claims.get("aud", EXCHANGE), iss=claims.get("iss")
    )
    response = _sign_in(fed, app_id, token)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and _code(response) == code
    assert "No matching federated identity record found" in response.json()["error_description"]


def test_no_visible_credential_is_70021(fed: World, issuer: Issuer) -> None:
    _, _, app_id = _integration(fed)
    response = _sign_in(fed, app_id, issuer.token())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and _code(response) == 70021
    description = response.json()["error_description"]
    assert description.startswith(
        "AADSTS70021: No matching federated identity record found for presented assertion. "
        f"Assertion Issuer: '{issuer.url}'. Assertion Subject: '{SUBJECT}'. "
        f"Assertion Audience: '{EXCHANGE}'."
    )
    assert issuer.requests == []  # no credential trusts it: never fetched


def test_expired_and_not_yet_valid_tokens_are_700024(fed: World, issuer: Issuer) -> None:
    _, _, app_id = _trusting(fed, issuer)
    expired = _sign_in(fed, app_id, issuer.token(start=time.time() - 7200, lifetime=600))
    assert expired.status_code == 401 and _code(expired) == 700024
    assert "Client assertion is not within its valid time range" in expired.text
    future = _sign_in(fed, app_id, issuer.token(start=time.time() + 7 * 86400))
    assert future.status_code == 401 and _code(future) == 700024
    within_leeway = _sign_in(fed, app_id, issuer.token(start=time.time() - 700, lifetime=600))
    assert within_leeway.status_code == 200, within_leeway.text


def test_unknown_kid_is_7000272(fed: World, issuer: Issuer) -> None:
    _, _, app_id = _trusting(fed, issuer)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = _sign_in(fed, app_id, issuer.token("nobody", key=stranger))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert _code(response) == 7000272
    assert (
        f"could not be found in the metadata of identity provider {issuer.url}"
        in (response.json()["error_description"])
    )


def test_bad_signature_is_refused(fed: World, issuer: Issuer) -> None:
    _, _, app_id = _trusting(fed, issuer)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = _sign_in(fed, app_id, issuer.token("k1", key=forger))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert _code(response) == 50013
    assert "Assertion failed signature validation" in response.json()["error_description"]
    header, _, signature = issuer.token().split(".")
    forged = {**jwt.decode(issuer.token(), options={"verify_signature": False}), "sub": "evil"}
    claims = jwt.utils.base64url_encode(json.dumps(forged).encode()).decode()
    tampered = [header, claims, signature]
    assert _code(_sign_in(fed, app_id, ".".join(tampered))) == 50013


def test_unreachable_issuer_is_50166(fed: World, issuer: Issuer) -> None:
    dead = "https://127.0.0.1:1"
    _, _, app_id = _trusting(fed, issuer, issuer=dead)
    response = _sign_in(fed, app_id, issuer.token(iss=dead))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert _code(response) == 50166
    assert "Request to External OIDC endpoint failed." in response.json()["error_description"]


def test_issuer_outside_the_configured_trust_is_50166(issuer: Issuer) -> None:
    with EmulatorServer(EmulatorConfig(clock_mode="manual", seed=5)) as emu:
        world = _world(emu)
        _, _, app_id = _trusting(world, issuer)
        response = _sign_in(world, app_id, issuer.token())
        assert response.status_code == 400 and _code(response) == 50166
        assert "CERTIFICATE_VERIFY_FAILED" in response.json()["error_description"]
        admin = f"{emu.base_url}/_emulator/issuer-keys"
        refused = world.http.post(admin, json={"caFile": str(issuer.ca_path) + ".missing"})
        assert refused.status_code == 400
        configured = world.http.post(admin, json={"caFile": str(issuer.ca_path)})
        assert configured.status_code == 200
        assert configured.json()["caFile"] == str(issuer.ca_path)
        assert configured.json()["cacheSeconds"] == 300.0
        assert _sign_in(world, app_id, issuer.token()).status_code == 200
        cached = world.http.get(admin).json()
        assert cached["issuers"][issuer.url]["kids"] == ["k1"] and cached["fetches"] == 1


def test_credential_not_yet_replicated_is_70021_then_signs_in(
    lagging: World, issuer: Issuer
) -> None:
    world = lagging
    headers, object_id, app_id = _integration(world)
    created = _create(world, headers, object_id, issuer=issuer.url, subject=SUBJECT)
    assert created.status_code == 201
    token = issuer.token()
    first = _probe(world, app_id, token)
    assert first[70021] > 0, first  # replicas that have not seen it
    assert first[200] > 0, first  # the replica that took the write
    assert set(first) == {70021, 200}
    world.emu.state.clock.advance(LAG + 1)
    assert _probe(world, app_id, token) == Counter({200: PROBES})


def test_a_new_kid_is_fetched_at_most_once_a_minute(fed: World, issuer: Issuer) -> None:
    _, _, app_id = _trusting(fed, issuer)
    assert _sign_in(fed, app_id, issuer.token("k1")).status_code == 200
    fetches = fed.emu.state.issuer_keys.fetches
    issuer.new_key("k2")
    del issuer.keys["k1"]
    soon = _sign_in(fed, app_id, issuer.token("k2"))
    assert soon.status_code == 401 and _code(soon) == 7000272  # fetched less than 60 s ago
    assert fed.emu.state.issuer_keys.fetches == fetches
    fed.emu.state.clock.advance(61)
    later = _sign_in(fed, app_id, issuer.token("k2"))
    assert later.status_code == 200, later.text  # the unknown kid fetched the keys again
    assert fed.emu.state.issuer_keys.fetches == fetches + 1
    assert _sign_in(fed, app_id, issuer.token("k2")).status_code == 200
    assert fed.emu.state.issuer_keys.fetches == fetches + 1  # and the cache serves it


def test_keys_are_cached_for_the_configured_time(tmp_path: Path, issuer: Issuer) -> None:
    config = EmulatorConfig(
        clock_mode="manual", seed=7, issuer_ca=issuer.ca_path, issuer_key_cache_seconds=120
    )
    with EmulatorServer(config) as emu:
        world = _world(emu)
        _, _, app_id = _trusting(world, issuer)
        assert _sign_in(world, app_id, issuer.token("k1")).status_code == 200
        issuer.new_key("k1")  # the same kid, a new key: only a refetch learns it
        cached = _sign_in(world, app_id, issuer.token("k1"))
        assert cached.status_code == 401 and _code(cached) == 50013
        world.emu.state.clock.advance(119)
        assert _code(_sign_in(world, app_id, issuer.token("k1"))) == 50013
        world.emu.state.clock.advance(2)
        refreshed = _sign_in(world, app_id, issuer.token("k1"))
        assert refreshed.status_code == 200, refreshed.text
