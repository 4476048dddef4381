"""Microsoft Graph v1.0 under ``/graph``: applications, their credentials, service principals.

Reads see the serving replica's view; writes are built on the authoritative
(latest) object and reach the other replicas after the lag. So a just-created
application can be missing (404) and a just-added key unknown to a replica.

One module per resource (``applications``, ``passwords``, ``keys``,
``federated``, ``service_principals``), each registering its routes. Every route runs through
:meth:`routes.GraphRoutes.serve`, which authenticates the caller (``caller``)
and turns a raised :class:`~sidecar.emulator.responses.GraphError` into Graph's
error JSON; views never build an error answer themselves.
"""

from __future__ import annotations

from flask import Blueprint

from sidecar.emulator.graph import (
    applications,
    federated,
    keys,
    passwords,
    service_principals,
)
from sidecar.emulator.graph.routes import GRAPH, GraphRoutes
from sidecar.emulator.state import EmulatorState

__all__ = ["GRAPH", "create_graph_blueprint"]


def create_graph_blueprint(state: EmulatorState) -> Blueprint:
    bp = Blueprint("graph", __name__, url_prefix=GRAPH)
    routes = GraphRoutes(bp, state)
    for resource in (applications, passwords, keys, federated, service_principals):
        resource.register(routes)
    return bp
