"""The resolver's authorizer: grants cached briefly under a token hash, denials never."""

from __future__ import annotations

import time

from sidecar.model import Phase
from sidecar.resolver.auth import Access, VaultAuthorizer
from tests.runner.conftest import RunnerWorld


def test_denials_are_not_cached_and_grants_expire(world: RunnerWorld) -> None:
    root = world.root
    root.sys.create_or_update_policy(
        "t-cache", 'path "azure/creds/X/plan" { capabilities = ["deny"] }'
    )
    token = root.auth.token.create(policies=["t-cache"], ttl="10m")["auth"]["client_token"]
    authorizer = VaultAuthorizer(world.addr, grant_ttl=0.5)
    assert authorizer.check(token, "X", Phase.PLAN) is Access.DENIED
    # The policy changes; the next call sees it at once, since denials are not cached.
    root.sys.create_or_update_policy(
        "t-cache", 'path "azure/creds/X/plan" { capabilities = ["read"] }'
    )
    assert authorizer.check(token, "X", Phase.PLAN) is Access.GRANTED
    assert authorizer.check(token, "X", Phase.APPLY) is Access.DENIED
    # Revoked: still granted inside the window (the documented trade-off), not after it.
    root.auth.token.revoke(token)
    assert authorizer.check(token, "X", Phase.PLAN) is Access.GRANTED
    time.sleep(0.6)
    assert authorizer.check(token, "X", Phase.PLAN) is Access.UNAUTHENTICATED
    assert all(token not in str(key) for key in authorizer._granted)
