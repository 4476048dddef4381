"""The rotation executor (``rotation.run.rotate``) against Graph's narrow interface.

Each test runs twice: against the in-process :class:`tests.fakes.FakeGraph` and
against the HTTPS emulator through the real :class:`sidecar.graph.GraphClient`.
Vault is always the real OpenBao.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from sidecar.clock import Clock, ManualClock
from sidecar.graph import CredentialGraph
from sidecar.model import ConsentState, credential_display_name, intent_of
from sidecar.rotation.run import TickReport, rotate
from sidecar.store import IntegrationRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV
from tests.fakes import FakeGraph
from tests.world import START, World


@dataclass
class Setting:
    graph: CredentialGraph
    store: Store
    clock: Clock
    advance: Callable[[timedelta], object]
    policy: TimingPolicy
    record: IntegrationRecord

    def tick(self) -> TickReport:
        return rotate(self.record, self.graph, self.store, self.clock, self.policy)

    def listed(self) -> dict[str, str]:
        """Key id -> display name of the application's secrets, once every replica has them.

        Graph is eventually consistent (the emulator lags like Azure); the fake is not.
        """
        self.advance(timedelta(minutes=11))
        app = self.graph.get_application(self.record.app_object_id, fresh=True)
        return {p.key_id: p.display_name for p in app.passwords}


def _record(
    store: Store, object_id: str, app_id: str, display_name: str, clock: Clock
) -> IntegrationRecord:
    record = IntegrationRecord(
        name="exec",
        tenant_id=str(uuid.uuid4()),
        subscription_id=None,
        app_object_id=object_id,
        client_id=app_id,
        display_name=display_name,
        consent=ConsentState.GRANTED,
        created=clock.now(),
    )
    store.save_integration(record, cas=0)
    return record


@pytest.fixture(params=["fake", "emulator"])
def setting(request: pytest.FixtureRequest, kv: VaultKV) -> Setting:
    name = f"azsidecar-exec-{uuid.uuid4().hex[:8]}"
    if request.param == "fake":
        clock = ManualClock(START)
        fake = FakeGraph(clock)
        app = fake.create_application(name)
        store = Store(kv)
        return Setting(
            fake,
            store,
            clock,
            clock.advance,
            TimingPolicy(),
            _record(store, app.object_id, app.app_id, name, clock),
        )
    world: World = request.getfixturevalue("world")
    graph = world.runtime.graph()
    app = graph.create_application(name, [world.config.azure.consent_redirect_uri])
    world.time.advance(timedelta(minutes=11))  # past the emulator's replication lag
    record = _record(world.store, app.object_id, app.app_id, name, world.time)
    return Setting(graph, world.store, world.time, world.time.advance, world.config.timing, record)


def test_first_tick_creates_one_secret_stored_and_listed(setting: Setting) -> None:
    report = setting.tick()
    stored = setting.store.credentials("exec")
    assert len(stored) == 1
    assert report.created == [stored[0].key_id]
    listed = setting.listed()
    assert listed == {stored[0].key_id: credential_display_name(stored[0].intent_id)}
    assert setting.store.intents("exec")[0] == []
    assert setting.tick().created == []


def test_a_secret_coming_due_is_renewed_and_the_old_one_kept(setting: Setting) -> None:
    setting.tick()
    (first,) = setting.store.credentials("exec")
    due = first.expires - setting.policy.secret_renew_before + timedelta(minutes=1)
    setting.advance(due - setting.clock.now())
    report = setting.tick()
    stored = setting.store.credentials("exec")
    assert len(report.created) == 1 and len(stored) == 2
    assert set(setting.listed()) == {c.key_id for c in stored}
    assert first.key_id in setting.listed()


def test_a_credential_named_ours_that_vault_never_stored_is_removed(setting: Setting) -> None:
    setting.tick()
    (ours,) = setting.store.credentials("exec")
    orphan = setting.graph.add_password(
        setting.record.app_object_id,
        credential_display_name(uuid.uuid4().hex),
        setting.clock.now() + timedelta(days=30),
    )
    assert intent_of(setting.listed()[orphan.key_id]) is not None
    report = setting.tick()
    assert [key for key, _ in report.removed] == [orphan.key_id]
    assert set(setting.listed()) == {ours.key_id}
    assert [c.key_id for c in setting.store.credentials("exec")] == [ours.key_id]
