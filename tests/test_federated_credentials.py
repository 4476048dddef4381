"""An integration's federated credentials through the rotation executor, the CLI's
service, the probes and doctor: the real OpenBao (KV and Transit) and the
in-process :class:`tests.fakes.FakeGraph`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta

import hvac
import jwt
import pytest

from sidecar.clock import ManualClock
from sidecar.config import Config
from sidecar.daemon import Daemon
from sidecar.doctor.federated import FederatedContext
from sidecar.doctor.integrations import integration as doctor_integration
from sidecar.errors import ConfigError, GraphError, InputError
from sidecar.graph import GraphClient
from sidecar.integrations import Integrations
from sidecar.issuer.documents import ENTRA_AUDIENCE, IssuerIdentity
from sidecar.issuer.planner import IssuerPolicy
from sidecar.issuer.signing import Issuer
from sidecar.model import (
    ConsentState,
    CredentialKind,
    FederatedVersion,
    IntegrationRecord,
    Intent,
    IntentKind,
    federated_credential_name,
    federated_subject,
    intent_of_federated,
)
from sidecar.probing import PROBE_PHASE, PROBE_STACK, ProbeExecutor, federated_sign_in
from sidecar.ready import Ready, choose_for_kind
from sidecar.rotation.planner import FederatedTrust
from sidecar.rotation.run import TickReport, rotate
from sidecar.sensitive import Sensitive
from sidecar.store import Store
from sidecar.timing import TimingPolicy
from sidecar.transit import Transit
from sidecar.vault import VaultKV
from tests.fakes import FakeGraph
from tests.world import START, World

FED = CredentialKind.FEDERATED
SECRET = CredentialKind.SECRET
ISSUER_URL = "https://issuer.example.com/azsidecar"
TRUST = FederatedTrust(ISSUER_URL)
POLICY = TimingPolicy()


@dataclass
class Setting:
    fake: FakeGraph
    store: Store
    clock: ManualClock
    record: IntegrationRecord
    trust: FederatedTrust | None = TRUST

    def tick(self) -> TickReport:
        return rotate(self.record, self.fake, self.store, self.clock, POLICY, self.trust)

    def on_app(self) -> list[str]:
        """Names of the application's federated credentials."""
        return [f.name for f in self.fake.federated.get(self.record.app_object_id, [])]

    def switch(self, kind: CredentialKind) -> None:
        record, version = self.store.integration(self.record.name)
        self.record = replace(record, kind=kind)
        self.store.save_integration(self.record, cas=version)

    def handed_out(self) -> CredentialKind | None:
        stored = self.store.credentials(self.record.name)
        choice = choose_for_kind(stored, self.record.kind, self.clock.now(), POLICY)
        return choice.credential.kind if isinstance(choice, Ready) else None

    def federated_version(self) -> FederatedVersion:
        (credential,) = [c for c in self.store.credentials(self.record.name) if c.kind is FED]
        found = self.store.credential_version(self.record.name, credential.version)
        assert isinstance(found, FederatedVersion)
        return found


def make_record(fake: FakeGraph, clock: ManualClock, kind: CredentialKind) -> IntegrationRecord:
    name = f"fed-{uuid.uuid4().hex[:8]}"
    app = fake.create_application(name)
    return IntegrationRecord(
        name=name,
        tenant_id=str(uuid.uuid4()),
        subscription_id=None,
        app_object_id=app.object_id,
        client_id=app.app_id,
        display_name=name,
        consent=ConsentState.GRANTED,
        created=clock.now() - timedelta(days=1),
        kind=kind,
    )


@pytest.fixture
def setting(kv: VaultKV) -> Setting:
    clock = ManualClock(START)
    fake = FakeGraph(clock)
    store = Store(kv)
    record = make_record(fake, clock, FED)
    store.save_integration(record, cas=0)
    return Setting(fake, store, clock, record)


@pytest.fixture
def transit(root_client: hvac.Client) -> Iterator[Transit]:
    """Transit enabled at a fresh mount (as tests/test_issuer.py does)."""
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    yield Transit(root_client, mount)
    root_client.adapter.delete(f"/v1/sys/mounts/{mount}")


