"""Certificate integrations under the daemon, against the emulator and a real OpenBao.

Runs sign in as a run would: with the handed-out certificate through MSAL at
the emulator's token endpoint (a ``client_assertion`` checked against the
keys the serving replica knows), then read their subscription through ARM.
Which credential a run gets is :func:`sidecar.ready.choose_for_kind` over
the index, the readers' rule.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import requests

from sidecar.daemon import Daemon
from sidecar.emulator.replicas import named_profile
from sidecar.graph import acquire_token_with_certificate, acquire_token_with_secret
from sidecar.integrations import Integrations
from sidecar.keypairs import KeyPair, load_bundle
from sidecar.model import (
    CertificateVersion,
    CredentialKind,
    SecretVersion,
    intent_of,
)
from sidecar.ready import Ready, choose_for_kind
from tests import test_rotation_e2e as rotation_e2e
from tests.test_rotation_e2e import _tick_or_uncertain
from tests.world import UserTenant, World

CERT = CredentialKind.CERTIFICATE
SECRET = CredentialKind.SECRET


def create_integrations(
    world: World, count: int, tenants: int, kind: CredentialKind
) -> list[tuple[str, UserTenant]]:
    """As the secret tests make them, of ``kind``, attached to no stack."""
    return rotation_e2e.create_integrations(world, count, tenants, kind, attach=False)


#: Bundles opened so far, by thumbprint: opening one costs a PKCS#12 decryption and an
#: RSA key check, which a 72-hour loop of runs need not repeat.
_OPENED: dict[str, KeyPair] = {}


def run(
    world: World, session: requests.Session, name: str, tenant: UserTenant, kind: CredentialKind
) -> tuple[bool, str, CredentialKind | None]:
    """One run: the ready credential, a sign-in with it, a read of the subscription."""
    now = world.time.now()
    choice = choose_for_kind(world.store.credentials(name), kind, now, world.config.timing)
    if not isinstance(choice, Ready):
        return False, choice.reason, None
    found = world.store.credential_version(name, choice.credential.version)
    if isinstance(found, CertificateVersion):
        pair = _OPENED.get(found.thumbprint) or load_bundle(found.pfx, found.pfx_password)
        _OPENED[found.thumbprint] = pair
        result = acquire_token_with_certificate(
            login_url=world.emu.base_url,
            tenant_id=found.tenant_id,
            client_id=found.client_id,
            cert_pem=pair.cert_pem,
            key_pem=pair.key_pem,
            thumbprint=pair.thumbprint,
            session=session,
        )
    else:
        assert isinstance(found, SecretVersion)
        result = acquire_token_with_secret(
            login_url=world.emu.base_url,
            tenant_id=found.tenant_id,
            client_id=found.client_id,
            secret=found.secret,
            session=session,
        )
    token = result.get("access_token")
    if not token:
        return False, str(result.get("error_description", ""))[:160], found.kind
    arm = session.get(
        f"{world.emu.arm_url}/subscriptions/{tenant.subscription_id}",
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if arm.status_code != 200:
        return False, f"ARM {arm.status_code}", found.kind
    return True, "", found.kind


def our_certificates(world: World, object_id: str) -> set[str]:
    app = world.emu.state.application(object_id)
    assert app is not None
    keys = world.emu.state.app_admin_dict(app)["keyCredentials"]
    return {str(k["keyId"]) for k in keys if intent_of(str(k.get("displayName") or ""))}


def assert_nothing_left_behind(world: World, daemon: Daemon, names: list[str]) -> None:
    world.emu.state.faults.clear()
    world.time.advance(world.config.timing.intent_timeout + timedelta(minutes=10))
    assert daemon.tick(), daemon.health.last_error
    for name in names:
        record, _ = world.store.integration(name)
        stored = {c.key_id for c in world.store.credentials(name)}
        assert our_certificates(world, record.app_object_id) <= stored, f"{name}: orphan key"
        assert world.our_key_ids(record.app_object_id) <= stored, f"{name}: orphan secret"


@pytest.mark.slow
@pytest.mark.parametrize("lag", ["default", "heavy", "default+gateway"])
def test_72_hours_of_certificate_runs_never_fail_to_authenticate(world: World, lag: str) -> None:
    """3 certificate integrations in 2 tenants, a run every 10 emulated minutes, 72 hours.

    Every run signs in with its certificate and reads its subscription; each
    integration renews three times (24 h certificates renewed 2 h ahead); no
    application ever holds more than three of our certificates. With
    ``+gateway``, gateways fail 10 % of Graph requests as in the secrets' test
    (a 504 after committing answers the first two creating writes): a tick
    may then fail only on a write left uncertain, and nothing is left behind.
    """
    profile, _, gateway = lag.partition("+")
    world.emu.state.set_replication(profile=named_profile(profile))
    if gateway:
        faults = world.emu.state.faults
        faults.gateway_next(2, status=504, commit=True, prefix="/graph/v1.0/applications")
        faults.gateway_errors(0.10)
    integrations = create_integrations(world, count=3, tenants=2, kind=CERT)
    daemon = Daemon(world.runtime, holder="test-daemon")
    session = world.emu.session()
    policy = world.config.timing
    step = timedelta(minutes=10)
    end = world.time.now() + timedelta(hours=72)
    next_tick = world.time.now()
    runs = uncertain = 0
    max_held = 0
    while world.time.now() < end:
        now = world.time.now()
        if now >= next_tick:
            uncertain += _tick_or_uncertain(daemon.tick(), daemon)
            next_tick = world.time.now() + policy.tick
        elif due := daemon.due(now):
            uncertain += _tick_or_uncertain(daemon.tick(only=due), daemon)
        daemon.probe()
        for name, tenant in integrations:
            record, _ = world.store.integration(name)
            max_held = max(max_held, len(our_certificates(world, record.app_object_id)))
            ok, why, kind = run(world, session, name, tenant, CERT)
            runs += 1
            assert ok and kind is CERT, f"run {runs} of {name} at {now} failed: {why}"
        world.time.advance(step)
    rotations = sum(len(r.created) for r in daemon.reports)
    print(
        f"\nlag={lag} runs={runs} rotations={rotations} max_certificates_held={max_held}"
        f" ticks_with_an_uncertain_write={uncertain}"
    )
    assert rotations == 3 * 3
    assert uncertain == 0 or gateway
    assert max_held <= 3
    assert_nothing_left_behind(world, daemon, [name for name, _ in integrations])


def test_kind_switches_during_runs_never_fail_a_run(world: World) -> None:
    """secret -> certificate -> secret while a run signs in every 5 emulated minutes."""
    [(name, tenant)] = create_integrations(world, count=1, tenants=1, kind=SECRET)
    rt = world.runtime
    service = Integrations(rt.store, rt.graph(), rt.clock, rt.config.timing)
    daemon = Daemon(rt, holder="test-daemon")
    session = world.emu.session()
    handed: list[CredentialKind | None] = []

    def runs_for(hours: int, wanted: CredentialKind) -> None:
        end = world.time.now() + timedelta(hours=hours)
        while world.time.now() < end:
            if due := daemon.due(world.time.now()):
                assert daemon.tick(only=due), daemon.health.last_error
            daemon.probe()
            ok, why, kind = run(world, session, name, tenant, wanted)
            assert ok, f"run at {world.time.now()} failed: {why}"
            handed.append(kind)
            world.time.advance(timedelta(minutes=5))

    assert daemon.tick()
    runs_for(1, SECRET)
    for wanted in (CERT, SECRET):
        record, changed = service.set_kind(name, wanted)
        assert changed and record.kind is wanted
        assert daemon.tick(), daemon.health.last_error
        runs_for(2, wanted)
        assert handed[-1] is wanted
        assert {c.kind for c in world.store.credentials(name)} == {wanted}
    record, _ = world.store.integration(name)
    assert our_certificates(world, record.app_object_id) == set()
    assert len(world.our_key_ids(record.app_object_id)) == 1
    assert sum(1 for a, b in itertools.pairwise(handed) if a != b) == 2
    assert service.set_kind(name, SECRET)[1] is False
