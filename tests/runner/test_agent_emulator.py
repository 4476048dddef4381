"""End to end for a runner: a real integration, the plugin, `bao agent`, then Azure.

The credential the agent renders signs in at the emulator's token endpoint and
reads the subscription through ARM, as terraform would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.sensitive import Sensitive
from tests.runner.conftest import RunnerWorld, attached_integration, run_agent
from tests.world import run_terraform


@pytest.fixture
def live_emulator() -> Iterator[EmulatorServer]:
    """Real time and no replication lag: this test is about the runner's path."""
    with EmulatorServer(EmulatorConfig(lag_profile="none", seed=5)) as server:
        yield server


class Rendered:
    def __init__(self, values: dict[str, str]) -> None:
        self.client_id = values["ARM_CLIENT_ID"]
        self.client_secret = Sensitive(values["ARM_CLIENT_SECRET"])
        self.tenant_id = values["ARM_TENANT_ID"]


def test_agent_rendered_credential_signs_in_to_azure(
    world: RunnerWorld, live_emulator: EmulatorServer, tmp_path: Path
) -> None:
    product, record, tenant = attached_integration(world, live_emulator)
    # Without lag the secret replicates at once; tell the plugin so, then let it age.
    world.root.write_data("azure/config", data={"propagation_delay": "2s"})
    time.sleep(2.5)

    rendered, result = run_agent(world, tmp_path, "A", "apply")
    assert rendered.exists(), result.stderr[-2000:]
    values = dict(line.split("=", 1) for line in rendered.read_text().splitlines() if line)
    assert values["ARM_CLIENT_ID"] == record.client_id
    assert values["ARM_SUBSCRIPTION_ID"] == tenant.subscription_id
    ok, why = run_terraform(product, live_emulator.session(), Rendered(values), tenant)
    assert ok, why