def test_the_first_tick_creates_one_federated_credential_and_stores_it(setting: Setting) -> None:
    report = setting.tick()
    (stored,) = setting.store.credentials(setting.record.name)
    assert stored.kind is FED and report.created == [stored.key_id]
    version = setting.federated_version()
    assert version.name == federated_credential_name(version.intent_id)
    assert version.subject == federated_subject(setting.record.name, version.intent_id)
    assert (version.issuer, version.audience) == (ISSUER_URL, ENTRA_AUDIENCE)
    assert version.client_id == setting.record.client_id
    assert version.created == setting.clock.now()
    (listed,) = setting.fake.federated[setting.record.app_object_id]
    assert (listed.key_id, listed.name, listed.issuer, listed.subject, listed.audience) == (
        version.key_id,
        version.name,
        version.issuer,
        version.subject,
        version.audience,
    )
    assert setting.store.intents(setting.record.name)[0] == []
    for _ in range(3):  # it never expires: nothing more, a year on
        setting.clock.advance(timedelta(days=120))
        assert setting.tick().created == []
    assert len(setting.on_app()) == 1


def test_without_an_issuer_the_tick_fails_saying_what_to_set(setting: Setting) -> None:
    setting.trust = None
    with pytest.raises(ConfigError, match=r"issuer\.url.*set \[issuer\] url"):
        setting.tick()
    assert setting.on_app() == []
    assert setting.store.intents(setting.record.name)[0] == []


def test_a_crash_after_the_create_leaves_an_orphan_that_is_removed(setting: Setting) -> None:
    intent = Intent("crashed1", setting.clock.now(), IntentKind.FEDERATED)
    setting.store.add_intent(setting.record.name, intent)
    setting.fake.add_federated_credential(
        setting.record.app_object_id,
        federated_credential_name("crashed1"),
        ISSUER_URL,
        federated_subject(setting.record.name, "crashed1"),
        ENTRA_AUDIENCE,
    )
    assert setting.tick().created == []  # the intent is young: its writer may still store it
    setting.clock.advance(POLICY.intent_timeout + timedelta(minutes=1))
    report = setting.tick()
    assert [reason for _, reason in report.removed] == [
        "orphan of intent crashed1: Vault never stored it"
    ]
    assert report.cleared == ["crashed1"] and len(report.created) == 1
    (name,) = setting.on_app()
    assert intent_of_federated(name) == setting.federated_version().intent_id


def test_someone_elses_federated_credentials_are_left_alone(setting: Setting) -> None:
    setting.fake.add_federated_credential(
        setting.record.app_object_id, "github-main", "https://token.actions", "repo:x", "aud"
    )
    for _ in range(3):
        setting.tick()
        setting.clock.advance(timedelta(hours=2))
    assert sorted(n.startswith("azsidecar-") for n in setting.on_app()) == [False, True]


def test_removed_outside_us_destroyed_after_the_grace_then_made_again(setting: Setting) -> None:
    setting.tick()
    first = setting.federated_version()
    setting.fake.federated[setting.record.app_object_id].clear()
    setting.clock.advance(timedelta(minutes=30))
    assert setting.tick().destroyed == []  # within missing_grace: replication lag
    setting.clock.advance(POLICY.missing_grace)
    report = setting.tick()
    assert report.destroyed == [1] and len(report.created) == 1
    assert setting.federated_version().key_id != first.key_id
    assert len(setting.on_app()) == 1


def test_switching_kinds_never_leaves_runs_without_a_ready_credential(setting: Setting) -> None:
    setting.switch(SECRET)
    setting.tick()  # a secret integration's first secret
    setting.clock.advance(timedelta(hours=1))
    assert setting.handed_out() is SECRET
    setting.switch(FED)
    for _ in range(12):  # five-minute ticks through the switch
        setting.tick()
        assert setting.handed_out() is not None
        setting.clock.advance(timedelta(minutes=5))
    assert [c.kind for c in setting.store.credentials(setting.record.name)] == [FED]
    assert setting.handed_out() is FED
    assert setting.fake.applications[setting.record.app_object_id].passwords == ()
    setting.switch(SECRET)
    for _ in range(12):
        setting.tick()
        assert setting.handed_out() is not None
        setting.clock.advance(timedelta(minutes=5))
    assert [c.kind for c in setting.store.credentials(setting.record.name)] == [SECRET]
    assert setting.on_app() == []


def test_switching_away_needs_no_issuer(setting: Setting) -> None:
    setting.tick()
    setting.trust = None
    setting.switch(SECRET)
    for _ in range(12):
        setting.tick()
        setting.clock.advance(timedelta(minutes=5))
    assert setting.on_app() == []


