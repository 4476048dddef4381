"""Application objects: create, get (by object id or appId), list, update, delete.

learn.microsoft.com/graph/api/application-post-applications,
learn.microsoft.com/graph/api/application-get,
learn.microsoft.com/graph/api/application-list (``$top``, ``$filter``,
``@odata.nextLink``), learn.microsoft.com/graph/api/application-update,
learn.microsoft.com/graph/api/application-delete.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from flask import Response, request

from sidecar.emulator.graph import payload
from sidecar.emulator.graph.caller import READ_ALL, WRITE_ALL
from sidecar.emulator.graph.keys import key_from_graph
from sidecar.emulator.graph.routes import GraphRequest, GraphRoutes
from sidecar.emulator.records import MULTI_TENANT, SINGLE_TENANT, Application
from sidecar.emulator.responses import BadRequest, Forbidden, GraphError, NotFound, json_response

_PATCHABLE_EXTRA = frozenset(
    {
        "notes", "tags", "description", "identifierUris", "requiredResourceAccess", "api",
        "appRoles", "info", "isFallbackPublicClient", "optionalClaims", "spa", "publicClient",
    }
)  # fmt: skip
_BAD_AUDIENCE = "Invalid value specified for property 'signInAudience' of resource 'Application'."


def register(routes: GraphRoutes) -> None:
    routes.add("POST", create_application, "/applications")
    routes.add("GET", get_application, "/applications/<object_id>")
    routes.add(
        "GET",
        get_application_by_app_id,
        "/applications(appId=<app_id>)",
        "/applications(appId='<app_id>')",
    )
    routes.add("GET", list_applications, "/applications")
    routes.add("PATCH", patch_application, "/applications/<object_id>")
    routes.add("DELETE", delete_application, "/applications/<object_id>")


def _entity(req: GraphRequest, app: Application) -> dict[str, Any]:
    return {"@odata.context": f"{req.base()}/$metadata#applications/$entity", **app.graph()}


def _selected(req: GraphRequest, app: Application) -> dict[str, Any]:
    """One application as a single-object GET answers it, honouring ``$select``.

    Only the selected properties come back; selecting ``keyCredentials`` is the one
    way to read each certificate's ``key`` (learn.microsoft.com/graph/api/resources/
    keycredential: "Returned only on $select for a single object ... otherwise, it is
    always null"), which a PATCH that rewrites the collection can send back.
    """
    raw = request.args.get("$select")
    if raw is None:
        return _entity(req, app)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    full = app.graph(with_keys="keyCredentials" in names)
    unknown = [n for n in names if n not in full]
    if unknown:
        raise BadRequest(
            f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.application'."
        )
    context = f"{req.base()}/$metadata#applications({','.join(names)})/$entity"
    return {"@odata.context": context, **{n: full[n] for n in names}}


def create_application(req: GraphRequest) -> Response:
    caller, now = req.caller, req.now
    if not caller.can_create:
        raise Forbidden
    data = payload.body()
    display = payload.str_field(data, "displayName", required=True) or ""
    audience = payload.str_field(data, "signInAudience") or SINGLE_TENANT
    if audience not in (SINGLE_TENANT, MULTI_TENANT):
        raise BadRequest(_BAD_AUDIENCE)
    uris = _redirect_uris(data)
    keys_raw = data.get("keyCredentials") or []
    if not isinstance(keys_raw, list):
        raise BadRequest("Invalid value specified for property 'keyCredentials'.")
    keys = tuple(key_from_graph(k, {}, now) for k in keys_raw if isinstance(k, dict))
    extra = {k: v for k, v in data.items() if k in _PATCHABLE_EXTRA}
    with req.state.lock:
        app = Application(
            object_id=str(uuid.uuid4()),
            app_id=str(uuid.uuid4()),
            display_name=display,
            tenant_id=caller.tenant_id,
            created=now,
            sign_in_audience=audience,
            owners=(caller.app_id,),
            redirect_uris=uris,
            keys=keys,
            extra=extra,
        )
        req.state.write_app(app, req.replica())
    location = f"{req.base()}/applications/{app.object_id}"
    return json_response(_entity(req, app), 201, {"Location": location})


def get_application(req: GraphRequest, object_id: str) -> Response:
    with req.state.lock:
        app = req.visible_app(object_id)
        if not req.caller.can_read(app):
            raise Forbidden
        body = _selected(req, app)
    return json_response(body)


def get_application_by_app_id(req: GraphRequest, app_id: str) -> Response:
    app_id = app_id.strip("'")
    with req.state.lock:
        app = req.state.app_by_app_id_view(app_id, req.replica(), req.now)
        if app is None or app.tenant_id != req.caller.tenant_id:
            raise NotFound(app_id)
        if not req.caller.can_read(app):
            raise Forbidden
        body = _selected(req, app)
    return json_response(body)


def list_applications(req: GraphRequest) -> Response:
    caller, state = req.caller, req.state
    if not (caller.can_create or caller.roles & READ_ALL):
        raise Forbidden
    args = request.args
    try:
        top = int(args.get("$top", payload.DEFAULT_TOP))
    except ValueError as exc:
        raise BadRequest("Invalid page size specified: '$top'.") from exc
    if not 1 <= top <= payload.MAX_TOP:
        raise BadRequest(
            f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
        )
    offset = payload.page_offset(args["$skiptoken"]) if "$skiptoken" in args else 0
    raw_filter = args.get("$filter")
    field = value = prefix = None
    if raw_filter:
        match = payload.FILTER.match(raw_filter)
        starts = payload.STARTSWITH.match(raw_filter)
        if match:
            field, value = match.group(1).lower(), match.group(2).replace("''", "'")
        elif starts:
            prefix = starts.group(1).replace("''", "'").lower()
        else:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause specified for property of "
                "resource 'Application'.",
            )
    with state.lock:
        serving = req.replica()
        if field == "appid" and value is not None:
            candidates: list[str] = [state.app_ids[value]] if value in state.app_ids else []
        elif field == "id" and value is not None:
            candidates = [value]
        elif WRITE_ALL in caller.roles or caller.roles & READ_ALL:
            candidates = list(state.apps.object_keys())
        else:
            candidates = list(state.owned.get(caller.app_id, {}))
        visible: list[Application] = []
        for object_id in candidates:
            app = state.app_view(object_id, serving, req.now)
            if app is None or not caller.can_read(app):
                continue
            if field == "displayname" and app.display_name != value:
                continue
            if prefix is not None and not app.display_name.lower().startswith(prefix):
                continue
            visible.append(app)
        page = [a.graph() for a in visible[offset : offset + top]]
    body: dict[str, Any] = {"@odata.context": f"{req.base()}/$metadata#applications", "value": page}
    if offset + top < len(visible):
        params = [f"$top={top}"]
        if raw_filter:
            params.append(f"$filter={quote(raw_filter)}")
        params.append(f"$skiptoken={payload.skiptoken(offset + top)}")
        body["@odata.nextLink"] = f"{req.base()}/applications?{'&'.join(params)}"
    return json_response(body)


def patch_application(req: GraphRequest, object_id: str) -> Response:
    """Update application: 204; an owner with ``Application.ReadWrite.OwnedBy`` may call it.

    ``keyCredentials`` replaces the collection (:func:`key_from_graph`); the write
    reaches the other replicas with lag like any other, so a certificate added
    here signs in only where it has arrived (AADSTS700027 elsewhere).
    """
    data = payload.body()
    with req.state.lock:
        app = req.managed_app(object_id)
        changes = _patch_changes(app, data, req.now)
        if changes:
            req.state.write_app(replace(app, **changes), req.replica())
    return Response(status=204)


def delete_application(req: GraphRequest, object_id: str) -> Response:
    with req.state.lock:
        app = req.managed_app(object_id)
        req.state.delete_app(app, req.replica())
    return Response(status=204)


def _redirect_uris(data: dict[str, Any]) -> tuple[str, ...]:
    web = data.get("web")
    if web is None:
        return ()
    if not isinstance(web, dict):
        raise BadRequest("Invalid value specified for property 'web' of resource 'Application'.")
    uris = web.get("redirectUris") or []
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise BadRequest(
            "Invalid value specified for property 'redirectUris' of resource 'WebApplication'."
        )
    return tuple(uris)


def _patch_changes(app: Application, data: dict[str, Any], now: float) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    extra = dict(app.extra)
    for name, value in data.items():
        if name == "displayName":
            if not isinstance(value, str) or not value:
                raise BadRequest("Invalid value specified for property 'displayName'.")
            changes["display_name"] = value
        elif name == "signInAudience":
            if value not in (SINGLE_TENANT, MULTI_TENANT):
                raise BadRequest(_BAD_AUDIENCE)
            changes["sign_in_audience"] = value
        elif name == "web":
            changes["redirect_uris"] = _redirect_uris(data)
        elif name == "keyCredentials":
            if not isinstance(value, list) or not all(isinstance(k, dict) for k in value):
                raise BadRequest("Invalid value specified for property 'keyCredentials'.")
            existing = {k.key_id: k for k in app.keys}
            changes["keys"] = tuple(key_from_graph(k, existing, now) for k in value)
        elif name == "passwordCredentials":
            raise BadRequest(
                "Property 'passwordCredentials' cannot be updated; use addPassword and "
                "removePassword."
            )
        elif name in {"id", "appId", "createdDateTime"}:
            raise BadRequest(f"Property '{name}' is read-only and cannot be set.")
        elif name in _PATCHABLE_EXTRA:
            extra[name] = value
        else:
            raise BadRequest(
                f"Property '{name}' does not exist on type 'microsoft.graph.application'."
            )
    if extra != app.extra:
        changes["extra"] = extra
    return changes
