"""Service principals: create one for an application (this tenant's or a multi-tenant one's), list.

learn.microsoft.com/graph/api/serviceprincipal-post-serviceprincipals,
learn.microsoft.com/graph/api/serviceprincipal-list (``$filter=appId eq '...'``).
"""

from __future__ import annotations

import uuid

from flask import Response, request

from sidecar.emulator.graph import payload
from sidecar.emulator.graph.routes import GraphRequest, GraphRoutes
from sidecar.emulator.records import MULTI_TENANT, ServicePrincipal
from sidecar.emulator.responses import BadRequest, Forbidden, GraphError, json_response


def register(routes: GraphRoutes) -> None:
    routes.add("POST", create_service_principal, "/servicePrincipals")
    routes.add("GET", list_service_principals, "/servicePrincipals")


def create_service_principal(req: GraphRequest) -> Response:
    caller, state, now = req.caller, req.state, req.now
    app_id = payload.str_field(payload.body(), "appId", required=True) or ""
    if not caller.can_create:
        raise Forbidden
    with state.lock:
        serving = req.replica()
        app = state.app_by_app_id_view(app_id, serving, now)
        if app is None or (
            app.tenant_id != caller.tenant_id and app.sign_in_audience != MULTI_TENANT
        ):
            raise BadRequest(
                f"The appId '{app_id}' of the service principal does not reference a valid "
                "application object."
            )
        if app.tenant_id == caller.tenant_id and not caller.can_manage(app):
            raise Forbidden
        if state.service_principal(caller.tenant_id, app_id) is not None:
            raise GraphError(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal cannot be created, updated, or restored because the "
                "service principal name is already in use.",
            )
        sp = ServicePrincipal(
            str(uuid.uuid4()), app_id, caller.tenant_id, app.display_name, app.tenant_id, now
        )
        state.write_sp(sp, serving)
    body = {"@odata.context": f"{req.base()}/$metadata#servicePrincipals/$entity", **sp.graph()}
    return json_response(body, 201)


def list_service_principals(req: GraphRequest) -> Response:
    caller, state = req.caller, req.state
    if not caller.roles:
        raise Forbidden
    raw_filter = request.args.get("$filter")
    wanted: str | None = None
    if raw_filter:
        match = payload.FILTER.match(raw_filter)
        if not match or match.group(1).lower() != "appid":
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause specified for property of "
                "resource 'ServicePrincipal'.",
            )
        wanted = match.group(2).replace("''", "'")
    with state.lock:
        serving = req.replica()
        app_ids = [wanted] if wanted else list(state.sp_by_tenant.get(caller.tenant_id, {}))
        found = [
            sp.graph()
            for aid in app_ids
            if (sp := state.sp_view(caller.tenant_id, aid, serving, req.now)) is not None
        ]
    return json_response(
        {"@odata.context": f"{req.base()}/$metadata#servicePrincipals", "value": found}
    )
