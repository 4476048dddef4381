"""The test-control API under ``/_emulator/`` (JSON, unauthenticated, loopback only).

Every endpoint maps onto a public method of ``EmulatorState`` so in-process
tests and out-of-process demos can drive the emulator the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from sidecar.emulator.app_policy import AppManagementPolicy
from sidecar.emulator.clock import parse_time
from sidecar.emulator.faults import FaultRule
from sidecar.emulator.records import SINGLE_TENANT
from sidecar.emulator.replicas import LagProfile, named_profile
from sidecar.emulator.responses import json_response
from sidecar.emulator.seeding import MANAGEMENT_ROLE, AdminError
from sidecar.emulator.state import EmulatorState
from sidecar.emulator.throttle import ThrottleConfig

LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True, force=True)
    if data is None and request.get_data(cache=True).strip():
        raise AdminError("the body is not valid JSON")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AdminError("the body must be a JSON object")
    return data


def _str_tuple(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(f"{name} must be a list of strings")
    return tuple(value)


def _optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdminError(f"{name} must be a number")
    return int(value)


def parse_lag_profile(value: Any) -> LagProfile:
    if isinstance(value, str):
        profile = named_profile(value)
        if profile is None:
            raise AdminError(f"unknown lag profile {value!r}")
        return profile
    if isinstance(value, dict):
        try:
            return LagProfile.from_dict(value)
        except (ValueError, TypeError) as exc:
            raise AdminError(f"invalid lag profile: {exc}") from exc
    raise AdminError("profile must be a name or an object")


def add_fault_rules(state: EmulatorState, data: dict[str, Any]) -> list[FaultRule]:
    kind = data.get("kind")
    prefix = data.get("prefix")
    retry_after = _optional_int(data.get("retryAfter", data.get("retry_after")), "retryAfter")
    with state.lock:
        if "random" in data:
            spec = data["random"]
            if not isinstance(spec, dict):
                raise AdminError("random must be an object")
            statuses = tuple(int(s) for s in spec.get("statuses", (500, 503)))
            return state.faults.random_errors(
                float(spec.get("rate", 0.1)),
                statuses,
                kind=spec.get("kind", kind),
                prefix=spec.get("prefix", prefix),
                retry_after=retry_after,
            )
        if "gateway" in data:
            spec = data["gateway"]
            if not isinstance(spec, dict):
                raise AdminError("gateway must be an object")
            if "rate" in spec:
                return state.faults.gateway_errors(float(spec["rate"]), kind=kind or "graph")
            return [
                state.faults.gateway_next(
                    _optional_int(spec.get("next", 1), "next") or 1,
                    status=_optional_int(spec.get("status", 504), "status") or 504,
                    commit=bool(spec.get("commit", False)),
                    kind=kind or "graph",
                    prefix=prefix,
                )
            ]
        if "drop" in data:
            count = _optional_int(data["drop"], "drop") or 1
            return [state.faults.drop_next(count, kind=kind, prefix=prefix)]
        count = _optional_int(data.get("next", 1), "next") or 1
        status = _optional_int(data.get("status", 503), "status") or 503
        return [
            state.faults.fail_next(
                count, status=status, kind=kind, prefix=prefix, retry_after=retry_after
            )
        ]


def create_admin_blueprint(state: EmulatorState, *, allow_remote: bool = False) -> Blueprint:
    bp = Blueprint("admin", __name__, url_prefix="/_emulator")

    @bp.before_request
    def loopback_only() -> Response | None:
        if not allow_remote and request.remote_addr not in LOOPBACK:
            return _error(403, "the emulator admin API answers loopback clients only")
        return None

    @bp.errorhandler(AdminError)
    def admin_error(exc: AdminError) -> Response:
        return _error(exc.status, str(exc))

    @bp.errorhandler(ValueError)
    def value_error(exc: ValueError) -> Response:
        return _error(400, str(exc))

    @bp.get("/health")
    def health() -> Response:
        return json_response({"ok": True, "now": state.now()})

    @bp.get("/clock")
    def get_clock() -> Response:
        return json_response(state.clock.to_dict())

    @bp.post("/clock")
    def post_clock() -> Response:
        data = _json()
        if "mode" in data:
            state.clock.set_mode(data["mode"])
        if "set" in data:
            state.clock.set(parse_time(data["set"]))
        if "advance" in data:
            state.clock.advance(float(data["advance"]))
        if "factor" in data:
            state.clock.set_factor(float(data["factor"]))
        with state.lock:
            state.changes += 1
        return json_response(state.clock.to_dict())

    @bp.get("/tenants")
    def list_tenants() -> Response:
        with state.lock:
            return json_response({"value": [t.admin() for t in state.tenants.values()]})

    @bp.post("/tenants")
    def seed_tenant() -> Response:
        data = _json()
        subs = data.get("subscriptions") or []
        if not isinstance(subs, list) or not all(isinstance(s, dict) for s in subs):
            raise AdminError("subscriptions must be a list of objects")
        tenant = state.seed_tenant(data.get("id"), str(data.get("displayName", "")), subs)
        with state.lock:
            return json_response(tenant.admin(), 201)

    @bp.post("/tenants/<tenant_id>/subscriptions")
    def add_subscription(tenant_id: str) -> Response:
        data = _json()
        sub = state.add_subscription(tenant_id, data.get("id"), str(data.get("displayName", "")))
        return json_response(
            {"id": sub.subscription_id, "tenantId": sub.tenant_id, "displayName": sub.display_name},
            201,
        )

    @bp.post("/management-app")
    def seed_management_app() -> Response:
        data = _json()
        tenant = data.get("tenant") or data.get("tenantId")
        if not isinstance(tenant, str):
            raise AdminError("tenant is required")
        seeded = state.seed_management_app(
            tenant,
            str(data.get("displayName", "azsidecar management")),
            certificate_pem=data.get("certificatePem"),
            roles=_str_tuple(data.get("roles", [MANAGEMENT_ROLE]), "roles"),
            app_id=data.get("appId"),
            certificate_days=float(data.get("certificateDays", 365.0)),
        )
        return json_response(seeded.to_dict(), 201)

    @bp.post("/applications/<app>/certificates")
    def upload_certificate(app: str) -> Response:
        """The portal's "upload certificate", for manual recovery drills."""
        data = _json()
        pem = data.get("certificatePem")
        if not isinstance(pem, str):
            raise AdminError("certificatePem is required")
        key_id = state.upload_certificate(app, pem, str(data.get("displayName", "uploaded")))
        return json_response({"keyId": key_id}, 201)

    @bp.post("/applications")
    def seed_application() -> Response:
        data = _json()
        tenant = data.get("tenant") or data.get("tenantId")
        if not isinstance(tenant, str):
            raise AdminError("tenant is required")
        seeded = state.seed_application(
            tenant,
            str(data.get("displayName", "application")),
            app_id=data.get("appId"),
            sign_in_audience=str(data.get("signInAudience", SINGLE_TENANT)),
            redirect_uris=_str_tuple(data.get("redirectUris"), "redirectUris"),
            owners=_str_tuple(data.get("owners"), "owners"),
            certificate_pem=data.get("certificatePem"),
            generate_certificate=bool(data.get("generateCertificate", False)),
            with_service_principal=bool(data.get("servicePrincipal", True)),
            roles=_str_tuple(data.get("roles"), "roles"),
        )
        return json_response(seeded.to_dict(), 201)

    @bp.get("/applications")
    def list_applications() -> Response:
        app_id = request.args.get("appId")
        name = request.args.get("displayName")
        tenant = request.args.get("tenant")
        with state.lock:
            out = []
            for key in state.apps.object_keys():
                app = state.apps.latest(key)
                if app is None:
                    continue
                if app_id and app.app_id != app_id:
                    continue
                if name and app.display_name != name:
                    continue
                if tenant and app.tenant_id != tenant:
                    continue
                out.append(state.app_admin_dict(app))
        return json_response({"value": out})

    @bp.get("/applications/<ident>")
    def get_application(ident: str) -> Response:
        replica = request.args.get("replica")
        with state.lock:
            object_id = state.app_ids.get(ident, ident)
            if replica is not None:
                app = state.app_view(object_id, int(replica), state.now())
            else:
                app = state.apps.latest(object_id)
            if app is None:
                return _error(404, f"no application {ident}")
            return json_response(state.app_admin_dict(app))

    @bp.post("/applications/<app_id>/roles")
    def grant_roles(app_id: str) -> Response:
        data = _json()
        roles = state.grant_app_roles(
            app_id, _str_tuple(data.get("roles"), "roles"), data.get("tenant")
        )
        return json_response({"appId": app_id, "roles": list(roles)})

    @bp.get("/service-principals")
    def list_service_principals() -> Response:
        tenant = request.args.get("tenant")
        app_id = request.args.get("appId")
        with state.lock:
            out = []
            for key in state.sps.object_keys():
                sp = state.sps.latest(key)
                if sp is None or (tenant and sp.tenant_id != tenant):
                    continue
                if app_id and sp.app_id != app_id:
                    continue
                out.append({**sp.graph(), "tenantId": sp.tenant_id})
        return json_response({"value": out})

    @bp.post("/role-assignments")
    def grant_azure_role() -> Response:
        data = _json()
        for name in ("tenant", "subscription", "appId"):
            if not isinstance(data.get(name), str):
                raise AdminError(f"{name} is required")
        state.grant_azure_role(
            data["tenant"],
            data["subscription"],
            data["appId"],
            str(data.get("role", "Contributor")),
        )
        return json_response({"granted": True}, 201)

    @bp.delete("/role-assignments")
    def revoke_azure_role() -> Response:
        data = _json()
        state.revoke_azure_role(str(data.get("subscription")), str(data.get("appId")))
        return Response(status=204)

    @bp.get("/replication")
    def get_replication() -> Response:
        return json_response(state.replication_dict())

    @bp.post("/replication")
    def set_replication() -> Response:
        data = _json()
        profile = parse_lag_profile(data["profile"]) if "profile" in data else None
        state.set_replication(
            replicas=_optional_int(data.get("replicas"), "replicas"), profile=profile
        )
        return json_response(state.replication_dict())

    @bp.get("/throttle")
    def get_throttle() -> Response:
        return json_response(state.throttle.config.to_dict())

    @bp.post("/throttle")
    def set_throttle() -> Response:
        state.configure_throttle(ThrottleConfig.from_dict(_json()))
        return json_response(state.throttle.config.to_dict())

    @bp.get("/issuer-keys")
    def get_issuer_keys() -> Response:
        return json_response(state.issuer_keys.settings())

    @bp.post("/issuer-keys")
    def set_issuer_keys() -> Response:
        """``{"caFile": path or null, "cacheSeconds": s, "refetchSeconds": s}``, each optional.

        The CA bundle trusted for external OIDC issuers and the key cache's times
        (``emulator.issuer_keys``); any change forgets every cached key.
        """
        data = _json()
        keys = state.issuer_keys
        ca_file = keys.ca_file
        if "caFile" in data:
            raw = data["caFile"]
            if raw is not None and (not isinstance(raw, str) or not Path(raw).is_file()):
                raise AdminError("caFile must be the path of a PEM file, or null")
            ca_file = None if raw is None else Path(raw)
        times: dict[str, float] = {}
        for name, field in (
            ("cacheSeconds", "cache_seconds"),
            ("refetchSeconds", "refetch_seconds"),
        ):
            value = data.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise AdminError(f"{name} must be a number of seconds, at least 0")
            times[field] = float(value)
        keys.configure(ca_file=ca_file, **times)
        return json_response(keys.settings())

    @bp.post("/app-policy")
    def set_app_policy() -> Response:
        """``{"maxPasswordLifetime": seconds or null}``: the tenant-wide lifetime cap."""
        cap = _json().get("maxPasswordLifetime")
        if cap is not None and (not isinstance(cap, int | float) or cap <= 0):
            raise AdminError("maxPasswordLifetime must be a positive number of seconds or null")
        with state.lock:
            state.app_policy = AppManagementPolicy(None if cap is None else float(cap))
        return json_response({"maxPasswordLifetime": cap})

    @bp.get("/faults")
    def get_faults() -> Response:
        with state.lock:
            return json_response(state.faults.to_dict())

    @bp.post("/faults")
    def add_faults() -> Response:
        rules = add_fault_rules(state, _json())
        return json_response({"added": [r.to_dict() for r in rules]}, 201)

    @bp.delete("/faults")
    def clear_faults() -> Response:
        with state.lock:
            state.faults.clear()
        return Response(status=204)

    @bp.get("/calls")
    def calls() -> Response:
        args = request.args
        status = args.get("status")
        limit = args.get("limit")
        with state.lock:
            found = state.calls.query(
                since=int(args.get("since", 0)),
                kind=args.get("kind"),
                status=int(status) if status else None,
                client=args.get("client"),
                path_prefix=args.get("prefix"),
                limit=int(limit) if limit else None,
            )
            return json_response(
                {
                    "calls": [c.to_dict() for c in found],
                    "next": state.calls.next_index,
                    "throttled": state.calls.throttled,
                    "faults": state.calls.faults,
                }
            )

    @bp.post("/reset")
    def reset() -> Response:
        state.reset()
        return json_response({"reset": True})

    return bp
