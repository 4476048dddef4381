"""Not ready and not found reach the runner as structure over both real wires.

The plugin inside a real OpenBao and the resolver over real gRPC each answer
a runner's token; the runner's errors carry the server's own wait count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.answers import NotReadyYet
from sidecar.errors import NotFoundError
from sidecar.model import Phase
from sidecar.resolver.client import ResolverClient
from sidecar.runner.source import read_plugin
from sidecar.store import StackRecord
from tests.runner.conftest import RunnerWorld, integration, secret

WAIT = timedelta(minutes=10)


@pytest.fixture
def fresh(world: RunnerWorld) -> RunnerWorld:
    """Stack N whose only secret was minted just now, with a 10-minute propagation delay."""
    now = datetime.now(UTC)
    world.store.save_integration(integration("IN", now - timedelta(days=1)), cas=0)
    world.store.store_secret("IN", secret("IN", "fresh-secret", now))
    world.store.save_stack(StackRecord(name="N", read="IN", write="IN"), cas=0)
    world.root.write_data(
        "azure/config",
        data={
            "vault_addr": world.addr,
            "token": world.plugin_token,
            "prefix": world.prefix,
            "propagation_delay": "10m",
        },
    )
    return world


@pytest.fixture
def client(fresh: RunnerWorld) -> Iterator[ResolverClient]:
    handle = fresh.resolver(propagation=WAIT)
    c = ResolverClient(f"127.0.0.1:{handle.port}", timeout=10)
    yield c
    c.close()
    handle.stop(grace=0)


def _close_to_the_wait(error: NotReadyYet) -> None:
    assert error.retry_after is not None and error.ready_at is not None
    assert WAIT - timedelta(seconds=60) <= error.retry_after <= WAIT + timedelta(seconds=2)
    assert abs(error.ready_at - (datetime.now(UTC) + error.retry_after)) < timedelta(seconds=60)


def test_not_ready_over_the_plugin_and_the_resolver(
    fresh: RunnerWorld, client: ResolverClient
) -> None:
    token = fresh.login("N", "plan")
    with pytest.raises(NotReadyYet) as via_plugin:
        read_plugin(token, "azure", "N", Phase.PLAN)
    _close_to_the_wait(via_plugin.value)
    with pytest.raises(NotReadyYet) as via_resolver:
        client.resolve(str(token.token), "N", Phase.PLAN)
    _close_to_the_wait(via_resolver.value)
    assert "fresh-secret" not in str(via_plugin.value) + str(via_resolver.value)


def test_not_found_over_the_plugin_and_the_resolver(
    fresh: RunnerWorld, client: ResolverClient
) -> None:
    token = fresh.login("C", "plan")  # the policy admits stack C; no such stack exists
    with pytest.raises(NotFoundError, match="no stack named 'C'"):
        read_plugin(token, "azure", "C", Phase.PLAN)
    with pytest.raises(NotFoundError, match="no stack named 'C'"):
        client.resolve(str(token.token), "C", Phase.PLAN)
