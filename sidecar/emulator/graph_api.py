"""Microsoft Graph v1.0 under ``/graph``: applications, their credentials, service principals.

Reads see the serving replica's view; writes are built on the authoritative
(latest) object and reach the other replicas after the lag. So a just-created
application can be missing (404) and a just-added key unknown to a replica.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.x509.oid import NameOID
from flask import Blueprint, Response, request

from sidecar.emulator.clock import parse_time
from sidecar.emulator.records import (
    MULTI_TENANT,
    SINGLE_TENANT,
    Application,
    KeyCredential,
    PasswordCredential,
    ServicePrincipal,
    certificate_der,
    certificate_validity,
    hash_secret,
)
from sidecar.emulator.responses import (
    bad_request,
    forbidden,
    graph_error,
    info,
    json_response,
    not_found,
)
from sidecar.emulator.state import EmulatorState
from sidecar.emulator.tokens import GRAPH_AUDIENCES, InvalidToken, JwtRejected, verify_access_token
from sidecar.emulator.tokens import verify_proof as check_proof

GRAPH = "/graph/v1.0"
OWNED_BY = "Application.ReadWrite.OwnedBy"
WRITE_ALL = "Application.ReadWrite.All"
READ_ALL = frozenset(
    {"Application.Read.All", WRITE_ALL, "Directory.Read.All", "Directory.ReadWrite.All"}
)
DEFAULT_SECRET_LIFETIME = 2 * 365 * 86400.0
MAX_TOP = 999
DEFAULT_TOP = 100
_SECRET_ALPHABET = string.ascii_letters + string.digits + "_-.~"
_PATCHABLE_EXTRA = frozenset(
    {
        "notes", "tags", "description", "identifierUris", "requiredResourceAccess", "api",
        "appRoles", "info", "isFallbackPublicClient", "optionalClaims", "spa", "publicClient",
    }
)  # fmt: skip
_FILTER = re.compile(r"^\s*(displayName|appId|id)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_STARTSWITH = re.compile(
    r"^\s*startswith\(\s*displayName\s*,\s*'((?:[^']|'')*)'\s*\)\s*$", re.IGNORECASE
)
_BAD_JSON = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and "
    "payload is of valid JSON format."
)


@dataclass(frozen=True)
class Caller:
    app_id: str
    tenant_id: str
    sp_object_id: str
    roles: frozenset[str]

    def can_manage(self, app: Application) -> bool:
        if app.tenant_id != self.tenant_id:
            return False
        return WRITE_ALL in self.roles or (OWNED_BY in self.roles and self.app_id in app.owners)

    def can_read(self, app: Application) -> bool:
        return self.can_manage(app) or (
            app.tenant_id == self.tenant_id and bool(self.roles & READ_ALL)
        )

    @property
    def can_create(self) -> bool:
        return bool(self.roles & {OWNED_BY, WRITE_ALL})


def new_secret() -> str:
    """A secret shaped like Entra's: 3 characters, ``8Q~``, 34 more."""
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    tail = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
    return f"{head}8Q~{tail}"


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Invalid(_BAD_JSON) from exc
    if not isinstance(data, dict):
        raise _Invalid(_BAD_JSON)
    return data


def _time_field(data: dict[str, Any], name: str, default: float) -> float:
    value = data.get(name)
    if value is None:
        return default
    try:
        return parse_time(value)
    except (ValueError, OverflowError) as exc:
        raise _Invalid(f"Invalid value specified for property '{name}' of resource.") from exc