def test_a_moved_issuer_gets_a_new_credential_and_the_old_one_goes(setting: Setting) -> None:
    setting.tick()
    old = setting.federated_version()
    setting.clock.advance(timedelta(days=3))
    setting.trust = FederatedTrust("https://moved.example.com/azsidecar")
    most = 0
    for _ in range(12):
        setting.tick()
        most = max(most, len(setting.on_app()))
        assert setting.handed_out() is FED
        setting.clock.advance(timedelta(minutes=5))
    assert most == 2
    new = setting.federated_version()
    assert new.issuer == "https://moved.example.com/azsidecar" and new.key_id != old.key_id
    assert setting.on_app() == [new.name]


def test_create_and_set_kind_refuse_federated_without_an_issuer(setting: Setting) -> None:
    """Refused before anything is made in Azure or written in Vault."""
    fake, store, clock = setting.fake, setting.store, setting.clock
    refused = Integrations(store, fake, clock, POLICY)  # type: ignore[arg-type]
    apps = dict(fake.applications)
    with pytest.raises(ConfigError, match=r"\[issuer\] url"):
        refused.create("fed-cli", str(uuid.uuid4()), kind="federated")
    assert store.find_integration("fed-cli") is None and fake.applications == apps
    secret = make_record(fake, clock, SECRET)
    store.save_integration(secret, cas=0)
    with pytest.raises(ConfigError, match=r"\[issuer\] url"):
        refused.set_kind(secret.name, "federated")
    assert store.integration(secret.name)[0].kind is SECRET
    service = Integrations(store, fake, clock, POLICY, trust=TRUST)  # type: ignore[arg-type]
    assert service.set_kind(secret.name, "federated") == (replace(secret, kind=FED), True)


def test_a_probe_signs_in_with_a_token_of_the_issuer(setting: Setting, transit: Transit) -> None:
    setting.tick()
    version = setting.federated_version()
    clock = ManualClock(START)
    issuer = Issuer(transit, IssuerIdentity(ISSUER_URL), clock, key_name="k", policy=IssuerPolicy())
    issuer.maintain()
    seen: list[tuple[str, str, dict[str, object]]] = []

    def sign_in(tenant: str, client_id: str, assertion: Sensitive) -> bool | None:
        claims = jwt.decode(assertion.reveal(), options={"verify_signature": False})
        seen.append((tenant, client_id, claims))
        return True

    probe = federated_sign_in(issuer, sign_in)
    assert probe("t", setting.record.name, version) is None  # key not published long enough
    assert seen == []
    created = transit.read_key("k").versions[1].created
    clock.set(created + IssuerPolicy().publish_ahead + timedelta(minutes=1))
    assert probe("t", setting.record.name, version) is True
    ((tenant, client_id, claims),) = seen
    assert (tenant, client_id) == ("t", version.client_id)
    assert claims["sub"] == version.subject and claims["aud"] == version.audience
    assert claims["iss"] == ISSUER_URL
    assert (claims["stack"], claims["phase"]) == (PROBE_STACK, PROBE_PHASE)
    assert claims["integration"] == setting.record.name


def test_the_probe_loop_verifies_a_federated_credential(setting: Setting) -> None:
    answers = iter([False, False, *([True] * 50)])
    calls: list[str] = []

    def sign_in_federated(tenant: str, integration: str, version: FederatedVersion) -> bool:
        calls.append(version.name)
        return next(answers)

    def no_secret(tenant: str, client_id: str, secret: Sensitive) -> bool | None:
        raise AssertionError("a federated credential is never signed in with as a secret")

    probes = ProbeExecutor(
        setting.store,
        setting.clock,
        POLICY,
        no_secret,
        home_tenant=str(uuid.uuid4()),
        sign_in_federated=sign_in_federated,
    )
    report = setting.tick()
    probes.adopt(setting.record.name, report.stored_after)
    for _ in range(40):
        probes.probe_integration(setting.record.name)
        setting.clock.advance(POLICY.probe_interval)
    (record,) = setting.store.probes(setting.record.name).values()
    assert calls and record.last_failure is not None and record.streak_since is not None
    assert setting.handed_out() is FED


