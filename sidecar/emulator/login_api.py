"""The login.microsoftonline.com stand-in: OIDC metadata, JWKS, token endpoint, admin consent.

The token endpoint's ``client_credentials`` grant takes a client secret, a
client assertion signed with one of the application's certificates (``tokens``)
or an external issuer's token matched against the application's federated
identity credentials as the serving replica sees them (``federation``).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from sidecar.emulator.federation import (
    FederationRejected,
    is_federated,
    verify_federated_assertion,
)
from sidecar.emulator.records import MULTI_TENANT, ServicePrincipal
from sidecar.emulator.responses import aad_error, info, json_response
from sidecar.emulator.state import EmulatorState
from sidecar.emulator.tokens import (
    CLIENT_ASSERTION_TYPE,
    GRAPH_RESOURCE,
    JwtRejected,
    TokenGrant,
    issue_access_token,
    resource_for_scope,
    verify_client_assertion,
)

LOGIN_HOST = "https://login.microsoftonline.com"


def _base() -> str:
    return request.host_url.rstrip("/")


def _unknown_tenant(tenant: str, now: float) -> Response:
    return aad_error(
        400,
        "invalid_request",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, this "
        "may happen if there are no active subscriptions for the tenant.",
        now,
    )


def _app_not_found(client_id: str, tenant_name: str, now: float) -> Response:
    return aad_error(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant_name}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant.",
        now,
    )


def _missing(name: str, now: float) -> Response:
    return aad_error(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
        now,
    )


def create_login_blueprint(state: EmulatorState) -> Blueprint:
    bp = Blueprint("login", __name__)

    @bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant: str) -> Response:
        now = state.now()
        info().tenant = tenant
        with state.lock:
            if tenant not in state.tenants:
                return _unknown_tenant(tenant, now)
        base = f"{_base()}/{tenant}"
        return json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{_base()}/graph/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "acr",
                    "nonce",
                    "tid",
                    "ver",
                    "at_hash",
                    "c_hash",
                ],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }
        )

    @bp.get("/<tenant>/discovery/v2.0/keys")
    @bp.get("/<tenant>/discovery/keys")
    def jwks(tenant: str) -> Response:
        info().tenant = tenant
        return json_response({"keys": [state.signing.jwk()]})

    @bp.post("/<tenant>/oauth2/v2.0/token")
    def token(tenant: str) -> Response:
        now = state.now()
        form = request.form
        call = info()
        call.tenant = tenant
        grant_type = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            client_id = client_id or (auth.username or "")
            secret = secret or (auth.password or "")
        call.client = client_id or None
        if not grant_type:
            return _missing("grant_type", now)
        if grant_type != "client_credentials":
            return aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
                now,
            )
        if not client_id:
            return _missing("client_id", now)
        scope = form.get("scope", "")
        if not scope:
            return _missing("scope", now)
        resource = resource_for_scope(scope)
        if resource is None:
            return aad_error(
                400,
                "invalid_scope",
                70011,
                "The provided request must include a 'scope' input parameter. The provided "
                f"value for the input parameter 'scope' is not valid. The scope {scope} is not "
                "valid.",
                now,
            )
        assertion = form.get("client_assertion", "")
        assertion_type = form.get("client_assertion_type", "")
        if assertion and assertion_type != CLIENT_ASSERTION_TYPE:
            if not assertion_type:
                return _missing("client_assertion_type", now)
            return aad_error(
                400,
                "invalid_request",
                50027,
                f"Invalid client_assertion_type; expected '{CLIENT_ASSERTION_TYPE}'.",
                now,
            )
        if not assertion and not secret:
            return aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
                now,
            )
        federated = bool(assertion) and is_federated(assertion, client_id)
        with state.lock:
            tenant_rec = state.tenants.get(tenant)
            if tenant_rec is None:
                return _unknown_tenant(tenant, now)
            replica = call.replica if call.replica is not None else state.pick_replica()
            app = state.app_by_app_id_view(client_id, replica, now)
            sp = state.sp_view(tenant, client_id, replica, now)
            if app is None or sp is None:
                return _app_not_found(client_id, tenant_rec.display_name, now)
            if federated:
                # Checked below, outside the lock: it may fetch the issuer's keys.
                kind = "federated"
            elif assertion:
                base = _base()
                audiences = [
                    f"{base}/{tenant}/oauth2/v2.0/token",
                    f"{LOGIN_HOST}/{tenant}/oauth2/v2.0/token",
                    f"{LOGIN_HOST}/{tenant}/v2.0",
                ]
                try:
                    verify_client_assertion(
                        assertion,
                        client_id=client_id,
                        audiences=audiences,
                        keys=app.keys,
                        key_now=now,
                        nows=state.jwt_nows(now),
                    )
                except JwtRejected as exc:
                    return aad_error(401, "invalid_client", exc.code, exc.message, now)
                kind = "certificate"
            else:
                match = next((p for p in app.passwords if p.matches(secret)), None)
                if match is None or now < match.start:
                    return aad_error(
                        401,
                        "invalid_client",
                        7000215,
                        "Invalid client secret provided. Ensure the secret being sent in the "
                        "request is the client secret value, not the client secret ID, for a "
                        f"secret added to app '{client_id}'.",
                        now,
                    )
                if now >= match.end:
                    return aad_error(
                        401,
                        "invalid_client",
                        7000222,
                        f"The provided client secret keys for app '{client_id}' are expired. "
                        "Visit the Azure portal to create new keys for your app: "
                        "https://aka.ms/NewClientSecret, or consider using certificate "
                        "credentials for added security: https://aka.ms/certCreds.",
                        now,
                    )
                kind = "secret"
            roles = state.roles_of(tenant, client_id) if resource == GRAPH_RESOURCE else ()
            grant = TokenGrant(tenant, client_id, sp.object_id, resource, roles, kind)
        if federated:
            try:
                verify_federated_assertion(
                    assertion,
                    credentials=app.federated,
                    keys=state.issuer_keys,
                    key_now=now,
                    nows=state.jwt_nows(now),
                )
            except FederationRejected as exc:
                return aad_error(exc.status, exc.error, exc.code, exc.message, now)
        access_token, expires_in = issue_access_token(state.signing, grant, now)
        if state.clock.mode == "accelerated" and state.clock.factor > 1:
            # Clients cache by wall clock; tell them the lifetime in real seconds.
            expires_in = max(1, int(expires_in / state.clock.factor))
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": access_token,
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    @bp.get("/<tenant>/adminconsent")
    @bp.get("/<tenant>/v2.0/adminconsent")
    def admin_consent(tenant: str) -> Response:
        now = state.now()
        call = info()
        call.tenant = tenant
        client_id = request.args.get("client_id", "")
        redirect_uri = request.args.get("redirect_uri", "")
        consent_state = request.args.get("state")
        call.client = client_id or None
        if not client_id:
            return _missing("client_id", now)
        with state.lock:
            tenant_rec = state.tenants.get(tenant)
            if tenant_rec is None:
                return _unknown_tenant(tenant, now)
            replica = call.replica if call.replica is not None else state.pick_replica()
            app = state.app_by_app_id_view(client_id, replica, now)
            if app is None or (app.tenant_id != tenant and app.sign_in_audience != MULTI_TENANT):
                return _app_not_found(client_id, tenant_rec.display_name, now)
            if not redirect_uri:
                if not app.redirect_uris:
                    return aad_error(
                        400,
                        "invalid_request",
                        500113,
                        "No reply address is registered for the application.",
                        now,
                    )
                redirect_uri = app.redirect_uris[0]
            if redirect_uri not in app.redirect_uris:
                return aad_error(
                    400,
                    "invalid_request",
                    50011,
                    f"The redirect URI '{redirect_uri}' specified in the request does not match "
                    f"the redirect URIs configured for the application '{client_id}'. Make sure "
                    "the redirect URI sent in the request matches one added to your application "
                    "in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to "
                    "learn more about how to fix this.",
                    now,
                )
            if state.service_principal(tenant, client_id) is None:
                sp = ServicePrincipal(
                    str(uuid.uuid4()), client_id, tenant, app.display_name, app.tenant_id, now
                )
                state.write_sp(sp, replica)
        params = {"admin_consent": "True", "tenant": tenant}
        if consent_state is not None:
            params["state"] = consent_state
        separator = "&" if "?" in redirect_uri else "?"
        location = f"{redirect_uri}{separator}{urlencode(params)}"
        return Response(status=302, headers={"Location": location})

    return bp
