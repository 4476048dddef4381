"""The resolver's authorizer asks Vault on every call: no grant outlives a revocation.

(Issue 16, point 4: grants used to be cached per token for 2 s, so a revoked
token kept access for up to 2 s; point 11: a token Vault refused is remembered,
under a hash, so a flood of bogus tokens costs one Vault call each.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from sidecar.errors import VaultForbidden
from sidecar.model import Phase
from sidecar.resolver.auth import Access, VaultAuthorizer
from sidecar.resolver.client import ResolverClient
from tests.runner.conftest import RunnerWorld, seed


def test_denials_are_not_cached_and_revocation_applies_at_once(world: RunnerWorld) -> None:
    root = world.root
    root.sys.create_or_update_policy(
        "t-cache", 'path "azure/creds/X/plan" { capabilities = ["deny"] }'
    )
    token = root.auth.token.create(policies=["t-cache"], ttl="10m")["auth"]["client_token"]
    authorizer = VaultAuthorizer(world.addr, mount="azure")
    assert authorizer.check(token, "X", Phase.PLAN) is Access.DENIED
    # The policy changes; the next call sees it at once, since denials are not cached.
    root.sys.create_or_update_policy(
        "t-cache", 'path "azure/creds/X/plan" { capabilities = ["read"] }'
    )
    assert authorizer.check(token, "X", Phase.PLAN) is Access.GRANTED
    assert authorizer.check(token, "X", Phase.APPLY) is Access.DENIED
    # Granted a moment ago, revoked now: refused on the very next call.
    root.auth.token.revoke(token)
    assert authorizer.check(token, "X", Phase.PLAN) is Access.UNAUTHENTICATED
    remembered = authorizer._logins.keys() + authorizer._refused.keys()
    assert remembered and all(token not in key for key in remembered)


def test_an_expired_token_gets_nothing(world: RunnerWorld) -> None:
    root = world.root
    root.sys.create_or_update_policy(
        "t-expiry", 'path "azure/creds/X/plan" { capabilities = ["read"] }'
    )
    token = root.auth.token.create(policies=["t-expiry"], ttl="2s")["auth"]["client_token"]
    authorizer = VaultAuthorizer(world.addr, mount="azure")
    assert authorizer.check(token, "X", Phase.PLAN) is Access.GRANTED
    time.sleep(3.5)
    assert authorizer.check(token, "X", Phase.PLAN) is Access.UNAUTHENTICATED


def test_a_revoked_runner_token_gets_nothing_from_the_resolver(world: RunnerWorld) -> None:
    seed(world.store, datetime.now(UTC))
    handle = world.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}", timeout=10)
    try:
        run = world.login("A", "plan")
        assert client.resolve(str(run.token), "A", Phase.PLAN).integration == "I1"
        world.root.auth.token.revoke(str(run.token))
        with pytest.raises(VaultForbidden):
            client.resolve(str(run.token), "A", Phase.PLAN)
    finally:
        client.close()
        handle.stop(grace=0)


def test_a_refused_token_is_answered_without_asking_vault_again(world: RunnerWorld) -> None:
    authorizer = VaultAuthorizer(world.addr, mount="azure")
    assert authorizer.check("s.bogus-token", "A", Phase.PLAN) is Access.UNAUTHENTICATED
    # Vault is gone now; a remembered refusal needs no call.
    authorizer.addr = "http://127.0.0.1:9"
    started = time.monotonic()
    for _ in range(500):
        assert authorizer.check("s.bogus-token", "A", Phase.PLAN) is Access.UNAUTHENTICATED
    assert time.monotonic() - started < 0.5
