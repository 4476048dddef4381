"""The Flask application: routing by prefix, replica choice, faults, call log.

Fault decisions happen in a WSGI middleware (``FaultMiddleware``) because a
dropped connection must happen below Flask: it shuts the client socket down
and raises ``ConnectionError``, which werkzeug's server treats as a dropped
connection and answers nothing. Status faults are answered inside Flask so
their bodies have the right shape for the API the request was meant for.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from sidecar.emulator import gateway
from sidecar.emulator.admin_api import create_admin_blueprint
from sidecar.emulator.arm_api import create_arm_blueprint
from sidecar.emulator.faults import Fault
from sidecar.emulator.graph import create_graph_blueprint
from sidecar.emulator.login_api import create_login_blueprint
from sidecar.emulator.responses import (
    RequestInfo,
    aad_error,
    arm_error,
    graph_error,
    json_response,
)
from sidecar.emulator.state import EmulatorState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

FAULT_KEY = "azsidecar.emulator.fault"
#: Set in a request's environ when its connection must close after the answer.
CLOSE_KEY = "azsidecar.emulator.close"
CLOSE_SENT_KEY = "azsidecar.emulator.close_sent"

_GRAPH_CODES = {
    429: "TooManyRequests",
    500: "generalException",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_ARM_CODES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def request_kind(path: str) -> str:
    if path.startswith("/_emulator"):
        return "admin"
    if path.startswith("/graph"):
        return "graph"
    if path.startswith("/arm"):
        return "arm"
    if path.endswith("/oauth2/v2.0/token"):
        return "token"
    return "login"


class FaultMiddleware:
    """Chooses each request's fault (if any) and performs dropped connections."""

    def __init__(self, app: WSGIApplication, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        kind = request_kind(path)
        method = str(environ.get("REQUEST_METHOD", ""))
        if kind != "admin":
            with self.state.lock:
                fault = self.state.faults.pick(kind, path, self.state.rng, method)
                if fault is not None and fault.drop:
                    self.state.calls.record(
                        method=str(environ.get("REQUEST_METHOD", "")),
                        path=path,
                        status=0,
                        kind=kind,
                        client=None,
                        tenant=None,
                        replica=None,
                        time=self.state.now(),
                        fault="drop",
                    )
            if fault is not None:
                if fault.drop:
                    self._drop(environ)
                if fault.gateway:
                    environ[CLOSE_KEY] = True
                    return gateway.answer(
                        self.app, environ, start_response, fault, self._recorder(environ, kind)
                    )
                environ[FAULT_KEY] = fault
        return self.app(environ, start_response)

    def _recorder(self, environ: WSGIEnvironment, kind: str) -> Callable[[int], None]:
        def record(status: int) -> None:
            with self.state.lock:
                self.state.calls.record(
                    method=str(environ.get("REQUEST_METHOD", "")),
                    path=str(environ.get("PATH_INFO", "")),
                    status=status,
                    kind=kind,
                    client=None,
                    tenant=None,
                    replica=None,
                    time=self.state.now(),
                    fault="gateway",
                )

        return record

    @staticmethod
    def _drop(environ: WSGIEnvironment) -> None:
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError("emulator fault injection: connection dropped")


def _fault_response(fault: Fault, kind: str, now: float) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if kind == "graph":
        code = _GRAPH_CODES.get(fault.status, "UnknownError")
        return graph_error(fault.status, code, f"Injected fault ({fault.status}).", now, headers)
    if kind == "arm":
        code = _ARM_CODES.get(fault.status, "InternalServerError")
        return arm_error(fault.status, code, f"Injected fault ({fault.status}).", headers)
    response = aad_error(
        fault.status,
        "temporarily_unavailable",
        90033,
        "A transient error has occurred. Please try again.",
        now,
    )
    if headers:
        response.headers.update(headers)
    return response


def create_app(state: EmulatorState, *, allow_remote_admin: bool = False) -> Flask:
    app = Flask("sidecar.emulator")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False

    @app.before_request
    def begin() -> Response | None:
        kind = request_kind(request.path)
        g.info = RequestInfo(kind=kind)
        if kind == "admin":
            return None
        g.info.replica = state.pick_replica(request.environ.get("werkzeug.socket"))
        fault = request.environ.get(FAULT_KEY)
        if isinstance(fault, Fault):
            return _fault_response(fault, kind, state.now())
        return None

    @app.after_request
    def record(response: Response) -> Response:
        current: RequestInfo | None = g.get("info")
        if current is None or current.kind == "admin":
            return response
        fault = request.environ.get(FAULT_KEY)
        with state.lock:
            state.calls.record(
                method=request.method,
                path=request.path,
                status=response.status_code,
                kind=current.kind,
                client=current.client,
                tenant=current.tenant,
                replica=current.replica,
                time=state.now(),
                throttled=current.throttled,
                fault="status" if isinstance(fault, Fault) else None,
                error_code=current.error_code,
            )
        response.headers.setdefault("request-id", str(uuid.uuid4()))
        response.headers["x-ms-ests-server"] = f"emulator replica {current.replica}"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        current: RequestInfo | None = g.get("info")
        if current is None:
            g.info = current = RequestInfo(kind=request_kind(request.path))
        now = state.now()
        if current.kind == "graph":
            if status == 404:
                segment = request.path.rstrip("/").rsplit("/", 1)[-1]
                return graph_error(
                    400, "BadRequest", f"Resource not found for the segment '{segment}'.", now
                )
            if status == 405:
                return graph_error(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                    now,
                )
            return graph_error(status, "Request_BadRequest", exc.description or "Bad request.", now)
        if current.kind == "arm":
            code = "NotFound" if status == 404 else "BadRequest"
            return arm_error(status, code, exc.description or "Bad request.")
        if current.kind in ("token", "login"):
            return aad_error(
                400 if status == 404 else status,
                "invalid_request",
                900561 if status == 405 else 90002,
                "The endpoint only accepts POST, OPTIONS requests. Received a GET request."
                if status == 405
                else f"The request path '{request.path}' is not a known endpoint.",
                now,
            )
        return json_response({"error": exc.description or exc.name}, status)

    app.register_blueprint(create_admin_blueprint(state, allow_remote=allow_remote_admin))
    app.register_blueprint(create_graph_blueprint(state))
    app.register_blueprint(create_arm_blueprint(state))
    app.register_blueprint(create_login_blueprint(state))
    inner: Any = app.wsgi_app
    app.wsgi_app = FaultMiddleware(inner, state)  # type: ignore[method-assign]
    return app
