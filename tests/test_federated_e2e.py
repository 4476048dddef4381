"""Federated integrations end to end: the HTTPS emulator, a real OpenBao with Transit,
and the issuer's documents served over HTTPS (:class:`tests.issuer_site.IssuerSite`).

The emulator's clock starts at the real time, so Transit's ``creation_time`` of
the issuer's key and the emulated time agree; the issuer signs with the
emulator's time, as the daemon does.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest

from sidecar.config import IssuerConfig
from sidecar.daemon import Daemon
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.errors import GraphError
from sidecar.graph import GraphClient, probe_sign_in_federated
from sidecar.integrations import Integrations
from sidecar.issuer.signing import Issuer
from sidecar.model import (
    CredentialKind,
    FederatedVersion,
    IntegrationRecord,
    federated_credential_name,
    intent_of_federated,
)
from sidecar.probes import rule
from sidecar.probing import federated_sign_in
from sidecar.runtime import federated_trust
from sidecar.sensitive import Sensitive
from sidecar.store import Store
from sidecar.vault import VaultKV
from tests.issuer_site import IssuerSite
from tests.processes import azsidecar, azsidecar_env, run, write_config
from tests.world import UserTenant, World, make_world

FED = CredentialKind.FEDERATED
PUBLISH_AHEAD = timedelta(minutes=10)


@dataclass
class Federation:
    world: World
    site: IssuerSite
    issuer: Issuer
    mount: str

    def service(self) -> Integrations:
        rt = self.world.runtime
        return Integrations(
            rt.store,
            rt.graph(),
            rt.clock,
            rt.config.timing,
            redirect_uri=rt.config.azure.consent_redirect_uri,
            trust=federated_trust(rt.config),
        )

    def create(self, name: str) -> tuple[IntegrationRecord, UserTenant]:
        tenant = self.world.add_tenant()
        record = self.service().create(name, tenant.tenant_id, tenant.subscription_id, FED)
        self.world.time.advance(timedelta(minutes=11))
        self.world.consent_and_grant(record.client_id, tenant)
        self.world.time.advance(timedelta(minutes=11))
        return record, tenant

    def stored(self, name: str) -> list[FederatedVersion]:
        found = []
        for c in self.world.store.credentials(name):
            version = self.world.store.credential_version(name, c.version)
            assert isinstance(version, FederatedVersion)
            found.append(version)
        return found

    def on_app(self, record: IntegrationRecord) -> list[str]:
        """Graph ids of our federated credentials on the application, read on a fresh replica."""
        self.world.time.advance(timedelta(minutes=11))
        graph = self.world.runtime.graph()
        listed = graph.list_federated_credentials(record.app_object_id, fresh=True)
        return [f.key_id for f in listed if intent_of_federated(f.name)]

    def sign_in(self, tenant: str, client_id: str, assertion: Sensitive) -> bool | None:
        azure = self.world.config.azure
        return probe_sign_in_federated(
            login_url=azure.login_url,
            tenant_id=tenant,
            client_id=client_id,
            assertion=assertion,
            scope=azure.arm_scope,
            ca_bundle=azure.ca_bundle,
        )


@pytest.fixture
def federation(
    openbao: OpenBaoDevServer, root_client: hvac.Client, kv: VaultKV, tmp_path: Path
) -> Iterator[Federation]:
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    site = IssuerSite(tmp_path / "issuer-ca")
    config = EmulatorConfig(clock_mode="manual", seed=20261130, issuer_ca=site.ca_path)
    try:
        with EmulatorServer(config) as emu:
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
            world = make_world(emu, Store(kv), openbao.addr, openbao.root_token, start=start)
            world.config = replace(
                world.config,
                issuer=IssuerConfig(
                    url=site.url, transit_mount=mount, key="issuer", publish_ahead=PUBLISH_AHEAD
                ),
            )
            issuer = world.runtime.issuer()
            assert issuer is not None
            site.serve(issuer)
            issuer.maintain()
            yield Federation(world, site, issuer, mount)
    finally:
        site.stop()
        root_client.adapter.delete(f"/v1/sys/mounts/{mount}")


def test_a_federated_integration_signs_in_at_the_emulator(federation: Federation) -> None:
    """Created by the command's service, listed by Graph, and a probe token signs in."""
    record, tenant = federation.create("fed-e2e")
    (version,) = federation.stored(record.name)
    assert version.name == federated_credential_name(version.intent_id)
    assert federation.on_app(record) == [version.key_id]
    graph = federation.world.runtime.graph()
    (listed,) = graph.list_federated_credentials(record.app_object_id, fresh=True)
    assert (listed.issuer, listed.subject, listed.audience) == (
        federation.site.url,
        version.subject,
        version.audience,
    )
    probe = federated_sign_in(federation.issuer, federation.sign_in)
    federation.world.time.advance(PUBLISH_AHEAD)  # the issuer's key is published long enough
    assert probe(tenant.tenant_id, record.name, version) is True
    assert any("jwks" in path for path in federation.site.requests)
    stranger = replace(version, subject=f"azsidecar:integration:{record.name}:other")
    assert probe(tenant.tenant_id, record.name, stranger) is False


