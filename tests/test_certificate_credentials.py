"""An integration's certificate credentials and kind switches, through the rotation executor.

Each test runs against the in-process :class:`tests.fakes.FakeGraph` and
against the HTTPS emulator through the real :class:`sidecar.graph.GraphClient`
(where ``addKey``/``removeKey`` proofs are checked against what the serving
replica knows). Vault is always the real OpenBao.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from sidecar.clock import Clock, ManualClock
from sidecar.graph import CredentialGraph, GraphClient
from sidecar.keypairs import generate_key_pair, load_bundle
from sidecar.model import (
    CertificateVersion,
    ConsentState,
    CredentialKind,
    IntegrationRecord,
    credential_display_name,
    intent_of,
)
from sidecar.ready import Ready, choose_for_kind
from sidecar.rotation.run import TickReport, rotate
from sidecar.store import Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV
from tests.fakes import FakeGraph
from tests.world import START, World

CERT = CredentialKind.CERTIFICATE
SECRET = CredentialKind.SECRET


@dataclass
class Setting:
    graph: CredentialGraph
    store: Store
    clock: Clock
    advance: Callable[[timedelta], object]
    policy: TimingPolicy
    record: IntegrationRecord
    fake: FakeGraph | None

    def tick(self) -> TickReport:
        return rotate(self.record, self.graph, self.store, self.clock, self.policy)

    def key_ids(self) -> dict[str, str]:
        """Key id -> display name of the application's certificates, once replicated."""
        self.advance(timedelta(minutes=11))
        app = self.graph.get_application(self.record.app_object_id, fresh=True)
        return {k.key_id: k.display_name for k in app.keys}

    def secrets(self) -> set[str]:
        app = self.graph.get_application(self.record.app_object_id, fresh=True)
        return {p.key_id for p in app.passwords}

    def switch(self, kind: CredentialKind) -> None:
        record, version = self.store.integration(self.record.name)
        self.record = replace(record, kind=kind)
        self.store.save_integration(self.record, cas=version)


@pytest.fixture(params=["fake", "emulator"])
def setting(request: pytest.FixtureRequest, kv: VaultKV) -> Setting:
    name = f"azsidecar-cert-{uuid.uuid4().hex[:8]}"
    graph: CredentialGraph
    if request.param == "fake":
        clock: Clock = ManualClock(START)
        fake: FakeGraph | None = FakeGraph(clock)
        assert fake is not None
        app = fake.create_application(name)
        store = Store(kv)
        graph, advance, policy = fake, clock.advance, TimingPolicy()  # type: ignore[attr-defined]
    else:
        world: World = request.getfixturevalue("world")
        client = world.runtime.graph()
        app = client.create_application(name, [world.config.azure.consent_redirect_uri])
        world.time.advance(timedelta(minutes=11))  # past the emulator's replication lag
        graph, store, clock, fake = client, world.store, world.time, None
        advance, policy = world.time.advance, world.config.timing
    record = IntegrationRecord(
        name="certs",
        tenant_id=str(uuid.uuid4()),
        subscription_id=None,
        app_object_id=app.object_id,
        client_id=app.app_id,
        display_name=name,
        consent=ConsentState.GRANTED,
        created=clock.now(),
        kind=CERT,
    )
    store.save_integration(record, cas=0)
    return Setting(graph, store, clock, advance, policy, record, fake)


def _stored_certificate(setting: Setting, version: int) -> CertificateVersion:
    found = setting.store.credential_version("certs", version)
    assert isinstance(found, CertificateVersion)
    return found


def test_the_first_certificate_goes_in_by_patch_stored_as_a_bundle(setting: Setting) -> None:
    report = setting.tick()
    (stored,) = setting.store.credentials("certs")
    assert stored.kind is CERT and report.created == [stored.key_id]
    assert setting.key_ids() == {stored.key_id: credential_display_name(stored.intent_id)}
    assert setting.store.intents("certs")[0] == []
    if setting.fake is not None:
        assert setting.fake.patches == 1
    version = _stored_certificate(setting, stored.version)
    pair = load_bundle(version.pfx, version.pfx_password)
    assert pair.thumbprint == version.thumbprint
    assert version.client_id == setting.record.client_id
    assert "PRIVATE KEY" not in repr(version) and version.pfx_password.reveal() not in repr(version)
    assert setting.tick().created == []


def test_renewals_go_by_add_key_and_expired_certificates_are_removed(setting: Setting) -> None:
    setting.tick()
    patches = setting.fake.patches if setting.fake is not None else 0
    seen: set[str] = set()
    for _ in range(4):  # four renewals: each by addKey, proven by the certificate it renews
        newest = max(setting.store.credentials("certs"), key=lambda c: c.expires)
        due = newest.expires - setting.policy.client_certificate_renew_before
        setting.advance(due - setting.clock.now() + timedelta(minutes=1))
        report = setting.tick()
        assert len(report.created) == 1, report
        stored = setting.store.credentials("certs")
        assert len(stored) <= 2
        seen |= {c.key_id for c in stored}
        assert set(setting.key_ids()) == {c.key_id for c in stored}
    if setting.fake is not None:
        assert setting.fake.patches == patches
    assert len(seen) == 5
    # Past the last expiry but one: everything expired is gone from Azure and Vault.
    newest = max(setting.store.credentials("certs"), key=lambda c: c.expires)
    setting.advance(newest.expires - setting.clock.now() - timedelta(hours=3))
    setting.tick()
    left = {c.key_id for c in setting.store.credentials("certs")}
    assert set(setting.key_ids()) == left and newest.key_id in left


