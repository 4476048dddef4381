"""Two runs whose JWTs share a `sub` cannot read each other's paths (issue 16, point 2).

The runner policy takes stack and phase from the entity alias, which the latest
login with the same user claim rewrites. A role keyed on a CI `sub` shared by
two stacks (or by plan and apply) would let the earlier token through to the
later run's path. The plugin and the resolver check each token's own login
metadata, so it cannot; the shipped role keys aliases on a claim unique per
stack and phase, so the earlier run keeps its own path too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import hvac
import pytest

from sidecar.errors import VaultError, VaultForbidden
from sidecar.model import Phase
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.server import ResolverHandle
from sidecar.runner.source import read_plugin
from sidecar.vault import connect
from tests.runner.conftest import ROOT, RunnerWorld, seed

SHARED_SUB_ROLE = "t-shared-sub"


@pytest.fixture
def seeded(world: RunnerWorld) -> RunnerWorld:
    seed(world.store, datetime.now(UTC))
    role = json.loads((ROOT / "vault-config" / "runner-role.json").read_text())
    # A role as the README once allowed: aliases keyed on the CI platform's `sub`.
    role |= {"user_claim": "sub", "bound_claims": {"phase": ["plan", "apply"]}}
    world.root.adapter.post(f"/v1/auth/jwt/role/{SHARED_SUB_ROLE}", json=role)
    return world


@pytest.fixture
def client(seeded: RunnerWorld) -> Iterator[ResolverClient]:
    handle: ResolverHandle = seeded.resolver()
    c = ResolverClient(f"127.0.0.1:{handle.port}", timeout=10)
    yield c
    c.close()
    handle.stop(grace=0)


def _login(world: RunnerWorld, stack: str, phase: str, sub: str) -> hvac.Client:
    assertion = world.jwt(stack, phase, sub=sub)
    return connect(world.addr, jwt=("jwt", SHARED_SUB_ROLE, assertion))


def _refused_everywhere(
    token: hvac.Client, client: ResolverClient, stack: str, phase: Phase
) -> None:
    with pytest.raises(VaultForbidden):
        read_plugin(token, "azure", stack, phase)
    with pytest.raises(VaultForbidden, match="may not read"):
        client.resolve(str(token.token), stack, phase)


def test_a_token_cannot_read_the_stack_of_a_later_login_sharing_its_sub(
    seeded: RunnerWorld, client: ResolverClient
) -> None:
    sub = f"repo:org/{seeded.prefix}:ref:refs/heads/main"
    first = _login(seeded, "A", "plan", sub)
    assert read_plugin(first, "azure", "A", Phase.PLAN).integration == "I1"
    second = _login(seeded, "B", "plan", sub)  # rewrites the shared alias: stack B
    # The policy now admits B/plan for both tokens; the first token's login says A.
    assert read_plugin(second, "azure", "B", Phase.PLAN).integration == "I3"
    assert client.resolve(str(second.token), "B", Phase.PLAN).integration == "I3"
    _refused_everywhere(first, client, "B", Phase.PLAN)


def test_a_plan_token_cannot_read_apply_after_an_apply_login_sharing_its_sub(
    seeded: RunnerWorld, client: ResolverClient
) -> None:
    sub = f"repo:org/{seeded.prefix}:ref:refs/heads/main"
    plan = _login(seeded, "A", "plan", sub)
    apply = _login(seeded, "A", "apply", sub)
    assert read_plugin(apply, "azure", "A", Phase.APPLY).integration == "I2"
    _refused_everywhere(plan, client, "A", Phase.APPLY)


def test_the_shipped_role_keeps_each_run_on_its_own_path(
    seeded: RunnerWorld, client: ResolverClient
) -> None:
    sub = f"repo:org/{seeded.prefix}:ref:refs/heads/main"
    plan = connect(seeded.addr, jwt=("jwt", "azsidecar-runner", seeded.jwt("A", "plan", sub=sub)))
    other = connect(seeded.addr, jwt=("jwt", "azsidecar-runner", seeded.jwt("B", "plan", sub=sub)))
    apply = connect(seeded.addr, jwt=("jwt", "azsidecar-runner", seeded.jwt("A", "apply", sub=sub)))
    # Each keeps its own path after the others logged in with the same `sub`.
    assert read_plugin(plan, "azure", "A", Phase.PLAN).integration == "I1"
    assert client.resolve(str(plan.token), "A", Phase.PLAN).integration == "I1"
    assert read_plugin(other, "azure", "B", Phase.PLAN).integration == "I3"
    assert read_plugin(apply, "azure", "A", Phase.APPLY).integration == "I2"
    for stack, phase in (("B", Phase.PLAN), ("A", Phase.APPLY)):
        _refused_everywhere(plan, client, stack, phase)


def test_the_shipped_role_refuses_a_jwt_without_its_user_claim(seeded: RunnerWorld) -> None:
    assertion = seeded.jwt("A", "plan", stack_phase=None)
    with pytest.raises(VaultError):
        connect(seeded.addr, jwt=("jwt", "azsidecar-runner", assertion))