def test_doctor_checks_the_listing_and_the_issuer_key(setting: Setting, transit: Transit) -> None:
    setting.tick()
    setting.clock.advance(timedelta(hours=1))
    issuer = Issuer(
        transit, IssuerIdentity(ISSUER_URL), setting.clock, key_name="k", policy=IssuerPolicy()
    )
    config = Config()

    def lister(object_id: str) -> list:  # type: ignore[type-arg]
        return setting.fake.list_federated_credentials(object_id)

    def checks(context: FederatedContext) -> list[tuple[str, str]]:
        found = doctor_integration(
            setting.store,
            setting.record.name,
            setting.clock.now(),
            config,
            _no_sign_in,
            None,
            context,
        )
        return [(c.status, c.line) for c in found]

    missing_key = checks(FederatedContext(lister, issuer))
    assert [s for s, _ in missing_key] == ["ok", "ok", "fail"]
    assert "cannot be read through Transit" in missing_key[2][1]
    issuer.maintain()
    created = transit.read_key("k").versions[1].created
    setting.clock.set(created + timedelta(hours=1))
    young = checks(FederatedContext(lister, issuer))
    assert [s for s, _ in young] == ["ok", "ok", "warn"]
    assert "published long enough" in young[2][1]
    setting.clock.advance(IssuerPolicy().publish_ahead + timedelta(hours=1))
    assert [s for s, _ in checks(FederatedContext(lister, issuer))] == ["ok", "ok", "ok"]
    setting.fake.federated[setting.record.app_object_id].clear()
    gone = checks(FederatedContext(lister, issuer))
    assert gone[1][0] == "fail" and "not on the application" in gone[1][1]
    no_issuer = checks(FederatedContext(lister, None))
    assert no_issuer[2][0] == "fail" and "[issuer] url" in no_issuer[2][1]


def _no_sign_in(tenant: str, client_id: str, secret: str) -> tuple[int, list[int], str]:
    raise AssertionError("a federated integration is not checked by a secret's sign-in")


def test_graph_client_is_a_credential_graph() -> None:
    """The protocol the fake implements is the one the real client has."""
    for name in (
        "add_federated_credential",
        "list_federated_credentials",
        "remove_federated_credential",
    ):
        assert callable(getattr(GraphClient, name)) and callable(getattr(FakeGraph, name))
    with pytest.raises(GraphError):
        FakeGraph(ManualClock(START)).list_federated_credentials("unknown")


def test_a_federated_integration_without_an_issuer_fails_alone(world: World) -> None:
    """The daemon records the ConfigError for that integration; the others rotate."""
    rt = world.runtime
    service = Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        redirect_uri=rt.config.azure.consent_redirect_uri,
    )
    tenant = world.add_tenant()
    secret = service.create("plain", tenant.tenant_id)
    federated = service.create("wants-fed", tenant.tenant_id)
    record, version = world.store.integration(federated.name)
    world.store.save_integration(replace(record, kind=FED), cas=version)
    daemon = Daemon(world.runtime, holder="t")
    world.time.advance(timedelta(hours=23))  # the secrets are due for renewal
    assert not daemon.tick()
    assert daemon.health.failing == {"wants-fed"}
    assert "ConfigError" in daemon.health.last_error
    assert "[issuer] url" in daemon.health.last_error
    renewed = [r for r in daemon.reports if r.integration == secret.name]
    assert renewed and renewed[-1].created, "the other integration kept rotating"


def test_a_switch_to_federated_waits_until_the_issuer_key_can_sign(
    setting: Setting, transit: Transit
) -> None:
    """Switching before the key is published for publish_ahead would retire the secret
    while every read of a token is refused: the switch is refused until then, saying when.
    Found by the long runs' kind-switch test (tests/test_federated_long_runs.py)."""
    fake, store, clock = setting.fake, setting.store, setting.clock
    issuer = Issuer(transit, IssuerIdentity(ISSUER_URL), clock, key_name="k", policy=IssuerPolicy())
    service = Integrations(
        store,
        fake,  # type: ignore[arg-type]
        clock,
        POLICY,
        trust=TRUST,
        signing_from=issuer.signing_from,
    )
    secret = make_record(fake, clock, SECRET)
    store.save_integration(secret, cas=0)
    with pytest.raises(InputError, match="not published long enough to sign until") as no_key:
        service.set_kind(secret.name, "federated")
    assert f"{clock.now() + IssuerPolicy().publish_ahead:%Y-%m-%d %H:%M}" in str(no_key.value)
    issuer.maintain()
    created = transit.read_key("k").versions[1].created
    clock.set(created + timedelta(hours=1))
    first = created + IssuerPolicy().publish_ahead
    with pytest.raises(InputError, match=f"until {first:%Y-%m-%d %H:%M} UTC"):
        service.set_kind(secret.name, "federated")
    assert store.integration(secret.name)[0].kind is SECRET
    clock.set(first + timedelta(minutes=1))
    assert service.set_kind(secret.name, "federated") == (replace(secret, kind=FED), True)
