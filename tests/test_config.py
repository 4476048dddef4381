"""Configuration: defaults, TOML, environment, and errors that name the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sidecar.config import ENTRA_AUDIENCE_DEFAULT, ISSUER_DEFAULTS, IssuerConfig, load_config
from sidecar.durations import format_duration, parse_duration
from sidecar.errors import ConfigError, InputError
from sidecar.issuer.documents import ENTRA_AUDIENCE
from sidecar.issuer.planner import IssuerPolicy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "azsidecar.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_design() -> None:
    config = load_config(None, env={})
    timing = config.timing
    assert timing.tick == timedelta(hours=1)
    assert timing.secret_lifetime == timedelta(hours=24)
    assert timing.secret_renew_before == timedelta(hours=2)
    assert timing.propagation_delay == timedelta(minutes=10)
    assert timing.ready_safety_margin == timedelta(minutes=30)
    assert timing.cert_lifetime == timedelta(days=30)
    assert timing.cert_renew_before == timedelta(days=7)
    assert timing.cert_switch_delay == timedelta(minutes=10)
    assert config.vault.kv_mount == "secret"
    assert config.azure.graph_url == "https://graph.microsoft.com"


def test_file_then_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[vault]
addr = "https://vault.internal:8200"
prefix = "ci/azure"
[azure]
graph_url = "https://127.0.0.1:8443/graph"
[timing]
propagation_delay = "12m"
tick = 1800
[daemon]
concurrency = 4
resolver_enabled = false
""",
    )
    env = {
        "AZSIDECAR_DAEMON_CONCURRENCY": "16",
        "AZSIDECAR_TIMING_SECRET_LIFETIME": "2d",
        "VAULT_TOKEN": "hvs.from-env",
    }
    config = load_config(path, env=env)
    assert config.vault.addr == "https://vault.internal:8200"
    assert config.vault.prefix == "ci/azure"
    assert config.azure.graph_url == "https://127.0.0.1:8443/graph"
    assert config.timing.propagation_delay == timedelta(minutes=12)
    assert config.timing.tick == timedelta(minutes=30)
    assert config.timing.secret_lifetime == timedelta(days=2)
    assert config.daemon.concurrency == 16
    assert config.daemon.resolver_enabled is False
    assert config.vault_token() == "hvs.from-env"
    assert "hvs.from-env" not in repr(config)


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[vault]\nkv_mount = "kv"\n')
    assert load_config(None, env={"AZSIDECAR_CONFIG": str(path)}).vault.kv_mount == "kv"


def test_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("hvs.secret\n")
    path = write(tmp_path, f'[vault]\ntoken_file = "{token}"\n')
    assert load_config(path, env={}).vault_token() == "hvs.secret"


@pytest.mark.parametrize(
    ("text", "env", "key", "hint"),
    [
        ("[vault]\nadress = 'x'\n", {}, "vault.adress", "allowed keys: addr"),
        ("[valt]\naddr = 'x'\n", {}, "valt", "allowed sections"),
        ("[timing]\ntick = 'soon'\n", {}, "timing.tick", "duration"),
        ("[daemon]\nconcurrency = 'many'\n", {}, "daemon.concurrency", "whole number"),
        ("[daemon]\nconcurrency = 0\n", {}, "daemon.concurrency", "greater than zero"),
        ("[daemon]\nlog_format = 'xml'\n", {}, "daemon.log_format", "'text', 'json'"),
        ("[vault]\nauth = 'ldap'\n", {}, "vault.auth", "'token', 'approle', 'jwt'"),
        ("[vault]\nauth = 'approle'\n", {}, "vault.role_id", "required"),
        ("[azure]\nlogin_url = 'http://x'\n", {}, "azure.login_url", "https"),
        ("[vault]\naddr = 'vault:8200'\n", {}, "vault.addr", "URL"),
        ("[vault]\nprefix = '../x'\n", {}, "vault.prefix", "'..'"),
        ("[daemon]\ntls_cert = '/c.pem'\n", {}, "daemon.tls_cert", "both"),
        (
            "",
            {"AZSIDECAR_DAEMON_RESOLVER_ENABLED": "maybe"},
            "daemon.resolver_enabled",
            "true or false",
        ),
        ("", {"AZSIDECAR_VALT_ADDR": "x"}, "AZSIDECAR_VALT_ADDR", "section"),
        ("[clock]\norigin = '2026-01-01T00:00:00'\n", {}, "clock.origin", "RFC 3339"),
        ("[timing]\nsecret_renew_before = '30h'\n", {}, "timing.secret_renew_before", ""),
        ("[timing]\npropagation_delay = '-5m'\n", {}, "timing.propagation_delay", ""),
        ("vault = 3\n", {}, "vault", "table"),
        ("[vault\n", {}, "config file", "TOML"),
    ],
)
def test_bad_values_name_the_key(
    tmp_path: Path, text: str, env: dict[str, str], key: str, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert info.value.key == key
    assert hint in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", env={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h30m", 5400),
        ("7d", 604800),
        ("45", 45),
        ("1.5h", 5400),
        (30, 30),
    ],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "h", "1h-5m", "-5m", True])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError, match="duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("1h30m", "7d", "1m30s", "0s", "1d2h3m4s"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("cloud", "login", "graph", "arm"),
    [
        (
            "public",
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
            "https://management.azure.com",
        ),
        (
            "usgovernment",
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us",
            "https://management.usgovcloudapi.net",
        ),
        (
            "china",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
            "https://management.chinacloudapi.cn",
        ),
    ],
)
def test_cloud_sets_endpoints_and_scopes(
    tmp_path: Path, cloud: str, login: str, graph: str, arm: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[azure]\ncloud = "{cloud}"\n')
    azure = load_config(path, env={}).azure
    assert (azure.login_url, azure.graph_url, azure.arm_url) == (login, graph, arm)
    assert azure.graph_scope == f"{graph}/.default"
    assert azure.arm_scope == f"{arm}/.default"


def test_explicit_url_overrides_the_cloud(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[azure]\ncloud = "china"\ngraph_url = "https://graph.example.test"\n')
    azure = load_config(path, env={}).azure
    assert azure.graph_url == "https://graph.example.test"
    assert azure.login_url == "https://login.chinacloudapi.cn"
    assert azure.graph_scope == "https://microsoftgraph.chinacloudapi.cn/.default"


def test_unknown_cloud_names_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[azure]\ncloud = "germany"\n')
    with pytest.raises(ConfigError, match=r"azure\.cloud.*'usgovernment'"):
        load_config(path, env={})


def test_the_issuer_defaults_are_the_planners() -> None:
    """config writes IssuerPolicy's defaults out (so reading it imports no issuer): same values."""
    policy = IssuerPolicy()
    assert (
        policy.publish_ahead,
        policy.token_lifetime,
        policy.clock_skew,
        policy.rotation_period,
    ) == ISSUER_DEFAULTS
    assert IssuerConfig().policy() == policy
    assert ENTRA_AUDIENCE_DEFAULT == ENTRA_AUDIENCE