def _str_field(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _Invalid(f"Property '{name}' is required.")
        return None
    if not isinstance(value, str):
        raise _Invalid(f"Invalid value specified for property '{name}' of resource.")
    return value


def _key_from_graph(
    entry: dict[str, Any], existing: dict[str, KeyCredential], now: float
) -> KeyCredential:
    key_id = _str_field(entry, "keyId")
    raw_key = entry.get("key")
    if raw_key is None:
        if key_id is not None and key_id in existing:
            return existing[key_id]
        raise _Invalid("keyCredentials entries without 'key' must name an existing keyId.")
    if not isinstance(raw_key, str):
        raise _Invalid("Invalid value specified for property 'key' of resource 'KeyCredential'.")
    if entry.get("type", "AsymmetricX509Cert") != "AsymmetricX509Cert":
        raise _Invalid("Only keyCredential type 'AsymmetricX509Cert' is supported.")
    if entry.get("usage", "Verify") != "Verify":
        raise _Invalid("Only keyCredential usage 'Verify' is supported.")
    try:
        der = certificate_der(raw_key)
    except ValueError as exc:
        raise _Invalid(
            "Key credential 'key' is not a valid base64-encoded X.509 certificate."
        ) from exc
    cert_start, cert_end = certificate_validity(der)
    start = _time_field(entry, "startDateTime", cert_start)
    end = _time_field(entry, "endDateTime", cert_end)
    if end <= start:
        raise _Invalid("Key credential end date must be later than its start date.")
    if start < cert_start - 1 or end > cert_end + 1:
        raise _Invalid("Key credential dates must lie within the certificate's validity period.")
    display = _str_field(entry, "displayName")
    if display is None:
        display = "CN=" + (next(iter(a.value for a in _subject(der)), "certificate"))
    return KeyCredential(key_id or str(uuid.uuid4()), display, start, end, der)


def _subject(der: bytes) -> list[Any]:
    return list(
        x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError(token)
        return max(0, int(text[2:]))
    except ValueError as exc:
        raise _Invalid("Invalid $skiptoken.") from exc


def create_graph_blueprint(state: EmulatorState) -> Blueprint:
    bp = Blueprint("graph", __name__, url_prefix=GRAPH)

    def base() -> str:
        return request.host_url.rstrip("/") + GRAPH

    def authenticate(now: float) -> Caller | Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        auth_headers = {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri='
            '"https://login.microsoftonline.com/common/oauth2/authorize", '
            'client_id="00000003-0000-0000-c000-000000000000"'
        }
        if not token.strip() or scheme.lower() != "bearer":
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token is empty.", now, auth_headers
            )
        try:
            claims = verify_access_token(state.signing, token.strip(), GRAPH_AUDIENCES, now)
        except InvalidToken as exc:
            return graph_error(401, "InvalidAuthenticationToken", str(exc), now, auth_headers)
        roles = claims.get("roles", [])
        caller = Caller(
            app_id=str(claims.get("appid", "")),
            tenant_id=str(claims["tid"]),
            sp_object_id=str(claims.get("oid", "")),
            roles=frozenset(r for r in roles if isinstance(r, str)),
        )
        call = info()
        call.client, call.tenant = caller.app_id, caller.tenant_id
        kind = "reads" if request.method == "GET" else "writes"
        with state.lock:
            refused = state.throttle.take(caller.app_id, caller.tenant_id, kind, now)
        if refused is not None:
            call.throttled = True
            return graph_error(
                429,
                "TooManyRequests",
                "Too many requests. Retry after the number of seconds in the Retry-After header.",
                now,
                refused.headers(),
            )
        return caller

    def replica() -> int:
        current = info().replica
        return current if current is not None else state.pick_replica()

    def visible_app(object_id: str, caller: Caller, now: float) -> Application | Response:
        app = state.app_view(object_id, replica(), now)
        if app is None or app.tenant_id != caller.tenant_id:
            return not_found(object_id, now)
        return app

    def managed_app(object_id: str, caller: Caller, now: float) -> Application | Response:
        found = visible_app(object_id, caller, now)
        if isinstance(found, Response):
            return found
        if not caller.can_manage(found):
            return forbidden(now)
        latest = state.apps.latest(object_id)
        return latest if latest is not None else not_found(object_id, now)

    # ----- applications -----------------------------------------------------

    @bp.post("/applications")
    def create_application() -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        if not caller.can_create:
            return forbidden(now)
        try:
            data = _body()
            display = _str_field(data, "displayName", required=True) or ""
            audience = _str_field(data, "signInAudience") or SINGLE_TENANT
            if audience not in (SINGLE_TENANT, MULTI_TENANT):
                raise _Invalid(
                    "Invalid value specified for property 'signInAudience' of resource "
                    "'Application'."
                )
            uris = _redirect_uris(data)
            keys_raw = data.get("keyCredentials") or []
            if not isinstance(keys_raw, list):
                raise _Invalid("Invalid value specified for property 'keyCredentials'.")
            keys = tuple(_key_from_graph(k, {}, now) for k in keys_raw if isinstance(k, dict))
            extra = {k: v for k, v in data.items() if k in _PATCHABLE_EXTRA}
        except _Invalid as exc:
            return bad_request(exc.message, now)
        with state.lock:
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
            state.write_app(app, replica())
        body = {"@odata.context": f"{base()}/$metadata#applications/$entity", **app.graph()}
        return json_response(body, 201, {"Location": f"{base()}/applications/{app.object_id}"})

    @bp.get("/applications/<object_id>")
    def get_application(object_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        with state.lock:
            app = visible_app(object_id, caller, now)
            if isinstance(app, Response):
                return app
            if not caller.can_read(app):
                return forbidden(now)
            body = {"@odata.context": f"{base()}/$metadata#applications/$entity", **app.graph()}
        return json_response(body)

    @bp.get("/applications(appId='<app_id>')")
    @bp.get("/applications(appId=<app_id>)")
    def get_application_by_app_id(app_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        app_id = app_id.strip("'")
        with state.lock:
            app = state.app_by_app_id_view(app_id, replica(), now)
            if app is None or app.tenant_id != caller.tenant_id:
                return not_found(app_id, now)
            if not caller.can_read(app):
                return forbidden(now)
            body = {"@odata.context": f"{base()}/$metadata#applications/$entity", **app.graph()}
        return json_response(body)

    @bp.get("/applications")
    def list_applications() -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        if not (caller.can_create or caller.roles & READ_ALL):
            return forbidden(now)
        args = request.args
        try:
            top = int(args.get("$top", DEFAULT_TOP))
        except ValueError:
            return bad_request("Invalid page size specified: '$top'.", now)
        if not 1 <= top <= MAX_TOP:
            return bad_request(
                f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.", now
            )
        try:
            offset = _offset(args["$skiptoken"]) if "$skiptoken" in args else 0
        except _Invalid as exc:
            return bad_request(exc.message, now)
        raw_filter = args.get("$filter")
        field = value = prefix = None
        if raw_filter:
            match = _FILTER.match(raw_filter)
            starts = _STARTSWITH.match(raw_filter)
            if match:
                field, value = match.group(1).lower(), match.group(2).replace("''", "'")
            elif starts:
                prefix = starts.group(1).replace("''", "'").lower()
            else:
                return graph_error(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified for property of "
                    "resource 'Application'.",
                    now,
                )
        with state.lock:
            serving = replica()
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
                app = state.app_view(object_id, serving, now)
                if app is None or not caller.can_read(app):
                    continue
                if field == "displayname" and app.display_name != value:
                    continue
                if prefix is not None and not app.display_name.lower().startswith(prefix):
                    continue
                visible.append(app)
            page = [a.graph() for a in visible[offset : offset + top]]
        body: dict[str, Any] = {"@odata.context": f"{base()}/$metadata#applications", "value": page}
        if offset + top < len(visible):
            params = [f"$top={top}"]
            if raw_filter:
                params.append(f"$filter={quote(raw_filter)}")
            params.append(f"$skiptoken={_skiptoken(offset + top)}")
            body["@odata.nextLink"] = f"{base()}/applications?{'&'.join(params)}"
        return json_response(body)

    @bp.patch("/applications/<object_id>")
    def patch_application(object_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        try:
            data = _body()
        except _Invalid as exc:
            return bad_request(exc.message, now)
        with state.lock:
            app = managed_app(object_id, caller, now)
            if isinstance(app, Response):
                return app
            try:
                changes = _patch_changes(app, data, now)
            except _Invalid as exc:
                return bad_request(exc.message, now)
            if changes:
                state.write_app(replace(app, **changes), replica())
        return Response(status=204)

    @bp.delete("/applications/<object_id>")
    def delete_application(object_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        with state.lock:
            app = managed_app(object_id, caller, now)
            if isinstance(app, Response):
                return app
            state.delete_app(app, replica())
        return Response(status=204)

    @bp.post("/applications/<object_id>/addPassword")
    def add_password(object_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        try:
            data = _body()
            cred = data.get("passwordCredential") or {}
            if not isinstance(cred, dict):
                raise _Invalid("Invalid value specified for property 'passwordCredential'.")
            display = _str_field(cred, "displayName")
            start = _time_field(cred, "startDateTime", now)
            end = _time_field(cred, "endDateTime", start + DEFAULT_SECRET_LIFETIME)
            if end <= start:
                raise _Invalid("Password credential end date must be later than its start date.")
        except _Invalid as exc:
            return bad_request(exc.message, now)
        if (refused := state.app_policy.check_password(start, end, now)) is not None:
            return refused
        with state.lock:
            app = managed_app(object_id, caller, now)
            if isinstance(app, Response):
                return app
            secret = new_secret()
            password = PasswordCredential(
                str(uuid.uuid4()), display, start, end, secret[:3], hash_secret(secret)
            )
            state.write_app(replace(app, passwords=(*app.passwords, password)), replica())
        body = {
            "@odata.context": f"{base()}/$metadata#microsoft.graph.passwordCredential",
            **password.graph(secret_text=secret),
        }
        return json_response(body)

    @bp.post("/applications/<object_id>/removePassword")
    def remove_password(object_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        try:
            key_id = _str_field(_body(), "keyId", required=True)
        except _Invalid as exc:
            return bad_request(exc.message, now)
        with state.lock:
            app = managed_app(object_id, caller, now)
            if isinstance(app, Response):
                return app
            remaining = tuple(p for p in app.passwords if p.key_id != key_id)
            if len(remaining) == len(app.passwords):
                return graph_error(
                    404,
                    "Request_ResourceNotFound",
                    f"No password credential found with keyId '{key_id}'.",
                    now,
                )
            state.write_app(replace(app, passwords=remaining), replica())
        return Response(status=204)

    def key_target(
        object_id: str, caller: Caller, now: float
    ) -> tuple[Application, Application] | Response:
        """(replica view, latest) of an app the caller may add keys to: itself or one it manages."""
        view = visible_app(object_id, caller, now)
        if isinstance(view, Response):
            return view
        if view.app_id != caller.app_id and not caller.can_manage(view):
            return forbidden(now)
        latest = state.apps.latest(object_id)
        if latest is None:
            return not_found(object_id, now)
        return view, latest

    def proven_key_target(
        object_id: str, caller: Caller, proof: str, now: float
    ) -> Application | Response:
        """The latest app record once the caller may change its keys and the proof holds."""
        target = key_target(object_id, caller, now)
        if isinstance(target, Response):
            return target
        view, latest = target
        try:
            check_proof(
                proof,
                object_id=view.object_id,
                keys=view.keys,
                key_now=now,
                nows=state.jwt_nows(now),
            )
        except JwtRejected as exc:
            return proof_error(exc, now)
        return latest

    def proof_error(exc: JwtRejected, now: float) -> Response:
        if exc.code == 700027:
            return graph_error(
                401,
                "Authentication_MissingOrMalformed",
                "Invalid proof: the proof was not signed by a key credential currently "
                f"registered on the application. {exc.message}",
                now,
            )
        message = (
            exc.message
            if exc.message.startswith("Invalid proof")
            else (f"Invalid proof: {exc.message}")
        )
        return bad_request(message, now)

    @bp.post("/applications/<object_id>/addKey")
    def add_key(object_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        try:
            data = _body()
            cred = data.get("keyCredential")
            if not isinstance(cred, dict):
                raise _Invalid("Property 'keyCredential' is required.")
            if data.get("passwordCredential") is not None:
                raise _Invalid("Adding a passwordCredential through addKey is not supported.")
            proof = _str_field(data, "proof", required=True) or ""
            if cred.get("key") is None:
                raise _Invalid("Property 'key' of 'keyCredential' is required.")
            new_key = _key_from_graph({**cred, "keyId": None}, {}, now)
        except _Invalid as exc:
            return bad_request(exc.message, now)
        with state.lock:
            target = proven_key_target(object_id, caller, proof, now)
            if isinstance(target, Response):
                return target
            latest = target
            if any(k.sha1 == new_key.sha1 for k in latest.keys):
                return bad_request(
                    "Key credential with the same certificate thumbprint already exists.", now
                )
            state.write_app(replace(latest, keys=(*latest.keys, new_key)), replica())
        body = {
            "@odata.context": f"{base()}/$metadata#microsoft.graph.keyCredential",
            **new_key.graph(),
        }
        return json_response(body)

    @bp.post("/applications/<object_id>/removeKey")
    def remove_key(object_id: str) -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        try:
            data = _body()
            key_id = _str_field(data, "keyId", required=True)
            proof = _str_field(data, "proof", required=True) or ""
        except _Invalid as exc:
            return bad_request(exc.message, now)
        with state.lock:
            target = proven_key_target(object_id, caller, proof, now)
            if isinstance(target, Response):
                return target
            latest = target
            remaining = tuple(k for k in latest.keys if k.key_id != key_id)
            if len(remaining) == len(latest.keys):
                return graph_error(
                    404,
                    "Request_ResourceNotFound",
                    f"No key credential found with keyId '{key_id}'.",
                    now,
                )
            state.write_app(replace(latest, keys=remaining), replica())
        return Response(status=204)

    # ----- service principals ------------------------------------------------

    @bp.post("/servicePrincipals")
    def create_service_principal() -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        try:
            app_id = _str_field(_body(), "appId", required=True) or ""
        except _Invalid as exc:
            return bad_request(exc.message, now)
        if not caller.can_create:
            return forbidden(now)
        with state.lock:
            serving = replica()
            app = state.app_by_app_id_view(app_id, serving, now)
            if app is None or (
                app.tenant_id != caller.tenant_id and app.sign_in_audience != MULTI_TENANT
            ):
                return bad_request(
                    f"The appId '{app_id}' of the service principal does not reference a valid "
                    "application object.",
                    now,
                )
            if app.tenant_id == caller.tenant_id and not caller.can_manage(app):
                return forbidden(now)
            if state.service_principal(caller.tenant_id, app_id) is not None:
                return graph_error(
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "The service principal cannot be created, updated, or restored because the "
                    "service principal name is already in use.",
                    now,
                )
            sp = ServicePrincipal(
                str(uuid.uuid4()), app_id, caller.tenant_id, app.display_name, app.tenant_id, now
            )
            state.write_sp(sp, serving)
        body = {"@odata.context": f"{base()}/$metadata#servicePrincipals/$entity", **sp.graph()}
        return json_response(body, 201)

    @bp.get("/servicePrincipals")
    def list_service_principals() -> Response:
        now = state.now()
        caller = authenticate(now)
        if isinstance(caller, Response):
            return caller
        if not caller.roles:
            return forbidden(now)
        raw_filter = request.args.get("$filter")
        wanted: str | None = None
        if raw_filter:
            match = _FILTER.match(raw_filter)
            if not match or match.group(1).lower() != "appid":
                return graph_error(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified for property of "
                    "resource 'ServicePrincipal'.",
                    now,
                )
            wanted = match.group(2).replace("''", "'")
        with state.lock:
            serving = replica()
            app_ids = [wanted] if wanted else list(state.sp_by_tenant.get(caller.tenant_id, {}))
            found = [
                sp.graph()
                for aid in app_ids
                if (sp := state.sp_view(caller.tenant_id, aid, serving, now)) is not None
            ]
        return json_response(
            {"@odata.context": f"{base()}/$metadata#servicePrincipals", "value": found}
        )

    return bp


def _redirect_uris(data: dict[str, Any]) -> tuple[str, ...]:
    web = data.get("web")
    if web is None:
        return ()
    if not isinstance(web, dict):
        raise _Invalid("Invalid value specified for property 'web' of resource 'Application'.")
    uris = web.get("redirectUris") or []
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise _Invalid(
            "Invalid value specified for property 'redirectUris' of resource 'WebApplication'."
        )
    return tuple(uris)


def _patch_changes(app: Application, data: dict[str, Any], now: float) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    extra = dict(app.extra)
    for name, value in data.items():
        if name == "displayName":
            if not isinstance(value, str) or not value:
                raise _Invalid("Invalid value specified for property 'displayName'.")
            changes["display_name"] = value
        elif name == "signInAudience":
            if value not in (SINGLE_TENANT, MULTI_TENANT):
                raise _Invalid(
                    "Invalid value specified for property 'signInAudience' of resource "
                    "'Application'."
                )
            changes["sign_in_audience"] = value
        elif name == "web":
            changes["redirect_uris"] = _redirect_uris(data)
        elif name == "keyCredentials":
            if not isinstance(value, list) or not all(isinstance(k, dict) for k in value):
                raise _Invalid("Invalid value specified for property 'keyCredentials'.")
            existing = {k.key_id: k for k in app.keys}
            changes["keys"] = tuple(_key_from_graph(k, existing, now) for k in value)
        elif name == "passwordCredentials":
            raise _Invalid(
                "Property 'passwordCredentials' cannot be updated; use addPassword and "
                "removePassword."
            )
        elif name in {"id", "appId", "createdDateTime"}:
            raise _Invalid(f"Property '{name}' is read-only and cannot be set.")
        elif name in _PATCHABLE_EXTRA:
            extra[name] = value
        else:
            raise _Invalid(
                f"Property '{name}' does not exist on type 'microsoft.graph.application'."
            )
    if extra != app.extra:
        changes["extra"] = extra
    return changes
