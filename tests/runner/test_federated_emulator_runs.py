"""Federated runs end to end against the live emulator (issue 18).

Everything is real except Azure: OpenBao with the plugin, JWT auth for runs
and Transit holding the issuer's key; the product's Integrations and Daemon
making stack A's plan and apply integrations through Graph at the emulator
(HTTPS, no replication lag, real time), the federated credential created by
the product's own executor; the issuer's discovery document and JWKS served
over HTTPS by :class:`tests.issuer_site.IssuerSite` under a CA the emulator
trusts through ``EmulatorConfig.issuer_ca``. A run takes what a reader hands
it (``bao agent``'s env file, the plugin, the resolver, or the
``ARM_OIDC_REQUEST_URL`` endpoint) and does what azurerm does with
``ARM_USE_OIDC``: a client-credentials sign-in with the token as a
``client_assertion`` of type
``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
(learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
"third case"), then a read of its subscription through ARM.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import requests

from sidecar.answers import NotReadyYet
from sidecar.clock import SystemClock
from sidecar.config import Config, DaemonConfig, IssuerConfig, VaultConfig
from sidecar.daemon import Daemon
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.errors import VaultForbidden
from sidecar.graph import acquire_token_with_assertion
from sidecar.integrations import Integrations
from sidecar.issuer.signing import Issuer
from sidecar.model import CredentialKind, FederatedVersion, Phase
from sidecar.policies import render_all
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.server import ResolverHandle, start_resolver
from sidecar.runner.source import read_plugin
from sidecar.runtime import federated_trust
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, StackRecord
from sidecar.vault import VaultKV, connect
from tests.issuer_site import IssuerSite
from tests.runner.conftest import RunnerWorld, run_agent
from tests.runner.test_resolver_tls import server_certificate
from tests.world import UserTenant, World, make_world

TRANSIT = "transit"
AHEAD = timedelta(seconds=1)
WINDOW = timedelta(seconds=3)
DELAY = timedelta(seconds=5)
FED = CredentialKind.FEDERATED


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerSite]:
    """Per test: each test's issuer has a key of its own, and Azure (the emulator)
    caches an issuer's keys by its URL."""
    served = IssuerSite(tmp_path_factory.mktemp("issuer-site"))
    yield served
    served.stop()


@pytest.fixture
def fed_emulator(site: IssuerSite) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(lag_profile="none", seed=18, issuer_ca=site.ca_path)
    with EmulatorServer(config) as server:
        yield server


def sign_in_and_read(
    emu: EmulatorServer,
    session: requests.Session,
    tenant_id: str,
    client_id: str,
    subscription_id: str,
    token: str,
) -> tuple[bool, str]:
    """As azurerm with ``ARM_USE_OIDC``: the token as a client assertion, then ARM."""
    result = acquire_token_with_assertion(
        login_url=emu.base_url,
        tenant_id=tenant_id,
        client_id=client_id,
        assertion=Sensitive(token),
        session=session,
    )
    access = result.get("access_token")
    if not access:
        codes = result.get("error_codes") or []
        return False, f"{codes} {str(result.get('error_description', ''))[:160]}"
    arm = session.get(
        f"{emu.arm_url}/subscriptions/{subscription_id}",
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {access}"},
        timeout=10,
    )
    if arm.status_code != 200:
        return False, f"ARM {arm.status_code} {arm.text[:120]}"
    return True, ""


@dataclass
class Live:
    runner: RunnerWorld
    product: World
    emu: EmulatorServer
    tenant: UserTenant
    plan: IntegrationRecord
    apply: IntegrationRecord
    key: str
    issuer: Issuer

    def record(self, phase: str) -> IntegrationRecord:
        return self.plan if phase == "plan" else self.apply

    def run(self, phase: str, token: str) -> tuple[bool, str]:
        """A run of stack A's ``phase`` signing in with ``token`` and reading its subscription."""
        record = self.record(phase)
        return sign_in_and_read(
            self.emu,
            self.emu.session(),
            record.tenant_id,
            record.client_id,
            self.tenant.subscription_id,
            token,
        )

    def resolver(self, tls: tuple[Path, Path] | None = None) -> ResolverHandle:
        world = self.runner
        daemon = DaemonConfig()
        if tls is not None:
            daemon = DaemonConfig(
                tls_cert=str(tls[0]), tls_key=str(tls[1]), resolver_oidc_addr="127.0.0.1:0"
            )
        config = Config(
            vault=VaultConfig(addr=world.addr, prefix=world.prefix),
            issuer=IssuerConfig(transit_mount=TRANSIT, key=self.key, publish_ahead=AHEAD),
            daemon=daemon,
            timing=self.product.config.timing,  # as the daemon's
        )
        kv = VaultKV(connect(world.addr, token=world.plugin_token), "secret", world.prefix)
        return start_resolver(config, kv, SystemClock(), mount="azure", addr="127.0.0.1:0")


