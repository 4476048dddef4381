"""A new federated integration under the daemon, 72 emulated hours of runs (issue 18).

The emulator (manual clock, a replication lag profile) trusts the issuer's
HTTPS site (:class:`tests.issuer_site.IssuerSite`, ``issuer_ca``); the
product's Integrations make the application and its federated credential
through Graph, the daemon keeps it (ticks, probes, the issuer's key through
:meth:`Daemon.issuer_tick`). A run every 5 emulated minutes does what a
reader does (:func:`sidecar.resolve.resolve_credential` with a
:class:`~sidecar.issuer.handout.TransitSigner`), then what azurerm does with
the token: a client-assertion sign-in at the emulator and a read of its
subscription through ARM.

Transit stamps key versions with the real time, so the emulated clock starts
at the real time: the key made at the start is the only one a 72-hour run
sees (the default rotation period is 30 days).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import jwt
import pytest

from sidecar.config import IssuerConfig
from sidecar.daemon import Daemon
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.emulator.replicas import named_profile
from sidecar.errors import NotReadyError
from sidecar.integrations import Integrations
from sidecar.issuer.handout import TransitSigner
from sidecar.model import CredentialKind, Phase
from sidecar.resolve import resolve_credential
from sidecar.runtime import federated_trust
from sidecar.store import StackRecord, Store
from sidecar.vault import VaultKV
from tests.issuer_site import IssuerSite
from tests.runner.test_federated_emulator_runs import sign_in_and_read
from tests.world import make_world

FED = CredentialKind.FEDERATED


@pytest.fixture
def transit_mount(root_client: hvac.Client) -> Iterator[str]:
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    yield mount
    root_client.adapter.delete(f"/v1/sys/mounts/{mount}")


@pytest.mark.slow
@pytest.mark.parametrize("lag", ["default", "heavy"])
def test_72_hours_of_federated_runs_from_creation(
    lag: str, tmp_path: Path, openbao: OpenBaoDevServer, kv: VaultKV, transit_mount: str
) -> None:
    """Refused with "ready at" until the credential has replicated, then never failing."""
    site = IssuerSite(tmp_path / "site")
    config = EmulatorConfig(clock_mode="manual", seed=1872, issuer_ca=site.ca_path)
    with EmulatorServer(config) as emu:
        emu.state.set_replication(profile=named_profile(lag))
        world = make_world(
            emu, Store(kv), openbao.addr, openbao.root_token, start=datetime.now(UTC)
        )
        settings = IssuerConfig(url=site.url, transit_mount=transit_mount, key="issuer", listen="")
        world.config = replace(world.config, issuer=settings)
        rt = world.runtime
        daemon = Daemon(rt, holder="test-daemon")
        try:
            assert daemon.issuer_tick()
            issuer = rt.issuer()
            assert issuer is not None
            site.serve(issuer)
            world.time.advance(settings.publish_ahead + timedelta(minutes=1))
            tenant = world.add_tenant()
            service = Integrations(
                rt.store,
                rt.graph(),
                rt.clock,
                rt.config.timing,
                redirect_uri=rt.config.azure.consent_redirect_uri,
                trust=federated_trust(rt.config),
            )
            created = world.time.now()
            record = service.create("fed", tenant.tenant_id, tenant.subscription_id, FED)
            world.store.save_stack(StackRecord(name="A", read="fed", write="fed"), cas=0)
            signer = TransitSigner(
                mount=transit_mount, key="issuer", policy=settings.policy(), clock=world.time
            )
            session = emu.session()
            policy = world.config.timing
            consented = False
            runs = refusals = 0
            first_token: datetime | None = None
            kids: set[str] = set()
            next_tick = world.time.now()
            end = created + timedelta(hours=72)
            while world.time.now() < end:
                now = world.time.now()
                if not consented and now >= created + timedelta(minutes=11):
                    # The tenant administrator consents once Azure AD knows the app.
                    world.consent_and_grant(record.client_id, tenant)
                    consented = True
                if now >= next_tick:
                    assert daemon.tick(), daemon.health.last_error
                    assert daemon.issuer_tick(), "the issuer's key maintenance failed"
                    next_tick = world.time.now() + policy.tick
                elif due := daemon.due(now):
                    assert daemon.tick(only=due), daemon.health.last_error
                daemon.probe()
                phase = Phase.PLAN if runs % 2 else Phase.APPLY
                try:
                    cred = resolve_credential(kv, "A", phase, now, policy, signer=signer)
                except NotReadyError as refused:
                    assert first_token is None, f"refused at {now} after a first token: {refused}"
                    assert refused.ready_at is not None, refused
                    refusals += 1
                else:
                    assert cred.federated is not None and cred.kind is FED
                    token = cred.federated.token.reveal()
                    first_token = first_token or now
                    kids.add(str(jwt.get_unverified_header(token)["kid"]))
                    ok, why = sign_in_and_read(
                        emu, session, cred.tenant_id, cred.client_id, cred.subscription_id, token
                    )
                    runs += 1
                    assert ok, f"run {runs} at {now - created} after creation failed: {why}"
                world.time.advance(timedelta(minutes=5))
        finally:
            daemon.close()
            site.stop()
    assert first_token is not None
    print(
        f"\nlag={lag} runs={runs} failures=0 refusals_ready_at={refusals}"
        f" first_token_after={first_token - created} kids={len(kids)}"
    )
    assert runs >= 72 * 12 - refusals - 1
