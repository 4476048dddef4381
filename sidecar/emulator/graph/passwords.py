"""Client secrets: ``addPassword`` and ``removePassword``.

Graph makes the secret and shows its text once, in ``addPassword``'s answer
(learn.microsoft.com/graph/api/application-addpassword); ``removePassword``
takes the ``keyId`` (learn.microsoft.com/graph/api/application-removepassword).
The tenant's app-management policy may cap the lifetime (``app_policy``).
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import replace

from flask import Response

from sidecar.emulator.graph import payload
from sidecar.emulator.graph.routes import GraphRequest, GraphRoutes
from sidecar.emulator.records import PasswordCredential, hash_secret
from sidecar.emulator.responses import BadRequest, GraphError, json_response

DEFAULT_SECRET_LIFETIME = 2 * 365 * 86400.0
_SECRET_ALPHABET = string.ascii_letters + string.digits + "_-.~"


def register(routes: GraphRoutes) -> None:
    routes.add("POST", add_password, "/applications/<object_id>/addPassword")
    routes.add("POST", remove_password, "/applications/<object_id>/removePassword")


def new_secret() -> str:
    """A secret shaped like Entra's: 3 characters, ``8Q~``, 34 more."""
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    tail = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
    return f"{head}8Q~{tail}"


def add_password(req: GraphRequest, object_id: str) -> Response:
    data = payload.body()
    cred = data.get("passwordCredential") or {}
    if not isinstance(cred, dict):
        raise BadRequest("Invalid value specified for property 'passwordCredential'.")
    display = payload.str_field(cred, "displayName")
    start = payload.time_field(cred, "startDateTime", req.now)
    end = payload.time_field(cred, "endDateTime", start + DEFAULT_SECRET_LIFETIME)
    if end <= start:
        raise BadRequest("Password credential end date must be later than its start date.")
    req.state.app_policy.check_password(start, end)
    with req.state.lock:
        app = req.managed_app(object_id)
        secret = new_secret()
        password = PasswordCredential(
            str(uuid.uuid4()), display, start, end, secret[:3], hash_secret(secret)
        )
        req.state.write_app(replace(app, passwords=(*app.passwords, password)), req.replica())
    body = {
        "@odata.context": f"{req.base()}/$metadata#microsoft.graph.passwordCredential",
        **password.graph(secret_text=secret),
    }
    return json_response(body)


def remove_password(req: GraphRequest, object_id: str) -> Response:
    key_id = payload.str_field(payload.body(), "keyId", required=True)
    with req.state.lock:
        app = req.managed_app(object_id)
        remaining = tuple(p for p in app.passwords if p.key_id != key_id)
        if len(remaining) == len(app.passwords):
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"No password credential found with keyId '{key_id}'.",
            )
        req.state.write_app(replace(app, passwords=remaining), req.replica())
    return Response(status=204)