def _issuer_policies(world: RunnerWorld, key: str) -> None:
    root = world.root
    if f"{TRANSIT}/" not in root.adapter.get("/v1/sys/mounts")["data"]:
        root.sys.enable_secrets_engine("transit", path=TRANSIT)
    values = {
        "jwt_accessor": world.bao.accessor,
        "kv_mount": "secret",
        "prefix": world.prefix,
        "creds_mount": "azure",
        "issuer_key": key,
    }
    for name, text in render_all(values).items():
        root.sys.create_or_update_policy(f"azsidecar-{name}", text)


def wait_until_handed_out(
    world: RunnerWorld, daemon: Daemon, phase: Phase, within: float = 30.0
) -> None:
    """Until the plugin hands stack A's ``phase`` a token (not "ready at"), the daemon
    probing meanwhile (a verified sign-in makes the credential ready)."""
    deadline = time.monotonic() + within
    while True:
        daemon.probe()
        try:
            read_plugin(world.login("A", phase.value), "azure", "A", phase)
            return
        except NotReadyYet as refused:
            assert time.monotonic() < deadline, f"never handed out: {refused}"
            time.sleep(1.0)


@pytest.fixture
def live(world: RunnerWorld, fed_emulator: EmulatorServer, site: IssuerSite) -> Iterator[Live]:
    """Stack A: plan and apply, two federated integrations made through Graph, consented."""
    key = f"iss-{world.prefix}"
    _issuer_policies(world, key)
    product = make_world(
        fed_emulator,
        world.store,
        world.addr,
        world.bao.pb.server.root_token,
        start=None,
        # Real time, scaled down: a 5-second propagation delay; verified readiness
        # by a sign-in a second over a 3-second window.
        propagation_delay=DELAY,
        probe_interval=timedelta(seconds=1),
        probe_window=WINDOW,
    )
    settings = IssuerConfig(
        url=site.url, transit_mount=TRANSIT, key=key, publish_ahead=AHEAD, listen=""
    )
    product.config = replace(product.config, issuer=settings)
    rt = product.runtime
    daemon = Daemon(rt, holder="test-daemon")
    assert daemon.issuer_tick()  # the leader makes the signing key
    issuer = rt.issuer()
    assert issuer is not None
    site.serve(issuer)
    time.sleep(AHEAD.total_seconds() + 1.1)  # the key's first version is published long enough
    service = Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        redirect_uri=rt.config.azure.consent_redirect_uri,
        trust=federated_trust(rt.config),
    )
    tenant = product.add_tenant()
    plan = service.create("plan", tenant.tenant_id, tenant.subscription_id, FED)
    apply = service.create("apply", tenant.tenant_id, tenant.subscription_id, FED)
    for record in (plan, apply):
        product.consent_and_grant(record.client_id, tenant)
    world.store.save_stack(StackRecord(name="A", read="plan", write="apply"), cas=0)
    assert daemon.tick(), daemon.health.last_error
    daemon.probe()
    world.root.write_data(
        "azure/config",
        data={
            "issuer_key": key,
            "issuer_transit_mount": TRANSIT,
            "issuer_publish_ahead": f"{int(AHEAD.total_seconds())}s",
            "probe_window": f"{int(WINDOW.total_seconds())}s",  # as the daemon's
            "propagation_delay": f"{int(DELAY.total_seconds())}s",
        },
    )
    for phase in Phase:
        wait_until_handed_out(world, daemon, phase)
    try:
        yield Live(world, product, fed_emulator, tenant, plan, apply, key, issuer)
    finally:
        daemon.close()
        world.root.adapter.post(f"/v1/{TRANSIT}/keys/{key}/config", json={"deletion_allowed": True})
        world.root.adapter.delete(f"/v1/{TRANSIT}/keys/{key}")


