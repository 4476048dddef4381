"""The shared read path: no Vault round trip when warm, never a removed or unready secret."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sidecar.errors import NotFoundError, NotReadyError
from sidecar.model import ConsentState, Phase
from sidecar.resolve import ReadCache, resolve_credential, resolve_from_cache
from sidecar.store import IntegrationRecord, StackRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import KVMetadata, KVVersion, VaultKV
from tests.ids import guid
from tests.records import secret, web_record

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


@pytest.fixture
def seeded(kv: VaultKV) -> Store:
    store = Store(kv)
    store.save_integration(web_record(NOW), cas=0)
    store.save_stack(StackRecord(name="A", read="web", write="web"), cas=0)
    store.store_secret("web", secret("older", NOW - timedelta(hours=20)))
    store.store_secret("web", secret("newer", NOW - timedelta(hours=1)))
    return store


def resolve(kv: VaultKV, cache: ReadCache | None = None, now: datetime = NOW) -> Any:
    return resolve_credential(kv, "A", Phase.APPLY, now, POLICY, cache)


def test_warm_reads_cost_no_round_trip_within_the_index_ttl(seeded: Store) -> None:
    kv = CountingKV(seeded.kv)
    cache = ReadCache(index_ttl=2.0)
    assert resolve(kv, cache).client_secret.reveal() == "newer"
    kv.requests = 0
    for tick in range(5):
        assert resolve(kv, cache, NOW + timedelta(seconds=tick * 0.4)).client_secret
    assert kv.requests == 0
    assert resolve(kv, cache, NOW + timedelta(seconds=2)).client_secret.reveal() == "newer"
    assert kv.requests == 1, "an expired index costs exactly one read"


def test_a_destroyed_version_is_never_handed_out_once_the_index_is_read(seeded: Store) -> None:
    cache = ReadCache(index_ttl=0.0)
    assert resolve(seeded.kv, cache).client_secret.reveal() == "newer"
    newest = seeded.credentials("web")[-1]
    seeded.destroy_secret("web", newest.version)
    assert resolve(seeded.kv, cache).client_secret.reveal() == "older"


def test_a_hand_destroyed_version_lags_by_at_most_the_index_ttl(seeded: Store) -> None:
    """The documented bound: an operator's destroy shows within ``index_ttl``."""
    cache = ReadCache(index_ttl=2.0)
    assert resolve(seeded.kv, cache).client_secret.reveal() == "newer"
    newest = seeded.credentials("web")[-1]
    seeded.destroy_secret("web", newest.version)
    assert resolve(seeded.kv, cache, NOW + timedelta(seconds=1)).client_secret.reveal() == "newer"
    assert resolve(seeded.kv, cache, NOW + timedelta(seconds=2)).client_secret.reveal() == "older"


def test_a_cached_index_stops_handing_out_a_secret_before_the_daemon_removes_it(
    seeded: Store,
) -> None:
    """The daemon removes a secret only once expired; readers stop ``ready_safety_margin`` before.

    A warm index still lists the secret, yet the choice is made with the current
    time, so it is refused from ``expires - ready_safety_margin`` on.
    """
    cache = ReadCache(index_ttl=600)  # ten minutes, inside the margin
    store = seeded
    store.save_stack(StackRecord(name="D", read="solo", write="solo"), cas=0)
    record, _ = store.integration("web")
    store.save_integration(replace(record, name="solo"), cas=0)
    created = NOW - timedelta(hours=23, minutes=29)  # 31 minutes left
    store.store_secret("solo", secret("last", created))
    kv = CountingKV(store.kv)
    got = resolve_credential(kv, "D", Phase.PLAN, NOW, POLICY, cache)
    assert got.client_secret.reveal() == "last"
    kv.requests = 0
    with pytest.raises(NotReadyError, match="no secret that is or will become ready"):
        resolve_credential(kv, "D", Phase.PLAN, NOW + timedelta(minutes=2), POLICY, cache)
    assert kv.requests == 0, "the refusal came from the cached index"


def test_the_index_cache_is_off_when_the_safety_margin_does_not_cover_it(seeded: Store) -> None:
    tight = replace(POLICY, ready_safety_margin=timedelta(seconds=1))
    kv = CountingKV(seeded.kv)
    cache = ReadCache(index_ttl=2.0)
    for _ in range(3):
        resolve_credential(kv, "A", Phase.APPLY, NOW, tight, cache)
    assert kv.requests == 2 + 3, "two records once, then the index on every call"


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
            tenant_id=guid("t"),
            subscription_id=None,
            app_object_id=guid("o"),
            client_id=guid("c"),
            display_name="d",
            consent=ConsentState.PENDING,
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


def test_resolve_from_cache_answers_only_without_io(seeded: Store) -> None:
    cache = ReadCache()
    assert resolve_from_cache("A", Phase.APPLY, NOW, POLICY, cache) is None
    resolve(seeded.kv, cache)
    warm = resolve_from_cache("A", Phase.APPLY, NOW + timedelta(seconds=1), POLICY, cache)
    assert warm is not None and warm.client_secret.reveal() == "newer"
    assert resolve_from_cache("A", Phase.APPLY, NOW + timedelta(seconds=3), POLICY, cache) is None
    with pytest.raises(NotFoundError, match="no integration attached"):
        seeded.save_stack(StackRecord(name="E", read="web", write=None), cas=0)
        resolve_credential(seeded.kv, "E", Phase.PLAN, NOW, POLICY, cache)
        resolve_from_cache("E", Phase.APPLY, NOW, POLICY, cache)


def test_an_integration_made_again_under_its_name_never_gets_the_old_secret(
    seeded: Store,
) -> None:
    """Regression (found by the chaos schedules, #21): deleting an integration deletes
    its credentials key, so a new integration of the same name numbers its versions
    from 1 again. Readers kept version data by (name, version) for good, and handed
    the deleted application's secret to runs of the new one (AADSTS700016)."""
    cache = ReadCache(index_ttl=2.0)
    assert resolve(seeded.kv, cache).client_secret.reveal() == "newer"  # v2 cached
    assert resolve(seeded.kv, cache, now=NOW - timedelta(hours=4)).client_secret.reveal() == (
        "older"  # v1 cached too (an older time, when only v1 had propagated)
    )
    seeded.delete_integration("web")
    again = web_record(
        NOW, app_object_id=guid("obj2"), client_id=guid("app2"), display_name="azsidecar-web-again"
    )
    seeded.save_integration(again, cas=0)
    seeded.store_secret("web", secret("first-of-new", NOW - timedelta(hours=3)))
    seeded.store_secret("web", secret("still-propagating", NOW - timedelta(minutes=1)))
    later = NOW + timedelta(seconds=3)  # past the index ttl
    cache.records_ttl = 0.0
    answer = resolve(seeded.kv, cache, now=later)  # v1 of the new integration is chosen
    assert answer.client_secret.reveal() == "first-of-new"
    assert answer.key_id == "key-first-of-new"
