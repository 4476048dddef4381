"""The shared read path: one Vault round trip when warm, never a destroyed or unready secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sidecar.errors import NotFoundError, NotReadyError
from sidecar.model import Phase
from sidecar.resolve import ReadCache, resolve_credential
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, SecretVersion, StackRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import KVMetadata, KVVersion, VaultKV

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = TimingPolicy()


class CountingKV(VaultKV):
    """The real adapter, counting the requests it sends to Vault."""

    def __init__(self, kv: VaultKV) -> None:
        super().__init__(kv.client, kv.mount, kv.prefix)
        self.requests = 0

    def read(self, path: str, version: int | None = None) -> KVVersion:
        self.requests += 1
        return super().read(path, version)

    def read_metadata(self, path: str) -> KVMetadata:
        self.requests += 1
        return super().read_metadata(path)


def secret(text: str, created: datetime) -> SecretVersion:
    return SecretVersion(
        client_id="app",
        secret=Sensitive(text),
        key_id=f"key-{text}",
        tenant_id="tenant",
        intent_id=f"i{int(created.timestamp())}",
        created=created,
        expires=created + timedelta(hours=24),
    )


@pytest.fixture
def seeded(kv: VaultKV) -> Store:
    store = Store(kv)
    record = IntegrationRecord(
        name="web",
        tenant_id="tenant",
        subscription_id="sub",
        app_object_id="obj",
        client_id="app",
        display_name="azsidecar-web",
        consent="granted",
        created=NOW,
    )
    store.save_integration(record, cas=0)
    store.save_stack(StackRecord(name="A", read="web", write="web"), cas=0)
    store.store_secret("web", secret("older", NOW - timedelta(hours=20)))
    store.store_secret("web", secret("newer", NOW - timedelta(hours=1)))
    return store


def resolve(kv: VaultKV, cache: ReadCache | None = None, now: datetime = NOW) -> Any:
    return resolve_credential(kv, "A", Phase.APPLY, now, POLICY, cache)


def test_warm_reads_cost_one_round_trip(seeded: Store) -> None:
    kv = CountingKV(seeded.kv)
    cache = ReadCache()
    assert resolve(kv, cache).client_secret.reveal() == "newer"
    kv.requests = 0
    for _ in range(5):
        assert resolve(kv, cache).client_secret.reveal() == "newer"
    assert kv.requests == 5


def test_a_destroyed_version_is_never_handed_out_even_when_cached(seeded: Store) -> None:
    cache = ReadCache()
    assert resolve(seeded.kv, cache).client_secret.reveal() == "newer"
    newest = seeded.credentials("web")[-1]
    seeded.destroy_secret("web", newest.version)
    assert resolve(seeded.kv, cache).client_secret.reveal() == "older"


def test_a_new_version_is_handed_out_only_once_ready(seeded: Store) -> None:
    cache = ReadCache()
    resolve(seeded.kv, cache)
    seeded.store_secret("web", secret("fresh", NOW))
    assert resolve(seeded.kv, cache).client_secret.reveal() == "newer"
    later = NOW + POLICY.propagation_delay
    assert resolve(seeded.kv, cache, later).client_secret.reveal() == "fresh"


def test_nothing_ready_and_nothing_there(seeded: Store, kv: VaultKV) -> None:
    store = Store(kv)
    store.save_stack(StackRecord(name="B", read="ghost", write=None), cas=0)
    with pytest.raises(NotFoundError, match="no integration attached for phase apply"):
        resolve_credential(kv, "B", Phase.APPLY, NOW, POLICY)
    with pytest.raises(NotFoundError, match="'ghost' of stack 'B' does not exist"):
        resolve_credential(kv, "B", Phase.PLAN, NOW, POLICY)
    with pytest.raises(NotFoundError, match="no stack named"):
        resolve_credential(kv, "nope", Phase.PLAN, NOW, POLICY)
    seeded.save_integration(
        IntegrationRecord(
            name="new",
            tenant_id="t",
            subscription_id=None,
            app_object_id="o",
            client_id="c",
            display_name="d",
            consent="pending",
            created=NOW,
        ),
        cas=0,
    )
    seeded.save_stack(StackRecord(name="C", read="new", write="new"), cas=0)
    with pytest.raises(NotReadyError) as info:
        resolve_credential(kv, "C", Phase.PLAN, NOW, POLICY)
    assert info.value.ready_at is None
    seeded.store_secret("new", secret("brand-new", NOW))
    with pytest.raises(NotReadyError) as info:
        resolve_credential(kv, "C", Phase.PLAN, NOW, POLICY)
    assert info.value.ready_at == NOW + POLICY.propagation_delay
