"""Answers from the gateways in front of Microsoft Graph, not from Graph itself.

Microsoft's list of Graph status codes ("Microsoft Graph error responses and
resource types", learn.microsoft.com/graph/errors) has 503 Service Unavailable
("you may repeat the request after a delay, the length of which *may* be
specified in a Retry-After header") and 504 Gateway Timeout (a proxy that did
not get a timely answer from the server behind it). Such an answer comes from
the gateway: no Graph JSON error object, possibly no ``Retry-After``, and the
connection closed. That a 504 may answer a write the directory committed is
what the independent stand-in of issue #14 showed and the design contract
states; Microsoft's page does not say either way, so the product must not
assume the write failed.

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
        f"<center><h1>{status} {reason}</h1></center></body></html>\r\n"
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
