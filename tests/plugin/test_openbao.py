"""The plugin inside a real OpenBao: registered by `azsidecar plugin install`, at ``azure/``."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import hvac
import hvac.exceptions
import pytest
import requests

from sidecar.model import ConsentState
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, SecretVersion, StackRecord, Store
from sidecar.vault import VaultKV
from tests.hvac_read import list_json, read_json
from tests.ids import guid
from tests.plugin.conftest import PluginBao, plugin_alive, wait_for

PREFIX = "azsidecar"
NOW = datetime.now(UTC).replace(microsecond=0)


def _integration(name: str, tenant: str) -> IntegrationRecord:
    return IntegrationRecord(
        name=name,
        tenant_id=tenant,
        subscription_id=guid(f"sub-{name}"),
        app_object_id=guid(f"obj-{name}"),
        client_id=guid(f"app-{name}"),
        display_name=f"azsidecar {name}",
        consent=ConsentState.GRANTED,
        created=NOW - timedelta(days=1),
    )


def _secret(name: str, text: str, created: datetime) -> SecretVersion:
    return SecretVersion(
        client_id=guid(f"app-{name}"),
        secret=Sensitive(text),
        key_id=f"key-{name}-{int(created.timestamp())}",
        tenant_id=guid(f"tenant-{name}"),
        intent_id=f"intent{int(created.timestamp())}",
        created=created,
        expires=created + timedelta(hours=24),
    )


@pytest.fixture(scope="module")
def seeded(plugin_bao: PluginBao) -> PluginBao:
    """Stack A: plan -> I1 (secret minted just now), apply -> I2 (an hour-old secret)."""
    store = Store(VaultKV(plugin_bao.client, mount="secret", prefix=PREFIX))
    store.save_integration(_integration("I1", guid("tenant-I1")), cas=0)
    store.save_integration(_integration("I2", guid("tenant-I2")), cas=0)
    store.save_stack(StackRecord(name="A", read="I1", write="I2"), cas=0)
    store.store_secret("I1", _secret("I1", "fresh-secret-I1", NOW))
    store.store_secret("I2", _secret("I2", "ready-secret-I2", NOW - timedelta(hours=1)))
    _configure(plugin_bao)
    return plugin_bao


def _configure(pb: PluginBao) -> None:
    pb.client.write_data(
        "azure/config",
        data={"vault_addr": pb.server.addr, "prefix": PREFIX, "token": pb.server.root_token},
    )


def _raw(pb: PluginBao, method: str, path: str) -> requests.Response:
    return requests.request(
        method,
        f"{pb.server.addr}/v1/{path}",
        headers={"X-Vault-Token": pb.server.root_token},
        timeout=30,
    )


def test_config_round_trip_never_returns_secrets(seeded: PluginBao) -> None:
    response = _raw(seeded, "GET", "azure/config")
    assert response.status_code == 200
    assert seeded.server.root_token not in response.text
    data = response.json()["data"]
    assert data["token_set"] is True
    assert data["approle_secret_id_set"] is False
    assert data["auth_method"] == "token"
    assert "token" not in data
    assert data["prefix"] == PREFIX


def test_config_rejects_bad_values(seeded: PluginBao) -> None:
    for body, message in [
        ({"propagation_delay": "soon"}, "not a duration"),
        ({"vault_addr": "ftp://x"}, "vault_addr"),
        ({"approle_role_id": "r"}, "together"),
    ]:
        with pytest.raises(hvac.exceptions.InvalidRequest, match=message):
            seeded.client.write_data("azure/config", data=body)
    assert read_json(seeded.client, "azure/config")["data"]["vault_addr"] == seeded.server.addr


def test_timing_overrides_are_stored_as_durations(seeded: PluginBao) -> None:
    seeded.client.write_data("azure/config", data={"ready_safety_margin": "45m"})
    assert read_json(seeded.client, "azure/config")["data"]["ready_safety_margin"] == "45m"
    seeded.client.write_data("azure/config", data={"ready_safety_margin": "0"})
    assert read_json(seeded.client, "azure/config")["data"]["ready_safety_margin"] == ""
    # Verified readiness: the readers' probe window must match the daemon's.
    seeded.client.write_data("azure/config", data={"probe_window": "1m"})
    assert read_json(seeded.client, "azure/config")["data"]["probe_window"] == "1m"


def test_lists_and_reads_stacks_and_integrations(seeded: PluginBao) -> None:
    assert list_json(seeded.client, "azure/stacks")["data"]["keys"] == ["A"]
    assert list_json(seeded.client, "azure/integrations")["data"]["keys"] == ["I1", "I2"]
    stack = read_json(seeded.client, "azure/stacks/A")["data"]
    assert (stack["read"], stack["write"]) == ("I1", "I2")
    integration = read_json(seeded.client, "azure/integrations/I2")["data"]
    assert integration["tenant_id"] == guid("tenant-I2")
    assert integration["client_id"] == guid("app-I2")
    assert seeded.client.read("azure/stacks/nope") is None


def test_reads_never_show_secret_fields(seeded: PluginBao) -> None:
    kv = VaultKV(seeded.client, mount="secret", prefix=PREFIX)
    kv.write("integrations/leaky", {"tenant_id": "t", "client_secret": "must-not-show"}, cas=0)
    response = _raw(seeded, "GET", "azure/integrations/leaky")
    assert response.status_code == 200
    assert "must-not-show" not in response.text


def _plugin_pid(pb: PluginBao) -> int:
    wait_for(lambda: len(pb.plugin_pids()) == 1, timeout=10)
    return pb.plugin_pids()[0]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "azure/creds/A/deploy", 400, "invalid phase"),
        ("GET", "azure/creds/A/PLAN", 400, "invalid phase"),
        ("GET", "azure/creds/a%20b/plan", 400, "invalid stack name"),
        ("GET", "azure/creds/..%2F..%2Fsys/plan", None, None),
        ("GET", "azure/stacks/..", None, None),
        ("GET", "azure/integrations/.hidden", 400, "invalid integration name"),
        ("GET", "azure/nothing/here", 404, None),
        ("GET", "azure/creds/A/plan/extra", 404, None),
        ("DELETE", "azure/stacks/A", 405, "unsupported operation"),
        ("POST", "azure/creds/A/plan", 405, "unsupported operation"),
    ],
)
def test_bad_input_is_an_error_response_not_a_crash(
    seeded: PluginBao, method: str, path: str, status: int | None, message: str | None
) -> None:
    before = _plugin_pid(seeded)
    response = _raw(seeded, method, path)
    assert 400 <= response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    if message is not None:
        assert message in " ".join(response.json()["errors"])
    assert seeded.plugin_pids() == [before]


def test_path_help(seeded: PluginBao) -> None:
    result = seeded.bao("path-help", "azure/creds/A/apply")
    assert "ready Azure credential" in result.stdout
    assert "phase" in result.stdout


@pytest.fixture
def resolver() -> None:
    pytest.importorskip("sidecar.resolve")


@pytest.mark.usefixtures("resolver")
def test_reads_the_ready_credential_with_the_cli_and_hvac(seeded: PluginBao) -> None:
    result = seeded.bao("read", "-format=json", "azure/creds/A/apply")
    body = json.loads(result.stdout)
    data = body["data"]
    assert data["client_secret"] == "ready-secret-I2"
    assert (data["client_id"], data["tenant_id"], data["integration"]) == (
        guid("app-I2"),
        guid("tenant-I2"),
        "I2",
    )
    assert data["subscription_id"] == guid("sub-I2")
    expires = datetime.fromisoformat(data["expires_at"])
    assert expires == NOW + timedelta(hours=23)
    safe = (expires - timedelta(minutes=30) - datetime.now(UTC)).total_seconds()
    assert abs(body["lease_duration"] - safe) < 30
    assert body["renewable"] is False
    assert body["lease_id"].startswith("azure/creds/A/apply/")

    via_hvac = read_json(seeded.client, "azure/creds/A/apply")
    assert via_hvac["data"]["client_secret"] == "ready-secret-I2"
    seeded.client.sys.revoke_lease(via_hvac["lease_id"])  # type: ignore[no-untyped-call]


@pytest.mark.usefixtures("resolver")
def test_a_credential_not_ready_says_when_to_retry(seeded: PluginBao) -> None:
    response = _raw(seeded, "GET", "azure/creds/A/plan")
    assert response.status_code == 400
    message = " ".join(response.json()["errors"])
    assert "retry after" in message
    assert "fresh-secret-I1" not in response.text
    ready_at = NOW + timedelta(minutes=10)
    assert ready_at.isoformat().replace("+00:00", "Z") in message
    # The same answer as data beside the message, for programs (sidecar.answers).
    answer = response.json()["data"]
    assert answer["status"] == "not_ready"
    assert answer["ready_at"] == ready_at.isoformat().replace("+00:00", "Z")
    assert 0 < answer["retry_after_seconds"] <= 600
    assert answer["message"] == message


@pytest.mark.usefixtures("resolver")
def test_a_missing_stack_is_not_found_in_data(seeded: PluginBao) -> None:
    response = _raw(seeded, "GET", "azure/creds/nosuchstack/plan")
    assert response.status_code == 400
    assert response.json()["data"]["status"] == "not_found"
    assert "nosuchstack" in " ".join(response.json()["errors"])


@pytest.mark.usefixtures("resolver")
def test_a_delay_longer_than_the_default_renewal_allows_still_reads(seeded: PluginBao) -> None:
    """Regression (found by the chaos schedules, #21): a ``propagation_delay`` above
    30 minutes made the plugin's timing policy invalid, and every read failed.

    The secret was made an hour before ``NOW``, which is fixed when the module is
    imported; a delay of three hours keeps it unready however long the suite runs
    before this test (65 minutes did not, under ``-n 2`` on a loaded machine)."""
    seeded.client.write_data("azure/config", data={"propagation_delay": "3h"})
    try:
        response = _raw(seeded, "GET", "azure/creds/A/apply")  # its secret is an hour old
        assert response.status_code == 400, response.text
        ready_at = NOW - timedelta(hours=1) + timedelta(hours=3)
        assert ready_at.isoformat().replace("+00:00", "Z") in " ".join(response.json()["errors"])
    finally:
        seeded.client.write_data("azure/config", data={"propagation_delay": "0"})


def test_disable_completes_promptly(seeded: PluginBao) -> None:
    seeded.bao("secrets", "enable", "-path=azure-disable", "azsidecar")
    seeded.client.write_data(
        "azure-disable/config", data={"vault_addr": seeded.server.addr, "token": "t"}
    )
    start = time.monotonic()
    seeded.bao("secrets", "disable", "azure-disable")
    elapsed = time.monotonic() - start
    print(f"secrets disable took {elapsed:.3f}s")
    assert elapsed < 10


def test_a_killed_plugin_is_started_again(seeded: PluginBao) -> None:
    pid = _plugin_pid(seeded)
    os.kill(pid, signal.SIGKILL)
    # OpenBao notices the exit asynchronously; a request racing that fails once.
    exited = f"plugin process exited: plugin={seeded.plugin_dir}/azsidecar id={pid}"
    wait_for(lambda: exited in seeded.server.log_path.read_text(errors="replace"), timeout=10)
    assert list_json(seeded.client, "azure/stacks")["data"]["keys"] == ["A"]
    assert seeded.plugin_pids() not in ([], [pid])


def test_killing_openbao_leaves_no_plugin_behind(fresh_plugin_bao: PluginBao) -> None:
    pb = fresh_plugin_bao
    _configure(pb)
    pid = _plugin_pid(pb)
    assert pb.server.process is not None
    os.kill(pb.server.process.pid, signal.SIGKILL)
    took = wait_for(lambda: not plugin_alive(pid), timeout=5)
    print(f"plugin exited {took:.2f}s after OpenBao was killed")


def test_root_help_lists_the_paths(seeded: PluginBao) -> None:
    result = seeded.bao("path-help", "azure/")
    assert "creds/" in result.stdout


def test_hvac_client_sees_no_secret_in_the_config(seeded: PluginBao) -> None:
    client = hvac.Client(url=seeded.server.addr, token=seeded.server.root_token)
    assert "token" not in read_json(client, "azure/config")["data"]


def test_approle_configuration_reads_the_kv_data(seeded: PluginBao) -> None:
    client = seeded.client
    client.sys.enable_auth_method("approle", path="approle")
    client.sys.create_or_update_policy(
        "azsidecar-plugin",
        f'path "secret/data/{PREFIX}/*" {{ capabilities = ["read"] }}\n'
        f'path "secret/metadata/{PREFIX}/*" {{ capabilities = ["read", "list"] }}\n',
    )
    client.auth.approle.create_or_update_approle("plugin", token_policies=["azsidecar-plugin"])
    role_id = client.auth.approle.read_role_id("plugin")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("plugin")["data"]["secret_id"]
    try:
        client.write_data(
            "azure/config", data={"approle_role_id": role_id, "approle_secret_id": secret_id}
        )
        response = _raw(seeded, "GET", "azure/config")
        assert secret_id not in response.text
        data = response.json()["data"]
        assert (data["auth_method"], data["token_set"], data["approle_secret_id_set"]) == (
            "approle",
            False,
            True,
        )
        assert list_json(client, "azure/stacks")["data"]["keys"] == ["A"]
    finally:
        _configure(seeded)
