"""The default mount cannot be mistaken for HashiCorp's Azure engine (issue 16, point 9).

A resolver-only Vault has no plugin mounted, so the path the resolver checks
(``<mount>/creds/<stack>/<phase>``) is served by nothing, and any policy that
grants it decides. HashiCorp's own Azure secrets engine is conventionally
mounted at ``azure/``, with policies such as ``azure/creds/<role>``; with
``azure`` as the default, those policies granted every stack's credential
through the resolver. The default is now ``azsidecar``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from sidecar.clock import SystemClock
from sidecar.config import Config, DaemonConfig, VaultConfig
from sidecar.errors import VaultForbidden
from sidecar.model import DEFAULT_CREDS_MOUNT, Phase
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.server import start_resolver
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV, connect
from tests.runner.conftest import RunnerWorld, seed


@pytest.fixture
def default_resolver(world: RunnerWorld) -> Iterator[ResolverClient]:
    """A resolver as `azsidecar resolver` starts it: every setting at its default."""
    seed(world.store, datetime.now(UTC))
    config = Config(
        vault=VaultConfig(addr=world.addr, prefix=world.prefix),
        timing=TimingPolicy(),
        daemon=DaemonConfig(),
    )
    kv = VaultKV(connect(world.addr, token=world.plugin_token), "secret", world.prefix)
    handle = start_resolver(config, kv, SystemClock(), addr="127.0.0.1:0")
    client = ResolverClient(f"127.0.0.1:{handle.port}", timeout=10)
    yield client
    client.close()
    handle.stop(grace=0)


def _token(world: RunnerWorld, name: str, rules: str) -> str:
    world.root.sys.create_or_update_policy(name, rules)
    created = world.root.auth.token.create(policies=[name], ttl="10m")
    return str(created["auth"]["client_token"])


def test_a_policy_for_hashicorps_azure_engine_grants_nothing_through_the_resolver(
    world: RunnerWorld, default_resolver: ResolverClient
) -> None:
    assert DEFAULT_CREDS_MOUNT == "azsidecar"
    assert DaemonConfig().resolver_mount == DEFAULT_CREDS_MOUNT
    # What a team using HashiCorp's engine at azure/ would have: every role's creds.
    hashicorp = _token(
        world, "t-hashicorp-azure", 'path "azure/creds/*" { capabilities = ["read"] }'
    )
    for stack, phase in (("A", Phase.PLAN), ("A", Phase.APPLY), ("B", Phase.PLAN)):
        with pytest.raises(VaultForbidden, match="may not read azsidecar/creds"):
            default_resolver.resolve(hashicorp, stack, phase)
    ours = _token(
        world, "t-azsidecar-a", 'path "azsidecar/creds/A/plan" { capabilities = ["read"] }'
    )
    assert default_resolver.resolve(ours, "A", Phase.PLAN).integration == "I1"
