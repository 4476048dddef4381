"""A minimal Azure Resource Manager under ``/arm``: enough to prove a token works."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from sidecar.emulator.responses import arm_error, info, json_response
from sidecar.emulator.state import EmulatorState
from sidecar.emulator.tokens import ARM_AUDIENCES, InvalidToken, verify_access_token


def create_arm_blueprint(state: EmulatorState) -> Blueprint:
    bp = Blueprint("arm", __name__, url_prefix="/arm")

    def authenticate(now: float) -> dict[str, Any] | Response:
        if not request.args.get("api-version"):
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {
            "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
            'error="invalid_token", error_description="The authentication failed because of '
            "missing 'Authorization' header.\""
        }
        if scheme.lower() != "bearer" or not token.strip():
            return arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                challenge,
            )
        try:
            claims = verify_access_token(state.signing, token.strip(), ARM_AUDIENCES, now)
        except InvalidToken as exc:
            code = (
                "ExpiredAuthenticationToken"
                if "expired" in str(exc)
                else ("InvalidAuthenticationToken")
            )
            message = (
                "The access token expiry UTC time is earlier than current UTC time."
                if code == "ExpiredAuthenticationToken"
                else f"The access token is invalid. {exc}"
            )
            return arm_error(401, code, message)
        call = info()
        call.client, call.tenant = str(claims.get("appid", "")), str(claims["tid"])
        return claims

    def check_subscription(
        subscription_id: str, claims: dict[str, Any], now: float
    ) -> Response | None:
        with state.lock:
            sub = state.tenant_of_subscription(subscription_id)
            if sub is None:
                return arm_error(
                    404,
                    "SubscriptionNotFound",
                    f"The subscription '{subscription_id}' could not be found.",
                )
            tenant_id, app_id = str(claims["tid"]), str(claims.get("appid", ""))
            if sub.tenant_id != tenant_id:
                return arm_error(
                    401,
                    "InvalidAuthenticationTokenTenant",
                    f"The access token is from the wrong issuer "
                    f"'https://sts.windows.net/{tenant_id}/'. It must match the tenant "
                    f"'https://sts.windows.net/{sub.tenant_id}/' associated with this "
                    "subscription. Please use the authority (URL) "
                    f"'https://login.windows.net/{sub.tenant_id}' to get the token.",
                )
            replica = info().replica
            serving = replica if replica is not None else state.pick_replica()
            sp = state.sp_view(tenant_id, app_id, serving, now)
            if sp is None or not state.has_azure_role(subscription_id, app_id):
                oid = claims.get("oid", "")
                return arm_error(
                    403,
                    "AuthorizationFailed",
                    f"The client '{app_id}' with object id '{oid}' does not have authorization "
                    "to perform action 'Microsoft.Resources/subscriptions/read' over scope "
                    f"'/subscriptions/{subscription_id}' or the scope is invalid. If access "
                    "was recently granted, please refresh your credentials.",
                )
        return None

    @bp.get("/subscriptions/<subscription_id>")
    def get_subscription(subscription_id: str) -> Response:
        now = state.now()
        claims = authenticate(now)
        if isinstance(claims, Response):
            return claims
        denied = check_subscription(subscription_id, claims, now)
        if denied is not None:
            return denied
        with state.lock:
            sub = state.tenant_of_subscription(subscription_id)
            assert sub is not None
            return json_response(sub.arm())

    @bp.get("/subscriptions")
    def list_subscriptions() -> Response:
        now = state.now()
        claims = authenticate(now)
        if isinstance(claims, Response):
            return claims
        tenant_id, app_id = str(claims["tid"]), str(claims.get("appid", ""))
        with state.lock:
            tenant = state.tenants.get(tenant_id)
            replica = info().replica
            serving = replica if replica is not None else state.pick_replica()
            sp = state.sp_view(tenant_id, app_id, serving, now)
            subs = (
                []
                if tenant is None or sp is None
                else [
                    s.arm()
                    for s in tenant.subscriptions.values()
                    if state.has_azure_role(s.subscription_id, app_id)
                ]
            )
        return json_response({"value": subs, "count": {"type": "Total", "value": len(subs)}})

    return bp