def test_graph_takes_back_a_duplicate_name_as_ours(federation: Federation) -> None:
    record, _ = federation.create("fed-dup")
    (version,) = federation.stored(record.name)
    graph: GraphClient = federation.world.runtime.graph()
    again = graph.add_federated_credential(
        record.app_object_id, version.name, version.issuer, version.subject, version.audience
    )
    assert again.key_id == version.key_id
    with pytest.raises(GraphError) as refused:  # the same name, another subject: not ours
        graph.add_federated_credential(
            record.app_object_id, version.name, version.issuer, "someone:else", version.audience
        )
    assert refused.value.status == 409
    assert graph.remove_federated_credential(record.app_object_id, version.key_id)
    federation.world.time.advance(timedelta(minutes=11))
    assert not graph.remove_federated_credential(record.app_object_id, version.key_id)


def test_a_create_answered_504_after_commit_stores_the_one_credential(
    federation: Federation,
) -> None:
    """Repeated after the gateway error, refused as a duplicate name, taken back by name."""
    world = federation.world
    world.emu.state.faults.gateway_next(
        1, status=504, commit=True, prefix="/graph/v1.0/applications/", methods=("POST",)
    )
    record, _ = federation.create("fed-gw")
    assert [c.status for c in world.emu.state.calls.query() if c.fault == "gateway"] == [504]
    (version,) = federation.stored(record.name)
    assert federation.on_app(record) == [version.key_id]
    assert world.store.intents(record.name)[0] == []


@pytest.mark.parametrize(
    "step", ["after_intent", "after_add_federated", "after_kv_write", "after_store"]
)
def test_sigkill_at_each_step_of_creating_a_federated_credential(
    federation: Federation, tmp_path: Path, step: str
) -> None:
    """Nothing orphaned, nothing lost, exactly one federated credential after a restart."""
    world = federation.world
    record, _ = federation.create("fed-crash")
    (first,) = federation.stored(record.name)
    # The operator removes it in the portal: the daemon must make a new one.
    world.runtime.graph().remove_federated_credential(record.app_object_id, first.key_id)
    world.time.advance(world.config.timing.missing_grace + timedelta(minutes=1))
    crashed = _daemon_once(federation, tmp_path / "a.toml", crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    world.time.advance(world.config.timing.intent_timeout + timedelta(minutes=1))
    for config in ("b.toml", "c.toml"):  # the second pass removes what the first left
        restarted = _daemon_once(federation, tmp_path / config)
        assert restarted.returncode == 0, restarted.stderr[-2000:]
        world.time.advance(timedelta(minutes=20))
    stored = federation.stored(record.name)
    assert len(stored) == 1 and stored[0].key_id != first.key_id
    assert federation.on_app(record) == [stored[0].key_id]
    assert world.store.intents(record.name)[0] == []


def _daemon_once(
    federation: Federation, path: Path, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``azsidecar daemon --once`` as its own process (tests.processes.run_daemon_once
    with the ``[issuer]`` section); ``crash_at`` sets a failpoint."""
    env = azsidecar_env(federation.world.config.vault.token or "")
    if crash_at:
        env["AZSIDECAR_TEST_CRASH_AT"] = crash_at
    config = _config(federation, path)
    return run(azsidecar("daemon", "--once", "--no-metrics", "--config", str(config)), env)


def _config(federation: Federation, path: Path) -> Path:
    """The daemon's configuration for the child process, with the ``[issuer]`` section."""
    written = write_config(federation.world, path)
    settings = federation.world.config.issuer
    written.write_text(
        written.read_text()
        + "[issuer]\n"
        + f'url = "{settings.url}"\n'
        + f'transit_mount = "{settings.transit_mount}"\n'
        + f'key = "{settings.key}"\n'
        # The test's IssuerSite serves the documents, not the daemon's listener.
        + 'listen = ""\n'
    )
    return written


def test_the_daemon_makes_and_verifies_a_replacement(federation: Federation) -> None:
    """Removed in the portal: the daemon makes a new one, and its probes verify it by
    signing in at the emulator with tokens of the issuer."""
    world = federation.world
    record, _ = federation.create("fed-daemon")
    (first,) = federation.stored(record.name)
    world.runtime.graph().remove_federated_credential(record.app_object_id, first.key_id)
    world.time.advance(world.config.timing.missing_grace + timedelta(minutes=1))
    daemon = Daemon(world.runtime, holder="t")
    assert daemon.tick(), daemon.health.last_error
    (new,) = federation.stored(record.name)
    assert new.key_id != first.key_id
    for _ in range(40):
        daemon.probe()
        world.time.advance(world.config.timing.probe_interval)
    (probe,) = world.store.probes(record.name).values()
    assert rule.verified(probe, world.config.timing), probe
    assert any("jwks" in path for path in federation.site.requests), "the emulator verified"
    assert federation.on_app(record) == [new.key_id]