def test_a_key_someone_else_added_survives_every_patch(setting: Setting) -> None:
    theirs = generate_key_pair("terraform-bootstrap", setting.clock.now(), timedelta(days=400))
    setting.graph.patch_add_key(setting.record.app_object_id, theirs.cert_der, "CN=bootstrap")
    (their_key,) = setting.key_ids()
    setting.tick()  # our first: PATCH of the whole collection
    assert their_key in setting.key_ids()
    # All of ours expire while we hold no valid one: removed by PATCH, the new one by PATCH.
    (ours,) = setting.store.credentials("certs")
    setting.advance(ours.expires - setting.clock.now() + timedelta(minutes=1))
    report = setting.tick()
    assert [k for k, _ in report.removed] == [ours.key_id] and len(report.created) == 1
    listed = setting.key_ids()
    assert their_key in listed and ours.key_id not in listed
    assert intent_of(listed[their_key]) is None
    assert {k for k in listed if k != their_key} == {
        c.key_id for c in setting.store.credentials("certs")
    }


def test_an_orphaned_certificate_of_ours_is_removed(setting: Setting) -> None:
    setting.tick()
    (ours,) = setting.store.credentials("certs")
    setting.key_ids()  # replicated, so a proof by our key is known everywhere
    stray = generate_key_pair("stray", setting.clock.now(), timedelta(days=2))
    setting.graph.patch_add_key(
        setting.record.app_object_id, stray.cert_der, credential_display_name(uuid.uuid4().hex)
    )
    orphan = next(k for k in setting.key_ids() if k != ours.key_id)
    report = setting.tick()
    assert [k for k, _ in report.removed] == [orphan]
    assert set(setting.key_ids()) == {ours.key_id}


def test_switches_both_ways_always_leave_a_ready_credential(setting: Setting) -> None:
    """secret -> certificate -> secret, a run's read every 5 minutes: always a ready one."""
    setting.switch(SECRET)
    setting.tick()
    start = setting.clock.now()
    step = timedelta(minutes=5)
    kinds_handed: list[CredentialKind] = []

    def run_for(hours: float) -> None:
        end = setting.clock.now() + timedelta(hours=hours)
        while setting.clock.now() < end:
            setting.tick()
            now = setting.clock.now()
            choice = choose_for_kind(
                setting.store.credentials("certs"), setting.record.kind, now, setting.policy
            )
            if isinstance(choice, Ready):
                kinds_handed.append(choice.credential.kind)
            else:
                assert now - start < setting.policy.propagation_delay + step, choice.reason
            setting.advance(step)

    run_for(1)
    setting.switch(CERT)
    run_for(2)
    assert kinds_handed[-1] is CERT
    assert {c.kind for c in setting.store.credentials("certs")} == {CERT}
    assert setting.secrets() == set()
    setting.switch(SECRET)
    run_for(2)
    assert kinds_handed[-1] is SECRET
    assert {c.kind for c in setting.store.credentials("certs")} == {SECRET}
    assert setting.key_ids() == {}
    switches = sum(1 for a, b in itertools.pairwise(kinds_handed) if a != b)
    assert switches == 2


def test_the_client_patch_keeps_keys_it_does_not_name(world: World) -> None:
    """GraphClient.patch_add_key writes back every listed key by its keyId (key null)."""
    graph: GraphClient = world.runtime.graph()
    app = graph.create_application(
        f"azsidecar-patch-{uuid.uuid4().hex[:8]}", [world.config.azure.consent_redirect_uri]
    )
    world.time.advance(timedelta(minutes=11))
    first = generate_key_pair("first", world.time.now(), timedelta(days=2))
    second = generate_key_pair("second", world.time.now(), timedelta(days=2))
    a = graph.patch_add_key(app.object_id, first.cert_der, "a")
    b = graph.patch_add_key(app.object_id, second.cert_der, "b")
    world.time.advance(timedelta(minutes=11))
    listed = {k.key_id: k.thumbprint for k in graph.get_application(app.object_id).keys}
    assert listed == {a.key_id: first.thumbprint, b.key_id: second.thumbprint}
    assert graph.patch_remove_key(app.object_id, a.key_id)
    world.time.advance(timedelta(minutes=11))
    assert [k.key_id for k in graph.get_application(app.object_id).keys] == [b.key_id]
    assert not graph.patch_remove_key(app.object_id, a.key_id)


def test_a_certificate_removed_outside_us_is_destroyed_after_the_grace_and_replaced(
    setting: Setting,
) -> None:
    setting.tick()
    (ours,) = setting.store.credentials("certs")
    setting.key_ids()
    assert setting.graph.patch_remove_key(setting.record.app_object_id, ours.key_id)
    setting.key_ids()  # replicated: every confirming read lacks it
    assert setting.tick().destroyed == []  # not before missing_grace
    setting.advance(setting.policy.missing_grace)
    report = setting.tick()
    assert report.destroyed == [ours.version] and len(report.created) == 1
    (new,) = setting.store.credentials("certs")
    assert set(setting.key_ids()) == {new.key_id}
