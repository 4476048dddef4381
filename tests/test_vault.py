"""The Vault adapter against a real OpenBao dev server."""

from __future__ import annotations

import os

import hvac
import pytest

from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.errors import (
    VaultConflict,
    VaultError,
    VaultForbidden,
    VaultNotFound,
    VaultUnavailable,
)
from sidecar.vault import VaultKV, capabilities_self, check_segment, connect


def test_write_read_versions(kv: VaultKV) -> None:
    assert kv.write("credentials/web", {"secret": "one"}, cas=0) == 1
    assert kv.write("credentials/web", {"secret": "two"}, cas=1) == 2
    latest = kv.read("credentials/web")
    assert (latest.version, latest.data) == (2, {"secret": "two"})
    assert kv.read("credentials/web", version=1).data == {"secret": "one"}
    assert latest.created_time is not None


def test_check_and_set_conflict(kv: VaultKV) -> None:
    kv.write("state/lease", {"holder": "a"}, cas=0)
    with pytest.raises(VaultConflict) as info:
        kv.write("state/lease", {"holder": "b"}, cas=0)
    assert "check-and-set" in str(info.value)
    assert info.value.path.endswith("state/lease")
    with pytest.raises(VaultConflict):
        kv.write("state/lease", {"holder": "b"}, cas=5)
    assert kv.read("state/lease").data == {"holder": "a"}


def test_missing_path(kv: VaultKV) -> None:
    with pytest.raises(VaultNotFound) as info:
        kv.read("integrations/nope")
    assert "integrations/nope" in str(info.value)
    with pytest.raises(VaultNotFound):
        kv.read_metadata("integrations/nope")
    assert kv.list("integrations") == []


def test_metadata_and_custom_metadata(kv: VaultKV) -> None:
    kv.write("credentials/app", {"s": "1"}, cas=0)
    kv.write("credentials/app", {"s": "2"}, cas=1)
    kv.set_custom_metadata("credentials/app", {"v1": "k1|i1|10|20", "v2": "k2|i2|30|40"})
    meta = kv.read_metadata("credentials/app")
    assert meta.current_version == 2
    assert meta.custom_metadata == {"v1": "k1|i1|10|20", "v2": "k2|i2|30|40"}
    assert meta.live_versions() == [1, 2]
    # A read of a version also carries the key-level custom metadata.
    assert kv.read("credentials/app").custom_metadata["v2"] == "k2|i2|30|40"


def test_custom_metadata_limits_refused_before_writing(kv: VaultKV) -> None:
    kv.write("credentials/app", {"s": "1"}, cas=0)
    with pytest.raises(VaultError, match="64"):
        kv.set_custom_metadata("credentials/app", {f"k{i}": "v" for i in range(65)})
    with pytest.raises(VaultError, match="512"):
        kv.set_custom_metadata("credentials/app", {"k": "x" * 513})
    assert kv.read_metadata("credentials/app").custom_metadata == {}


def test_destroy_versions(kv: VaultKV) -> None:
    for cas in range(3):
        kv.write("credentials/app", {"n": cas}, cas=cas)
    kv.destroy_versions("credentials/app", [1, 2])
    meta = kv.read_metadata("credentials/app")
    assert meta.live_versions() == [3]
    assert meta.versions[1].destroyed
    with pytest.raises(VaultNotFound):
        kv.read("credentials/app", version=1)
    assert kv.read("credentials/app").data == {"n": 2}


def test_list_and_delete_all(kv: VaultKV) -> None:
    kv.write("integrations/b", {"x": 1}, cas=0)
    kv.write("integrations/a", {"x": 1}, cas=0)
    kv.write("integrations/sub/c", {"x": 1}, cas=0)
    assert kv.list("integrations") == ["a", "b", "sub/"]
    kv.delete_all("integrations/a")
    assert kv.list("integrations") == ["b", "sub/"]
    with pytest.raises(VaultNotFound):
        kv.read("integrations/a")


def test_forbidden_token(openbao: OpenBaoDevServer, root_client: hvac.Client, kv: VaultKV) -> None:
    root_client.sys.create_or_update_policy(
        "only-integrations",
        f'path "secret/data/{kv.prefix}/integrations/*" {{ capabilities = ["read"] }}',
    )
    token = root_client.auth.token.create(policies=["only-integrations"], ttl="5m")
    limited = VaultKV(
        connect(openbao.addr, token=token["auth"]["client_token"]), "secret", kv.prefix
    )
    kv.write("integrations/a", {"x": 1}, cas=0)
    kv.write("credentials/a", {"secret": "s"}, cas=0)
    assert limited.read("integrations/a").data == {"x": 1}
    with pytest.raises(VaultForbidden):
        limited.read("credentials/a")
    caps = capabilities_self(limited.client, f"secret/data/{kv.prefix}/integrations/a")
    assert caps == {"read"}
    assert capabilities_self(limited.client, f"secret/data/{kv.prefix}/credentials/a") == {"deny"}


def test_unreachable_vault_is_unavailable() -> None:
    client = connect("http://127.0.0.1:9", token="x", timeout=2)
    with pytest.raises(VaultUnavailable, match="cannot reach Vault"):
        VaultKV(client).read("integrations/a")


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", "-x", "a\nb", "x" * 200])
def test_check_segment_refuses_escapes(bad: str) -> None:
    with pytest.raises(VaultError, match="invalid"):
        check_segment(bad, "name")


def test_ensure_mount_creates_kv2(root_client: hvac.Client) -> None:
    kv = VaultKV(root_client, mount="kvtest", prefix="p")
    kv.ensure_mount()
    kv.ensure_mount()
    assert kv.write("x", {"a": 1}, cas=0) == 1


def test_server_stops_by_pid() -> None:
    server = OpenBaoDevServer().start()
    pid = server.process.pid if server.process else 0
    server.cleanup()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
