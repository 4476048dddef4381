"""Error bodies exactly as Entra ID, Microsoft Graph and ARM send them.

Graph's routes raise their errors instead of returning them::

    GraphError          status, code, message, headers
    ├── BadRequest      400 Request_BadRequest
    ├── NotFound        404 Request_ResourceNotFound
    └── Forbidden       403 Authorization_RequestDenied

and ``graph.routes.GraphRoutes.serve`` answers one with :func:`graph_error`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, request

from sidecar.emulator.clock import iso


@dataclass
class RequestInfo:
    """What the call log records about one request; filled in as the request is served."""

    kind: str
    replica: int | None = None
    client: str | None = None
    tenant: str | None = None
    error_code: str | None = None
    throttled: bool = False


def info() -> RequestInfo:
    current: RequestInfo = g.info
    return current


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body), status=status, mimetype="application/json", headers=headers
    )
    return response


def _aad_stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def aad_error(status: int, error: str, code: int, message: str, now: float) -> Response:
    """An ``/oauth2/v2.0/token`` error with every field Entra sends.

    ``error``, ``error_description``, ``error_codes``, ``timestamp``,
    ``trace_id``, ``correlation_id`` are the token endpoint's documented error
    response (learn.microsoft.com/azure/active-directory/develop/
    v1-protocols-oauth-code#error-response-1, which Azure Identity's
    ``ErrorResponse`` notes applies to v2); ``error_uri`` and the trace,
    correlation and timestamp text inside ``error_description`` are as Entra
    answers in practice.
    """
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = _aad_stamp(now)
    info().error_code = f"AADSTS{code}"
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return json_response(body, status)


def graph_error(
    status: int, code: str, message: str, now: float, headers: dict[str, str] | None = None
) -> Response:
    """Graph's error object: ``code``, ``message``, ``innerError`` with ``date``,
    ``request-id`` and the caller's ``client-request-id`` (learn.microsoft.com/graph/errors)."""
    info().error_code = code
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": iso(now),
                "request-id": str(uuid.uuid4()),
                "client-request-id": request.headers.get("client-request-id", str(uuid.uuid4())),
            },
        }
    }
    return json_response(body, status, headers)


class GraphError(Exception):
    """A Graph error answer, raised by a route and turned into :func:`graph_error` once.

    ``headers`` ride along on the answer (``WWW-Authenticate`` on a 401,
    ``Retry-After`` on a 429).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def response(self, now: float) -> Response:
        return graph_error(self.status, self.code, self.message, now, self.headers)


class BadRequest(GraphError):
    """400 ``Request_BadRequest``: a payload or query Graph refuses."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "Request_BadRequest", message)


class NotFound(GraphError):
    """404 ``Request_ResourceNotFound`` for a resource id, in Graph's words."""

    def __init__(self, resource: str) -> None:
        super().__init__(
            404,
            "Request_ResourceNotFound",
            f"Resource '{resource}' does not exist or one of its queried reference-property "
            "objects are not present.",
        )


class Forbidden(GraphError):
    """403 ``Authorization_RequestDenied``: the caller's roles do not allow it."""

    def __init__(self) -> None:
        super().__init__(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )


def arm_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    info().error_code = code
    return json_response({"error": {"code": code, "message": message}}, status, headers)
