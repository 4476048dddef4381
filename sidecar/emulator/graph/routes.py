"""How a Graph route runs: authenticate, serve, and answer a raised error in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Response, request

from sidecar.emulator.graph.caller import Caller, authenticate
from sidecar.emulator.records import Application
from sidecar.emulator.responses import Forbidden, GraphError, NotFound, info
from sidecar.emulator.state import EmulatorState

GRAPH = "/graph/v1.0"


@dataclass(frozen=True)
class GraphRequest:
    """One authenticated Graph request: the state, the instant it is served at, its caller."""

    state: EmulatorState
    now: float
    caller: Caller

    def base(self) -> str:
        return request.host_url.rstrip("/") + GRAPH

    def replica(self) -> int:
        current = info().replica
        return current if current is not None else self.state.pick_replica()

    def visible_app(self, object_id: str) -> Application:
        """The serving replica's view of an application in the caller's tenant (call under lock)."""
        app = self.state.app_view(object_id, self.replica(), self.now)
        if app is None or app.tenant_id != self.caller.tenant_id:
            raise NotFound(object_id)
        return app

    def managed_app(self, object_id: str) -> Application:
        """The latest record of a visible application the caller may change (call under lock)."""
        found = self.visible_app(object_id)
        if not self.caller.can_manage(found):
            raise Forbidden
        latest = self.state.apps.latest(object_id)
        if latest is None:
            raise NotFound(object_id)
        return latest


#: A route's body: the request, then the URL's parameters by name.
View = Callable[..., Response]


class GraphRoutes:
    """Registers views on the Graph blueprint, each wrapped by :meth:`serve`."""

    def __init__(self, blueprint: Blueprint, state: EmulatorState) -> None:
        self.blueprint = blueprint
        self.state = state

    def add(self, method: str, view: View, *rules: str) -> None:
        def endpoint(**params: str) -> Response:
            return self.serve(view, params)

        for rule in rules:
            self.blueprint.add_url_rule(rule, view.__name__, endpoint, methods=[method])

    def serve(self, view: View, params: dict[str, str]) -> Response:
        """The one error handler: a :class:`GraphError` raised anywhere becomes Graph's JSON."""
        now = self.state.now()
        try:
            caller = authenticate(self.state, now)
            return view(GraphRequest(self.state, now, caller), **params)
        except GraphError as exc:
            return exc.response(now)
