"""Who is calling Graph: the bearer token checked, its roles, and the throttle's verdict."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from sidecar.emulator.records import Application
from sidecar.emulator.responses import GraphError, info
from sidecar.emulator.state import EmulatorState
from sidecar.emulator.tokens import GRAPH_AUDIENCES, InvalidToken, verify_access_token

OWNED_BY = "Application.ReadWrite.OwnedBy"
WRITE_ALL = "Application.ReadWrite.All"
READ_ALL = frozenset(
    {"Application.Read.All", WRITE_ALL, "Directory.Read.All", "Directory.ReadWrite.All"}
)
_AUTH_HEADERS = {
    "WWW-Authenticate": 'Bearer realm="", authorization_uri='
    '"https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
}


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


def authenticate(state: EmulatorState, now: float) -> Caller:
    """The caller of this request, once its token holds and the throttle lets it through."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not token.strip() or scheme.lower() != "bearer":
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token is empty.", dict(_AUTH_HEADERS)
        )
    try:
        claims = verify_access_token(state.signing, token.strip(), GRAPH_AUDIENCES, now)
    except InvalidToken as exc:
        raise GraphError(401, "InvalidAuthenticationToken", str(exc), dict(_AUTH_HEADERS)) from exc
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
        raise GraphError(
            429,
            "TooManyRequests",
            "Too many requests. Retry after the number of seconds in the Retry-After header.",
            refused.headers(),
        )
    return caller
