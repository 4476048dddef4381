"""One login path: the daemon's and the runner's Vault login come from ``login_spec``."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import Config, VaultConfig
from sidecar.errors import InputError, VaultForbidden
from sidecar.plugin.backend import login_spec as plugin_login_spec
from sidecar.plugin.path_config import PluginConfig
from sidecar.runner.auth import RunnerLogin, runner_login
from sidecar.vault_login import LoginChoice, choose_method, login_spec, spec_from_config


def test_the_daemon_logs_in_as_configured() -> None:
    vault = VaultConfig(auth="approle", token="t", role_id="r", secret_id_file="/run/sid")
    spec = login_spec(vault)
    assert (spec.method, spec.role_id, spec.secret_id, spec.secret_id_file) == (
        "approle",
        "r",
        None,
        "/run/sid",
    )
    assert spec.keys == {} and spec.key("secret_id_file") == "vault.secret_id_file"
    assert spec_from_config(vault) == spec


def test_a_token_given_directly_wins_over_the_token_file() -> None:
    spec = login_spec(VaultConfig(token="t", token_file="/run/token"))
    assert (spec.token, spec.token_file) == ("t", None)
    spec = login_spec(VaultConfig(token_file="/run/token"))
    assert (spec.token, spec.token_file) == (None, "/run/token")


@pytest.mark.parametrize(
    ("vault", "choice", "method"),
    [
        (VaultConfig(auth="approle"), LoginChoice(), "approle"),
        (VaultConfig(auth="approle", token="t"), LoginChoice(method="auto"), "token"),
        (VaultConfig(token="t"), LoginChoice(method="auto", jwt_file="/j"), "jwt"),
        (VaultConfig(), LoginChoice(method="auto", secret_id_file="/s"), "approle"),
        (VaultConfig(auth="jwt"), LoginChoice(method="auto"), "jwt"),
        (VaultConfig(role_id="r"), LoginChoice(method="auto"), "approle"),
        (VaultConfig(), LoginChoice(method="auto"), "token"),
        (VaultConfig(token="t"), LoginChoice(method="jwt"), "jwt"),
    ],
)
def test_the_method(vault: VaultConfig, choice: LoginChoice, method: str) -> None:
    assert choose_method(vault, choice) == method


def test_the_runner_and_the_daemon_read_the_same_configuration_alike(tmp_path: Path) -> None:
    jwt = tmp_path / "jwt"
    jwt.write_text("header.payload.signature")
    vault = VaultConfig(addr="https://vault:8200", auth="jwt", jwt_role="ci", jwt_file=str(jwt))
    daemon = login_spec(vault)
    runner = runner_login(Config(vault=vault), RunnerLogin()).spec
    for name in ("addr", "method", "jwt_mount", "jwt_role", "jwt_file", "timeout"):
        assert getattr(runner, name) == getattr(daemon, name), name
    assert runner.key("jwt_file") == "--jwt-file"  # the runner names its options


def test_the_runner_options_override_the_configuration(tmp_path: Path) -> None:
    role, secret = tmp_path / "role", tmp_path / "secret"
    role.write_text("role-from-file\n")
    secret.write_text("s")
    vault = VaultConfig(role_id="configured", secret_id="configured-secret")
    spec = runner_login(
        Config(vault=vault), RunnerLogin(role_id_file=str(role), secret_id_file=str(secret))
    ).spec
    assert (spec.method, spec.role_id, spec.secret_id, spec.secret_id_file) == (
        "approle",
        "role-from-file",
        None,
        str(secret),
    )


def test_the_runner_says_what_is_missing_before_trying(tmp_path: Path) -> None:
    with pytest.raises(VaultForbidden, match="no Vault token"):
        runner_login(Config(), RunnerLogin())
    with pytest.raises(InputError, match="JWT login needs --jwt-file and --role"):
        runner_login(Config(), RunnerLogin(method="jwt"))
    with pytest.raises(InputError, match="cannot read the token file"):
        runner_login(Config(), RunnerLogin(token_file=str(tmp_path / "absent")))


def test_the_plugin_logs_in_from_its_mount_config_by_the_same_rule() -> None:
    config = PluginConfig(
        vault_addr="https://vault:8200", approle_role_id="r", approle_secret_id_file="/run/sid"
    )
    spec = plugin_login_spec(config, "/tmp/ca.pem")
    assert (spec.method, spec.role_id, spec.secret_id, spec.secret_id_file, spec.ca_cert) == (
        "approle",
        "r",
        None,
        "/run/sid",
        "/tmp/ca.pem",
    )
    assert spec.key("secret_id_file") == "<mount>/config approle_secret_id_file"
    token = plugin_login_spec(PluginConfig(vault_addr="a", token="t", token_file="/f"), None)
    assert (token.method, token.token, token.token_file) == ("token", "t", None)
