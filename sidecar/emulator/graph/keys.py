"""Certificate key credentials: ``addKey`` and ``removeKey`` with the proof-of-possession JWT.

An application may change its own keys (or those of an app it manages) through
these actions, proving it holds a currently registered key
(learn.microsoft.com/graph/api/application-addkey,
learn.microsoft.com/graph/api/application-removekey). "Applications that don't
have any existing valid certificates (no certificates have been added yet, or
all certificates have expired), won't be able to use this service action. You
can use the Update application operation to perform an update instead." (the
addKey page). The proof is checked against the keys the serving replica sees,
so a key added a moment ago cannot sign a proof on a replica that lags.

Graph documents no error body for a refused proof. Public reports of refused
proofs (a wrong ``aud``: github.com/microsoftgraph/microsoft-graph-docs-contrib
issues 4259 and 1076, 2862) all show ``401 Authentication_MissingOrMalformed``
"Access Token missing or malformed.", so every proof refusal, and addKey on an
application without a valid certificate, answers that; the emulator appends its
reason so a test can tell them apart.

``keyCredentials`` in a create or PATCH body are read here too
(:func:`key_from_graph`; learn.microsoft.com/graph/api/resources/keycredential).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from flask import Response

from sidecar.emulator.graph import payload
from sidecar.emulator.graph.routes import GraphRequest, GraphRoutes
from sidecar.emulator.records import (
    Application,
    KeyCredential,
    certificate_der,
    certificate_validity,
)
from sidecar.emulator.responses import BadRequest, Forbidden, GraphError, NotFound, json_response
from sidecar.emulator.tokens import ProofRejected
from sidecar.emulator.tokens import verify_proof as check_proof

#: keyCredential.displayName: "maximum length of 90 characters. Longer values are
#: accepted but shortened." (learn.microsoft.com/graph/api/resources/keycredential)
MAX_DISPLAY_NAME = 90


def register(routes: GraphRoutes) -> None:
    routes.add("POST", add_key, "/applications/<object_id>/addKey")
    routes.add("POST", remove_key, "/applications/<object_id>/removeKey")


def key_from_graph(
    entry: dict[str, Any], existing: dict[str, KeyCredential], now: float
) -> KeyCredential:
    """One ``keyCredential`` of a create or PATCH body.

    A PATCH with ``keyCredentials`` replaces the whole collection (Update
    application: the body's values replace the property; keys left out are gone).
    An entry naming an existing ``keyId`` without a ``key`` keeps that
    certificate: that is what a client holds after a plain GET, where ``key`` is
    always null (learn.microsoft.com/graph/api/resources/keycredential). An entry
    without ``key`` naming no existing key is refused.
    """
    key_id = payload.str_field(entry, "keyId")
    raw_key = entry.get("key")
    if raw_key is None:
        if key_id is not None and key_id in existing:
            return existing[key_id]
        raise BadRequest("keyCredentials entries without 'key' must name an existing keyId.")
    if not isinstance(raw_key, str):
        raise BadRequest("Invalid value specified for property 'key' of resource 'KeyCredential'.")
    if entry.get("type", "AsymmetricX509Cert") != "AsymmetricX509Cert":
        raise BadRequest("Only keyCredential type 'AsymmetricX509Cert' is supported.")
    if entry.get("usage", "Verify") != "Verify":
        raise BadRequest("Only keyCredential usage 'Verify' is supported.")
    try:
        der = certificate_der(raw_key)
    except ValueError as exc:
        raise BadRequest(
            "Key credential 'key' is not a valid base64-encoded X.509 certificate."
        ) from exc
    cert_start, cert_end = certificate_validity(der)
    start = payload.time_field(entry, "startDateTime", cert_start)
    end = payload.time_field(entry, "endDateTime", cert_end)
    if end <= start:
        raise BadRequest("Key credential end date must be later than its start date.")
    if start < cert_start - 1 or end > cert_end + 1:
        raise BadRequest("Key credential dates must lie within the certificate's validity period.")
    display = payload.str_field(entry, "displayName")
    if display is None:
        display = "CN=" + (next(iter(a.value for a in _subject(der)), "certificate"))
    return KeyCredential(key_id or str(uuid.uuid4()), display[:MAX_DISPLAY_NAME], start, end, der)


def _subject(der: bytes) -> list[Any]:
    return list(
        x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )


def key_target(req: GraphRequest, object_id: str) -> tuple[Application, Application]:
    """(replica view, latest) of an app the caller may add keys to: itself or one it manages."""
    view = req.visible_app(object_id)
    if view.app_id != req.caller.app_id and not req.caller.can_manage(view):
        raise Forbidden
    latest = req.state.apps.latest(object_id)
    if latest is None:
        raise NotFound(object_id)
    return view, latest


def proven_key_target(req: GraphRequest, object_id: str, proof: str) -> Application:
    """The latest app record once the caller may change its keys and the proof holds."""
    view, latest = key_target(req, object_id)
    if not any(k.start <= req.now <= k.end for k in view.keys):
        raise proof_error(
            "the application has no valid certificate (none added yet, or all expired); "
            "add the first one with PATCH /applications/{id} and keyCredentials."
        )
    try:
        check_proof(
            proof,
            object_id=view.object_id,
            keys=view.keys,
            key_now=req.now,
            nows=req.state.jwt_nows(req.now),
        )
    except ProofRejected as exc:
        raise proof_error(exc.reason) from exc
    return latest


def proof_error(reason: str) -> GraphError:
    """Graph's answer to a proof it cannot accept (see the module docstring)."""
    return GraphError(
        401,
        "Authentication_MissingOrMalformed",
        f"Access Token missing or malformed. Invalid proof: {reason}",
    )


def add_key(req: GraphRequest, object_id: str) -> Response:
    data = payload.body()
    cred = data.get("keyCredential")
    if not isinstance(cred, dict):
        raise BadRequest("Property 'keyCredential' is required.")
    if data.get("passwordCredential") is not None:
        raise BadRequest("Adding a passwordCredential through addKey is not supported.")
    proof = payload.str_field(data, "proof", required=True) or ""
    if cred.get("key") is None:
        raise BadRequest("Property 'key' of 'keyCredential' is required.")
    new_key = key_from_graph({**cred, "keyId": None}, {}, req.now)
    with req.state.lock:
        latest = proven_key_target(req, object_id, proof)
        if any(k.sha1 == new_key.sha1 for k in latest.keys):
            raise BadRequest("Key credential with the same certificate thumbprint already exists.")
        req.state.write_app(replace(latest, keys=(*latest.keys, new_key)), req.replica())
    body = {
        "@odata.context": f"{req.base()}/$metadata#microsoft.graph.keyCredential",
        **new_key.graph(),
    }
    return json_response(body)


def remove_key(req: GraphRequest, object_id: str) -> Response:
    data = payload.body()
    key_id = payload.str_field(data, "keyId", required=True)
    proof = payload.str_field(data, "proof", required=True) or ""
    with req.state.lock:
        latest = proven_key_target(req, object_id, proof)
        remaining = tuple(k for k in latest.keys if k.key_id != key_id)
        if len(remaining) == len(latest.keys):
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"No key credential found with keyId '{key_id}'.",
            )
        req.state.write_app(replace(latest, keys=remaining), req.replica())
    return Response(status=204)
