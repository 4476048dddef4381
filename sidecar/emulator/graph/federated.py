"""Federated identity credentials of an application: create, list, get, delete.

learn.microsoft.com/graph/api/resources/federatedidentitycredential (the
resource: ``name`` "has a limit of 120 characters and must be URL friendly",
``issuer`` / ``subject`` / ``audiences`` / ``description`` each "a limit of 600
characters", ``audiences`` "can only accept a single value", "The combination
of the values of issuer and subject must be unique within the app"),
learn.microsoft.com/graph/api/application-post-federatedidentitycredentials
("Maximum of 20 objects can be added to an application"; 201 with the object;
the application addressed by ``id`` or ``appId``),
learn.microsoft.com/graph/api/application-list-federatedidentitycredentials,
learn.microsoft.com/graph/api/federatedidentitycredential-get and
learn.microsoft.com/graph/api/federatedidentitycredential-delete (204).
learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations
gives the name's characters: "3-120 characters ... Alphanumeric, dash, or
underscore characters are supported, the first character must be alphanumeric
only".

The credentials live on the application record, so a write goes through
:meth:`EmulatorState.write_app` and reaches the other replicas with the lag like
every other write: a credential just created is missing (404, and no sign-in
match) on a replica that lags.

Error answers. Sourced: a duplicate name is ``409
Request_MultipleObjectsWithSameKeyValue`` "FederatedIdentityCredential with name
main already exists." (a Graph answer quoted in github.com/Azure/azure-dev
issue 1482); a duplicate issuer and subject is ``400
InvalidFederatedIdentityCredentialValue`` "The combination of issuer and subject
must be unique for the application. Issuer ... and Subject: ... already exist.
paramName: FederatedIdentityCredential.Subject, ..." (quoted in
github.com/Azure/azure-workload-identity issue 434). Not found in any source,
so the texts are the emulator's own: the 20-credential limit (``400
Request_BadRequest``), a name, issuer, subject, audience or description out of
bounds and ``audiences`` not exactly one value (``400
InvalidFederatedIdentityCredentialValue``, the code of the sourced value error),
and an unknown credential id (``404 Request_ResourceNotFound``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from flask import Response

from sidecar.emulator.graph import payload
from sidecar.emulator.graph.routes import GraphRequest, GraphRoutes
from sidecar.emulator.records import Application, FederatedCredential
from sidecar.emulator.responses import BadRequest, Forbidden, GraphError, NotFound, json_response

MAX_PER_APPLICATION = 20
NAME_MIN, NAME_MAX = 3, 120
MAX_VALUE = 600
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
VALUE_ERROR = "InvalidFederatedIdentityCredentialValue"
_OBJECT_TYPE = "Microsoft.Online.DirectoryServices.Application"
_COLLECTION = "federatedIdentityCredentials"


def register(routes: GraphRoutes) -> None:
    base = "/applications/<object_id>/federatedIdentityCredentials"
    by_app_id = "/applications(appId=<app_id>)/federatedIdentityCredentials"
    quoted = "/applications(appId='<app_id>')/federatedIdentityCredentials"
    routes.add("POST", create_federated, base, by_app_id, quoted)
    routes.add("GET", list_federated, base, by_app_id, quoted)
    item = "/<credential_id>"
    routes.add("GET", get_federated, base + item, by_app_id + item, quoted + item)
    routes.add("DELETE", delete_federated, base + item, by_app_id + item, quoted + item)


def _object_id(req: GraphRequest, object_id: str | None, app_id: str | None) -> str:
    """The application's object id, from the URL's ``{id}`` or ``(appId='...')`` (under lock)."""
    if object_id is not None:
        return object_id
    wanted = (app_id or "").strip("'")
    found = req.state.app_ids.get(wanted)
    if found is None:
        raise NotFound(wanted)
    return found


def _readable(req: GraphRequest, object_id: str) -> Application:
    app = req.visible_app(object_id)
    if not req.caller.can_read(app):
        raise Forbidden
    return app


def _value_error(message: str, param: str, value: str) -> GraphError:
    return GraphError(
        400,
        VALUE_ERROR,
        f"{message} paramName: FederatedIdentityCredential.{param}, paramValue: {value}, "
        f"objectType: {_OBJECT_TYPE}",
    )


def _bounded(data: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = payload.str_field(data, name, required=required)
    if value is None:
        return None
    if required and not value.strip():
        raise _value_error(f"Property '{name}' must not be empty.", name.title(), value)
    if len(value) > MAX_VALUE:
        raise _value_error(
            f"Property '{name}' is longer than {MAX_VALUE} characters.", name.title(), value
        )
    return value


def credential_from_body(data: dict[str, Any]) -> FederatedCredential:
    """A new credential from a create body, once every documented bound holds."""
    name = payload.str_field(data, "name", required=True) or ""
    if not NAME_MIN <= len(name) <= NAME_MAX or not NAME_PATTERN.match(name):
        raise _value_error(
            f"Federated identity credential name must be {NAME_MIN} to {NAME_MAX} characters "
            "long, of letters, digits, '-' and '_', and begin with a letter or digit.",
            "Name",
            name,
        )
    issuer = _bounded(data, "issuer", required=True) or ""
    subject = _bounded(data, "subject", required=True) or ""
    description = _bounded(data, "description", required=False)
    audiences = data.get("audiences")
    if audiences is None:
        raise BadRequest("Property 'audiences' is required.")
    if (
        not isinstance(audiences, list)
        or len(audiences) != 1
        or not isinstance(audiences[0], str)
        or not audiences[0].strip()
    ):
        raise _value_error(
            "Property 'audiences' must hold exactly one value.", "Audiences", str(audiences)
        )
    if len(audiences[0]) > MAX_VALUE:
        raise _value_error(
            f"Property 'audiences' is longer than {MAX_VALUE} characters.",
            "Audiences",
            audiences[0],
        )
    return FederatedCredential(
        str(uuid.uuid4()), name, issuer, subject, (audiences[0],), description
    )


def check_addable(app: Application, new: FederatedCredential) -> None:
    """Refuse a credential the application cannot take (limit, duplicate name or trust)."""
    if any(f.name == new.name for f in app.federated):
        raise GraphError(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            f"FederatedIdentityCredential with name {new.name} already exists.",
        )
    if any(f.issuer == new.issuer and f.subject == new.subject for f in app.federated):
        raise _value_error(
            "The combination of issuer and subject must be unique for the application. Issuer "
            f"{new.issuer} and Subject: {new.subject} already exist.",
            "Subject",
            new.subject,
        )
    if len(app.federated) >= MAX_PER_APPLICATION:
        raise BadRequest(
            f"The application already has the maximum of {MAX_PER_APPLICATION} federated "
            "identity credentials."
        )


def _context(req: GraphRequest, object_id: str, entity: bool) -> str:
    tail = "/$entity" if entity else ""
    return f"{req.base()}/$metadata#applications('{object_id}')/{_COLLECTION}{tail}"


def create_federated(
    req: GraphRequest, object_id: str | None = None, app_id: str | None = None
) -> Response:
    new = credential_from_body(payload.body())
    with req.state.lock:
        target = _object_id(req, object_id, app_id)
        app = req.managed_app(target)
        check_addable(app, new)
        req.state.write_app(replace(app, federated=(*app.federated, new)), req.replica())
    body = {"@odata.context": _context(req, target, True), **new.graph()}
    location = f"{req.base()}/applications/{target}/{_COLLECTION}/{new.credential_id}"
    return json_response(body, 201, {"Location": location})


def list_federated(
    req: GraphRequest, object_id: str | None = None, app_id: str | None = None
) -> Response:
    with req.state.lock:
        target = _object_id(req, object_id, app_id)
        app = _readable(req, target)
        values = [f.graph() for f in app.federated]
    return json_response({"@odata.context": _context(req, target, False), "value": values})


def _find(app: Application, credential_id: str) -> FederatedCredential:
    """By ``id``, else by ``name``: "You can also address the federated identity
    credential with either its id or name." (the Get and Delete pages)."""
    for cred in app.federated:
        if cred.credential_id == credential_id:
            return cred
    for cred in app.federated:
        if cred.name == credential_id:
            return cred
    raise NotFound(credential_id)


def get_federated(
    req: GraphRequest,
    credential_id: str,
    object_id: str | None = None,
    app_id: str | None = None,
) -> Response:
    with req.state.lock:
        target = _object_id(req, object_id, app_id)
        cred = _find(_readable(req, target), credential_id)
    return json_response({"@odata.context": _context(req, target, True), **cred.graph()})


def delete_federated(
    req: GraphRequest,
    credential_id: str,
    object_id: str | None = None,
    app_id: str | None = None,
) -> Response:
    """204. The credential must be visible on the serving replica; the removal then
    applies to the latest record and replicates with lag like the create."""
    with req.state.lock:
        target = _object_id(req, object_id, app_id)
        view = req.visible_app(target)
        cred = _find(view, credential_id)
        app = req.managed_app(target)
        remaining = tuple(f for f in app.federated if f.credential_id != cred.credential_id)
        req.state.write_app(replace(app, federated=remaining), req.replica())
    return Response(status=204)
