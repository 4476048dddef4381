"""Admin consent installs a multi-tenant app into a customer tenant; ARM checks role grants."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.emulator.conftest import ARM_SCOPE, World

REDIRECT = "https://ci.example/azure/consent"


@pytest.fixture
def customer(world: World) -> tuple[World, str, str, str, str]:
    """(world, customer tenant, its subscription, integration appId, its secret)."""
    state = world.emu.state
    tenant = state.seed_tenant(display_name="Fabrikam", subscriptions=[{"displayName": "dev"}])
    headers = world.headers()
    app = world.create_app(
        headers,
        displayName="ci-integration",
        signInAudience="AzureADMultipleOrgs",
        web={"redirectUris": [REDIRECT]},
    )
    world.settle()
    secret = world.add_password(headers, app["id"])["secretText"]
    world.settle()
    return world, tenant.tenant_id, next(iter(tenant.subscriptions)), app["appId"], secret


def _consent(world: World, tenant: str, **params: str) -> tuple[int, str, dict[str, object]]:
    response = world.http.get(
        f"{world.emu.base_url}/{tenant}/adminconsent", params=params, allow_redirects=False
    )
    body = (
        response.json()
        if response.headers.get("Content-Type", "").startswith("application/json")
        else {}
    )
    return response.status_code, response.headers.get("Location", ""), body


def test_admin_consent_creates_the_service_principal_and_redirects(
    customer: tuple[World, str, str, str, str],
) -> None:
    world, tenant, _, app_id, secret = customer
    before = world.secret_token(app_id, secret, tenant=tenant)
    assert before.status_code == 400 and before.json()["error_codes"] == [700016]
    status, location, _ = _consent(
        world, tenant, client_id=app_id, state="xyz", redirect_uri=REDIRECT
    )
    assert status == 302
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT
    assert parse_qs(parts.query) == {
        "admin_consent": ["True"],
        "tenant": [tenant],
        "state": ["xyz"],
    }
    assert world.emu.state.service_principal(tenant, app_id) is not None
    world.settle()
    assert world.secret_token(app_id, secret, tenant=tenant).status_code == 200


def test_consent_errors(customer: tuple[World, str, str, str, str]) -> None:
    world, tenant, _, app_id, _ = customer
    status, _, body = _consent(
        world, tenant, client_id=app_id, redirect_uri="https://evil.example/"
    )
    assert status == 400 and body["error_codes"] == [50011]
    status, _, body = _consent(
        world, tenant, client_id="00000000-0000-0000-0000-000000000001", redirect_uri=REDIRECT
    )
    assert status == 400 and body["error_codes"] == [700016]
    single = world.emu.state.seed_application(world.tenant_id, "single", redirect_uris=(REDIRECT,))
    status, _, body = _consent(world, tenant, client_id=single.app_id, redirect_uri=REDIRECT)
    assert status == 400 and body["error_codes"] == [700016]


def test_arm_accepts_the_token_only_after_a_role_grant(
    customer: tuple[World, str, str, str, str],
) -> None:
    world, tenant, subscription, app_id, secret = customer
    _consent(world, tenant, client_id=app_id, redirect_uri=REDIRECT)
    world.settle()
    token = world.secret_token(app_id, secret, ARM_SCOPE, tenant=tenant).json()["access_token"]
    url = f"{world.emu.arm_url}/subscriptions/{subscription}"
    auth = {"Authorization": f"Bearer {token}"}
    params = {"api-version": "2022-12-01"}
    denied = world.http.get(url, params=params, headers=auth)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "AuthorizationFailed"
    world.emu.state.grant_azure_role(tenant, subscription, app_id, "Reader")
    ok = world.http.get(url, params=params, headers=auth)
    assert ok.status_code == 200
    assert ok.json() | {} == {
        **ok.json(),
        "id": f"/subscriptions/{subscription}",
        "subscriptionId": subscription,
        "tenantId": tenant,
        "state": "Enabled",
    }
    assert world.http.get(url, headers=auth).status_code == 400  # api-version missing
    missing = world.http.get(f"{world.emu.arm_url}/subscriptions/nope", params=params, headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "SubscriptionNotFound"
    anonymous = world.http.get(url, params=params)
    assert anonymous.status_code == 401
    home = world.http.get(
        f"{world.emu.arm_url}/subscriptions/{world.subscription_id}", params=params, headers=auth
    )
    assert home.status_code == 401
    world.emu.state.clock.advance(3601)
    expired = world.http.get(url, params=params, headers=auth)
    assert expired.status_code == 401 and "expir" in expired.json()["error"]["message"]


def test_role_grant_through_admin_api(world: World) -> None:
    response = world.http.post(
        f"{world.emu.base_url}/_emulator/role-assignments",
        json={
            "tenant": world.tenant_id,
            "subscription": world.subscription_id,
            "appId": world.mgmt.app_id,
            "role": "Contributor",
        },
    )
    assert response.status_code == 201
    assert world.emu.state.has_azure_role(world.subscription_id, world.mgmt.app_id)
