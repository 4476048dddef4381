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

import base64
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import jwt
import pytest

from sidecar.answers import ResolvedCredential
from sidecar.clock import AcceleratedClock
from sidecar.config import IssuerConfig
from sidecar.daemon import Daemon
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.emulator.replicas import named_profile
from sidecar.errors import NotReadyError
from sidecar.integrations import Integrations
from sidecar.issuer.handout import TransitSigner
from sidecar.issuer.signing import transit_time
from sidecar.model import CredentialKind, Phase
from sidecar.resolve import resolve_credential
from sidecar.runtime import Runtime, federated_trust
from sidecar.store import StackRecord, Store
from sidecar.transit import Transit
from sidecar.vault import VaultKV
from tests.issuer_site import IssuerSite
from tests.pfx import sign_in_and_read_subscription
from tests.runner.test_federated_emulator_runs import sign_in_and_read
from tests.test_certificate_e2e import our_certificates
from tests.world import UserTenant, World, make_world, run_terraform

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
                    assert cred.subscription_id == tenant.subscription_id
                    token = cred.federated.token.reveal()
                    first_token = first_token or now
                    kids.add(str(jwt.get_unverified_header(token)["kid"]))
                    ok, why = sign_in_and_read(
                        emu, session, cred.tenant_id, cred.client_id, tenant.subscription_id, token
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


def run_with(
    world: World, emu: EmulatorServer, cred: ResolvedCredential, tenant: UserTenant
) -> tuple[bool, str]:
    """What azurerm does with what a run was handed, whichever kind."""
    session = emu.session()
    if cred.federated is not None:
        token = cred.federated.token.reveal()
        return sign_in_and_read(
            emu, session, cred.tenant_id, cred.client_id, tenant.subscription_id, token
        )
    if cred.certificate is not None:
        return sign_in_and_read_subscription(
            login_url=emu.base_url,
            arm_url=emu.arm_url,
            session=session,
            tenant_id=cred.tenant_id,
            client_id=cred.client_id,
            subscription_id=tenant.subscription_id,
            bundle=base64.b64decode(cred.certificate.bundle.reveal()),
            password=cred.certificate.password.reveal(),
        )
    return run_terraform(world, session, cred, tenant)


SECRET = CredentialKind.SECRET
CERT = CredentialKind.CERTIFICATE


def test_secret_federated_certificate_secret_switches_never_fail_a_run(
    tmp_path: Path, openbao: OpenBaoDevServer, kv: VaultKV, transit_mount: str
) -> None:
    """One integration switched secret -> federated -> certificate -> secret while a
    run every 5 emulated minutes signs in: no run fails, the old kind is handed out
    until the new one is ready, and the old kind's credentials leave Azure."""
    site = IssuerSite(tmp_path / "site")
    config = EmulatorConfig(clock_mode="manual", seed=1873, issuer_ca=site.ca_path)
    with EmulatorServer(config) as emu:
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
            # The issuer's key published for publish_ahead before any switch: before
            # that, `integration set-kind ... federated` is refused (a released federated
            # credential cannot be signed for while the secret would be retired;
            # tests/test_federated_credentials.py holds the refusal).
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
            record = service.create("web", tenant.tenant_id, tenant.subscription_id, SECRET)
            world.store.save_stack(StackRecord(name="A", read="web", write="web"), cas=0)
            world.time.advance(timedelta(minutes=11))
            world.consent_and_grant(record.client_id, tenant)
            world.time.advance(timedelta(minutes=11))
            signer = TransitSigner(
                mount=transit_mount, key="issuer", policy=settings.policy(), clock=world.time
            )
            graph = rt.graph()
            handed: list[CredentialKind] = []
            runs = 0

            def runs_for(hours: int) -> None:
                nonlocal runs
                end = world.time.now() + timedelta(hours=hours)
                while world.time.now() < end:
                    now = world.time.now()
                    if due := daemon.due(now):
                        assert daemon.tick(only=due), daemon.health.last_error
                    daemon.probe()
                    phase = Phase.PLAN if runs % 2 else Phase.APPLY
                    cred = resolve_credential(
                        kv, "A", phase, now, world.config.timing, signer=signer
                    )
                    ok, why = run_with(world, emu, cred, tenant)
                    runs += 1
                    assert ok, f"a {cred.kind.value} run at {now} failed: {why}"
                    handed.append(cred.kind)
                    world.time.advance(timedelta(minutes=5))

            assert daemon.tick(), daemon.health.last_error
            assert daemon.issuer_tick()
            runs_for(1)
            assert set(handed) == {SECRET}
            for wanted in (FED, CERT, SECRET):
                before = len(handed)
                old = handed[-1]
                changed_record, changed = service.set_kind("web", wanted)
                assert changed and changed_record.kind is wanted
                assert daemon.tick(), daemon.health.last_error
                runs_for(2)
                switched = handed[before:]
                assert switched[0] is old, "the old kind until the new one is ready"
                assert switched[-1] is wanted
                assert {c.kind for c in world.store.credentials("web")} == {wanted}
                held_federated = graph.list_federated_credentials(record.app_object_id)
                assert (wanted is FED) == bool(held_federated), held_federated
                assert (wanted is CERT) == bool(our_certificates(world, record.app_object_id))
                assert (wanted is SECRET) == bool(world.our_key_ids(record.app_object_id))
        finally:
            daemon.close()
            site.stop()
    assert sum(1 for a, b in itertools.pairwise(handed) if a != b) == 3
    by_kind = {k.value: sum(1 for h in handed if h is k) for k in (SECRET, FED, CERT)}
    print(f"\nkind switches: runs={runs} failures=0 by kind={by_kind}")


@pytest.mark.slow
def test_issuer_key_rotation_during_federated_runs(
    tmp_path: Path, openbao: OpenBaoDevServer, kv: VaultKV, transit_mount: str
) -> None:
    """12 emulated hours at 1800x: the daemon's issuer_tick rotates the key every 3 h,
    published 1 h ahead; a run every 5 emulated minutes signs in with a fresh token.

    Transit stamps versions with the wall clock, so the product runs on an
    :class:`AcceleratedClock` (which maps those stamps) and the emulator's manual
    clock is set from it before each step. The emulator caches an issuer's keys
    for 5 minutes (less than publish_ahead, as the design assumes of Entra).
    """
    factor = 1800.0
    ahead, period = timedelta(hours=1), timedelta(hours=3)
    site = IssuerSite(tmp_path / "site")
    config = EmulatorConfig(clock_mode="manual", seed=1874, issuer_ca=site.ca_path)
    with EmulatorServer(config) as emu:
        acc = AcceleratedClock(datetime.now(UTC), factor)

        def sync() -> None:
            emu.state.clock.set(acc.now().timestamp())

        sync()
        world = make_world(emu, Store(kv), openbao.addr, openbao.root_token, start=None)
        settings = IssuerConfig(
            url=site.url,
            transit_mount=transit_mount,
            key="issuer",
            listen="",
            publish_ahead=ahead,
            rotation_period=period,
        )
        world.config = replace(world.config, issuer=settings)
        rt = Runtime(config=world.config, clock=acc, store=world.store)
        daemon = Daemon(rt, holder="test-daemon")
        transit = Transit(kv.client, transit_mount)
        signed: list[tuple[str, int, datetime, datetime]] = []  # kid, version, at, published
        runs = refusals = 0
        try:
            assert daemon.issuer_tick()
            issuer = rt.issuer()
            assert issuer is not None
            site.serve(issuer)
            tenant = world.add_tenant()
            service = Integrations(
                rt.store,
                rt.graph(),
                rt.clock,
                rt.config.timing,
                redirect_uri=rt.config.azure.consent_redirect_uri,
                trust=federated_trust(rt.config),
            )
            record = service.create("fed", tenant.tenant_id, tenant.subscription_id, FED)
            acc.sleep(timedelta(minutes=11).total_seconds())  # Azure AD knows the app
            sync()
            world.consent_and_grant(record.client_id, tenant)
            world.store.save_stack(StackRecord(name="A", read="fed", write="fed"), cas=0)
            signer = TransitSigner(
                mount=transit_mount, key="issuer", policy=settings.policy(), clock=acc
            )
            session = emu.session()
            start = acc.now()
            end = start + timedelta(hours=12)
            step = timedelta(minutes=5)
            next_run = start
            first_token: datetime | None = None
            while acc.now() < end:
                acc.sleep((next_run - acc.now()).total_seconds())
                next_run += step
                sync()
                assert daemon.issuer_tick(), "the issuer's key maintenance failed"
                if due := daemon.due(acc.now()):
                    assert daemon.tick(only=due), daemon.health.last_error
                daemon.probe()
                sync()
                now = acc.now()
                try:
                    cred = resolve_credential(
                        kv, "A", Phase.APPLY, now, rt.config.timing, signer=signer
                    )
                except NotReadyError as refused:
                    assert first_token is None, f"refused at {now} after a first token: {refused}"
                    assert refused.ready_at is not None
                    refusals += 1
                    continue
                assert cred.federated is not None
                token = cred.federated.token.reveal()
                first_token = first_token or now
                kid = str(jwt.get_unverified_header(token)["kid"])
                body = jwt.decode(token, options={"verify_signature": False})
                iat = datetime.fromtimestamp(body["iat"], UTC)
                key, key_plan = issuer.read(now)
                served = {k.kid: k.version for k in issuer.published_keys(key, key_plan)}
                assert kid in served, f"the JWKS lacks the key of a live token ({kid})"
                version = served[kid]
                published = transit_time(acc, key.versions[version].created)
                signed.append((kid, version, iat, published))
                sync()
                ok, why = sign_in_and_read(
                    emu, session, cred.tenant_id, cred.client_id, tenant.subscription_id, token
                )
                runs += 1
                assert ok, f"run {runs} at {now - start} failed with key v{version}: {why}"
        finally:
            daemon.close()
            site.stop()
    versions = sorted({v for _, v, _, _ in signed})
    for kid, version, iat, published in signed:
        assert iat >= published + ahead - timedelta(seconds=1), (kid, version, iat, published)
    print(
        f"\nrotation: runs={runs} failures=0 refusals_ready_at={refusals}"
        f" first_token_after={first_token - start if first_token else None}"
        f" signing_versions={versions} latest={transit.read_key('issuer').latest_version}"
    )
    assert len(versions) >= 3, versions
    assert runs >= 12 * 12 - refusals - 20  # late steps under load may merge
