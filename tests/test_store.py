"""The store: reads never write; the daemon's explicit repair mends a stale credential index."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sidecar.model import SecretVersion
from sidecar.store import Store
from sidecar.vault import VaultKV
from tests import records

NOW = datetime.now(UTC).replace(microsecond=0)


class WriteCountingKV(VaultKV):
    """The real adapter, counting the writes it sends to Vault."""

    def __init__(self, kv: VaultKV) -> None:
        super().__init__(kv.client, kv.mount, kv.prefix)
        self.writes = 0

    def write(self, path: str, data: Mapping[str, Any], cas: int | None) -> int:
        self.writes += 1
        return super().write(path, data, cas)

    def set_custom_metadata(self, path: str, custom: Mapping[str, str]) -> None:
        self.writes += 1
        super().set_custom_metadata(path, custom)


def secret(text: str, created: datetime) -> SecretVersion:
    return records.secret(text, created, intent_id=f"i-{text}")


def test_reading_credentials_never_writes_and_the_repair_indexes_a_crashed_write(
    kv: VaultKV,
) -> None:
    counting = WriteCountingKV(kv)
    store = Store(counting)
    first = store.store_secret("web", secret("first", NOW - timedelta(hours=2)))
    # A crash between writing a version and indexing it: the version is live, unindexed.
    crashed = counting.write("credentials/web", secret("second", NOW).to_data(), cas=1)
    writes = counting.writes

    assert store.credentials("web") == [first]
    assert store.credentials("web", repair=False) == [first]
    assert counting.writes == writes, "a read wrote to Vault"

    repaired = store.repair_credentials("web")
    assert [c.version for c in repaired] == [first.version, crashed]
    assert repaired[1].key_id == "key-second"
    assert counting.writes == writes + 1
    assert store.credentials("web") == repaired
    assert store.repair_credentials("web") == repaired
    assert counting.writes == writes + 1, "an index in line is not rewritten"


def test_the_repair_drops_versions_no_longer_live(kv: VaultKV) -> None:
    store = Store(kv)
    first = store.store_secret("web", secret("first", NOW - timedelta(hours=2)))
    second = store.store_secret("web", secret("second", NOW))
    kv.destroy_versions("credentials/web", [first.version])  # by hand, not through the store
    assert store.credentials("web") == [second]
    assert "v1" in kv.read_metadata("credentials/web").custom_metadata, "the read wrote"
    assert store.repair_credentials("web") == [second]
    assert "v1" not in kv.read_metadata("credentials/web").custom_metadata
