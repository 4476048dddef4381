"""The plugin's errors tell runners what to do, not where the data lives (issue 16, point 11).

A Vault failure inside the plugin (here: its token may look up callers but not
read KV) used to reach the runner with the KV mount, the prefix and, for an
unreachable Vault, the internal address. Runners now get a fixed message; the
details go to the server's log.
"""

from __future__ import annotations

from datetime import UTC, datetime

import hvac
import hvac.exceptions
import pytest

from tests.runner.conftest import RunnerWorld, seed


def test_a_vault_failure_inside_the_plugin_shows_no_path_or_address(world: RunnerWorld) -> None:
    seed(world.store, datetime.now(UTC))
    world.root.sys.create_or_update_policy(
        "t-lookup-only", 'path "auth/token/lookup-accessor" { capabilities = ["update"] }'
    )
    created = world.root.auth.token.create(policies=["t-lookup-only"], ttl="10m")
    world.root.write_data(
        "azure/config",
        data={"vault_addr": world.addr, "token": created["auth"]["client_token"]},
    )
    run: hvac.Client = world.login("A", "plan")
    with pytest.raises(hvac.exceptions.InvalidRequest) as info:
        run.read("azure/creds/A/plan")
    assert info.value.errors is not None
    message = "; ".join(str(e) for e in info.value.errors)
    assert "cannot read its data in Vault" in message
    for detail in (world.prefix, "secret/", "stacks/A", world.addr, "127.0.0.1"):
        assert detail not in message, message
