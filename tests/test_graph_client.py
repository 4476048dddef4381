"""The Graph client's retry loop and sign-in, against the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sidecar.errors import GraphError, GraphThrottled
from sidecar.graph import CertificateCredential, GraphClient
from sidecar.management import generate_key_pair
from tests.world import World


class Counting:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.throttles = 0

    def graph_call(self, operation: str, status: int, seconds: float) -> None:
        self.calls.append((operation, status))

    def graph_throttled(self, operation: str) -> None:
        self.throttles += 1


def client(world: World, observer: Counting | None = None, retries: int = 6) -> GraphClient:
    rt = world.runtime
    graph = rt.graph(observer=observer)
    graph.max_retries = retries
    return graph


def test_5xx_is_retried_with_backoff(world: World) -> None:
    seen = Counting()
    graph = client(world, seen)
    graph.list_applications()  # signed in
    world.emu.state.faults.fail_next(3, status=503, kind="graph")
    started = world.time.now()
    # Only the management application itself, which owns itself.
    assert [a.app_id for a in graph.list_applications()] == [world.mgmt.app_id]
    statuses = [s for op, s in seen.calls if op == "list_applications"]
    assert statuses == [200, 503, 503, 503, 200]
    # Exponential back-off with jitter between half and all of 1, 2, 4 s (base 1 s).
    waited = (world.time.now() - started).total_seconds()
    assert 3.5 <= waited <= 7.5


def test_429_honours_retry_after(world: World) -> None:
    seen = Counting()
    graph = client(world, seen)
    graph.list_applications()
    world.emu.state.faults.fail_next(1, status=429, kind="graph", retry_after=37)
    started = world.time.now()
    graph.list_applications()
    assert seen.throttles == 1
    assert (world.time.now() - started).total_seconds() >= 37


def test_retries_are_bounded(world: World) -> None:
    seen = Counting()
    graph = client(world, seen, retries=2)
    graph.list_applications()
    world.emu.state.faults.fail_next(10, status=500, kind="graph")
    with pytest.raises(GraphError) as info:
        graph.list_applications()
    assert info.value.status == 500
    assert "list_applications" in str(info.value)
    assert [s for op, s in seen.calls if op == "list_applications"][1:] == [500, 500, 500]


def test_persistent_429_raises_throttled(world: World) -> None:
    graph = client(world, retries=1)
    graph.list_applications()
    world.emu.state.faults.fail_next(5, status=429, kind="graph", retry_after=1)
    with pytest.raises(GraphThrottled):
        graph.list_applications()


def test_dropped_connection_is_retried(world: World) -> None:
    seen = Counting()
    graph = client(world, seen)
    graph.list_applications()
    world.emu.state.faults.drop_next(1, kind="graph")
    graph.list_applications()
    assert (("list_applications", 0)) in seen.calls


def test_read_right_after_create_is_retried_past_a_lagging_replica(world: World) -> None:
    # Per-request routing: every read may meet a replica that lacks the new
    # application (with sticky keep-alive routing the creating replica answers).
    world.emu.state.routing.sticky = False
    graph = client(world)
    misses = 0
    for i in range(6):
        app = graph.create_application(f"fresh-{i}", ["https://localhost/cb"])
        assert graph.get_application(app.object_id, just_created=True).app_id == app.app_id
    calls = world.emu.state.calls.query(kind="graph")
    misses = sum(1 for c in calls if c.method == "GET" and c.status == 404)
    assert misses >= 1, "some reads should have met a replica that lacked the app"


def test_expired_token_is_renewed(world: World) -> None:
    graph = client(world)
    graph.list_applications()
    world.time.advance(timedelta(hours=2))
    graph.list_applications()
    tokens = world.emu.state.calls.query(kind="token")
    assert [c.status for c in tokens] == [200, 200]


def test_sign_in_failure_names_the_azure_error(world: World) -> None:
    rt = world.runtime
    stranger = generate_key_pair(
        "stranger", world.time.now() - timedelta(hours=1), timedelta(days=1)
    )
    graph = GraphClient(
        login_url=rt.config.azure.login_url,
        graph_url=rt.config.azure.graph_url,
        tenant_id=world.platform_tenant,
        client_id=world.mgmt.app_id,
        credential=lambda: CertificateCredential(
            cert_pem=stranger.cert_pem, key_pem=stranger.key_pem, thumbprint=stranger.thumbprint
        ),
        clock=world.time,
        ca_bundle=rt.config.azure.ca_bundle,
    )
    with pytest.raises(GraphError) as info:
        graph.list_applications()
    assert info.value.code.startswith("AADSTS")
    assert "could not sign in" in str(info.value)
    assert "PRIVATE" not in str(info.value)
