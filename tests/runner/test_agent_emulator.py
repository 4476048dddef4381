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
from sidecar.integrations import Integrations
from sidecar.sensitive import Sensitive
from sidecar.store import StackRecord
from tests.runner.conftest import RunnerWorld, run_agent
from tests.world import make_world, run_terraform


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
    root_token = world.bao.pb.server.root_token
    product = make_world(live_emulator, world.store, world.addr, root_token, start=None)
    rt = product.runtime
    service = Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        redirect_uri=rt.config.azure.consent_redirect_uri,
    )
    tenant = product.add_tenant()
    record = service.create("web", tenant.tenant_id, tenant.subscription_id)
    product.consent_and_grant(record.client_id, tenant)
    world.store.save_stack(StackRecord(name="A", read="web", write="web"), cas=0)
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
