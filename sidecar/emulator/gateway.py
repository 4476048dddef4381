"""Answers from the gateways in front of Microsoft Graph, not from Graph itself.

A gateway's error is not a Graph error: it has no JSON error object, may
carry no ``Retry-After``, and closes the connection. Microsoft's guidance for
Graph says to retry 503 and 504 ("Service Unavailable", "Gateway Timeout")
after a delay and notes that a timed-out request may still have been
processed, which is why a non-idempotent write must be looked for before it
is repeated ("Microsoft Graph error responses and resource types",
learn.microsoft.com/graph/errors; "Best practices for working with Microsoft
Graph: handling expected errors", learn.microsoft.com/graph/best-practices-concept).

A *committed* gateway fault runs the request first (the directory commits the
write) and then throws the answer away, answering 504 as a gateway that gave
up waiting would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sidecar.emulator.faults import Fault

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_REASONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}


def gateway_body(status: int) -> bytes:
    reason = _REASONS.get(status, "Error")
    return (
        f"<html><head><title>{status} {reason}</title></head><body>"
        f"<center><h1>{status} {reason}</h1></center><hr><center>Microsoft-Azure-Application-"
        f"Gateway/v2</center></body></html>\r\n"
    ).encode()


def answer(
    app: WSGIApplication,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    fault: Fault,
    record: Callable[[int], None],
) -> Iterable[bytes]:
    """Answer as the gateway: HTML, ``Connection: close``, no ``Retry-After``.

    With ``fault.commit`` the request reaches the application first and its
    answer is discarded; ``record`` logs the status the client actually got.
    """
    if fault.commit:
        result = app(environ, lambda status, headers, exc_info=None: lambda data: None)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    body = gateway_body(fault.status)
    record(fault.status)
    start_response(
        f"{fault.status} {_REASONS.get(fault.status, 'Error')}",
        [
            ("Content-Type", "text/html"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return [body]