def test_the_federated_credential_is_the_executors_and_the_emulator_holds_it(live: Live) -> None:
    for record in (live.plan, live.apply):
        [version] = live.runner.store.credentials(record.name)
        assert version.kind is FED
        stored = live.runner.store.credential_version(record.name, version.version)
        assert isinstance(stored, FederatedVersion) and stored.issuer == live.issuer.identity.url
        held = live.product.runtime.graph().list_federated_credentials(record.app_object_id)
        assert [c.name for c in held] == [stored.name]


def test_a_run_through_bao_agent_signs_in_and_reads_its_subscription(
    live: Live, tmp_path: Path
) -> None:
    for phase in ("plan", "apply"):
        (tmp_path / phase).mkdir()
        rendered, result = run_agent(live.runner, tmp_path / phase, "A", phase)
        assert rendered.exists(), result.stderr[-2000:]
        values = dict(line.split("=", 1) for line in rendered.read_text().splitlines() if line)
        assert values["ARM_USE_OIDC"] == "true"
        assert values["ARM_CLIENT_ID"] == live.record(phase).client_id
        assert values["ARM_SUBSCRIPTION_ID"] == live.tenant.subscription_id
        ok, why = live.run(phase, values["ARM_OIDC_TOKEN"])
        assert ok, f"{phase}: {why}"
        assert (tmp_path / phase / "oidc-token").read_text() == values["ARM_OIDC_TOKEN"]


def test_runs_sign_in_with_tokens_from_the_plugin_and_the_resolver(live: Live) -> None:
    handle = live.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    try:
        for phase in Phase:
            via_plugin = read_plugin(live.runner.login("A", phase.value), "azure", "A", phase)
            token = str(live.runner.login("A", phase.value).token)
            via_resolver = client.resolve(token, "A", phase)
            for cred in (via_plugin, via_resolver):
                assert cred.kind is FED and cred.federated is not None
                ok, why = live.run(phase.value, cred.federated.token.reveal())
                assert ok, f"{phase.value}: {why}"
    finally:
        client.close()
        handle.stop(grace=0)


def _request_token(handle: ResolverHandle, ca: Path, bearer: str, phase: str) -> requests.Response:
    """As go-azure-sdk's OIDC authorizer asks ``ARM_OIDC_REQUEST_URL`` for a token."""
    url = f"https://127.0.0.1:{handle.oidc_port}/oidc/token?stack=A&phase={phase}"
    url += "&audience=api%3A%2F%2FAzureADTokenExchange"
    session = requests.Session()
    session.trust_env = False
    headers = {"Accept": "application/json", "Authorization": f"Bearer {bearer}"}
    return session.get(url, headers=headers, verify=str(ca), timeout=10)


def test_a_run_fetches_a_fresh_token_from_the_request_url_and_signs_in(
    live: Live, tmp_path: Path
) -> None:
    cert, key = server_certificate(tmp_path)
    handle = live.resolver(tls=(cert, key))
    try:
        tokens = []
        for phase in ("plan", "apply"):
            vault_token = str(live.runner.login("A", phase).token)
            for _ in range(2):  # each request signs a fresh token; each signs in
                answer = _request_token(handle, cert, vault_token, phase)
                assert answer.status_code == 200, answer.text
                tokens.append(answer.json()["value"])
                ok, why = live.run(phase, tokens[-1])
                assert ok, f"{phase}: {why}"
        assert len(set(tokens)) == len(tokens)
        plan_token = str(live.runner.login("A", "plan").token)
        denied = _request_token(handle, cert, plan_token, "apply")
        assert denied.status_code == 403 and "value" not in denied.json()
    finally:
        handle.stop(grace=0)


def test_a_plan_token_cannot_obtain_the_apply_integrations_token(live: Live) -> None:
    plan = live.runner.login("A", "plan")
    with pytest.raises(hvac.exceptions.Forbidden):
        plan.read("azure/creds/A/apply")
    handle = live.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    try:
        with pytest.raises(VaultForbidden):
            client.resolve(str(plan.token), "A", Phase.APPLY)
    finally:
        client.close()
        handle.stop(grace=0)
    # Nor does the plan's own token open the apply application at Azure: its
    # subject names the plan integration, which no credential of apply trusts.
    cred = read_plugin(plan, "azure", "A", Phase.PLAN)
    assert cred.federated is not None
    token = cred.federated.token.reveal()
    ok, why = sign_in_and_read(
        live.emu,
        live.emu.session(),
        live.apply.tenant_id,
        live.apply.client_id,
        live.tenant.subscription_id,
        token,
    )
    assert not ok and "70021" in why, why
    assert live.run("plan", token)[0]
