"""How a runner logs in to Vault: a token, the JWT method, or AppRole.

Login secrets come from files or the environment, never from arguments,
where any user of the machine could read them in the process list:
``VAULT_TOKEN`` / ``BAO_TOKEN`` or ``--token-file``; the CI platform's JWT from
``--jwt-file``; the AppRole role id from ``AZSIDECAR_VAULT_ROLE_ID`` or
``--role-id-file`` and the secret id from ``AZSIDECAR_VAULT_SECRET_ID`` or
``--secret-id-file`` (the ``vault.*`` configuration keys, so a config file
works too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import hvac

from sidecar.config import Config
from sidecar.errors import InputError, VaultForbidden
from sidecar.vault_login import LoginSpec, VaultLogin

Method = Literal["auto", "token", "jwt", "approle"]


@dataclass(frozen=True)
class RunnerLogin:
    """The command line's choices; ``None`` falls back to the configuration."""

    method: Method = "auto"
    token_file: str | None = None
    jwt_file: str | None = None
    jwt_role: str | None = None
    jwt_mount: str | None = None
    role_id_file: str | None = None
    secret_id_file: str | None = None


def _read(path: str, what: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    if not value:
        raise InputError(f"the {what} file {path} is empty")
    return value


def _method(login: RunnerLogin, config: Config) -> Method:
    if login.method != "auto":
        return login.method
    if login.jwt_file:
        return "jwt"
    if login.role_id_file or login.secret_id_file:
        return "approle"
    if login.token_file or config.vault_token():
        return "token"
    if config.vault.auth != "token":
        return config.vault.auth
    if config.vault.role_id:
        return "approle"
    return "token"


def runner_login(config: Config, login: RunnerLogin) -> VaultLogin:
    """The runner's login, not yet performed; files are named as its options."""
    vault = config.vault
    method = _method(login, config)
    keys = {
        "token_file": "--token-file",
        "jwt_file": "--jwt-file",
        "jwt_role": "--role",
        "secret_id_file": "--secret-id-file",
        "secret_id": "AZSIDECAR_VAULT_SECRET_ID",
        "role_id": "--role-id-file",
    }
    common: dict[str, Any] = {
        "addr": vault.addr,
        "ca_cert": vault.ca_cert,
        "namespace": vault.namespace,
        "timeout": vault.timeout,
        "keys": keys,
    }
    if method == "token":
        token = None if login.token_file else config.vault_token()
        if not (login.token_file or token):
            raise VaultForbidden(
                "no Vault token: set VAULT_TOKEN, or use --jwt-file/--role or AppRole"
            )
        if login.token_file:
            _read(login.token_file, "token")
        spec = LoginSpec(method="token", token=token, token_file=login.token_file, **common)
    elif method == "jwt":
        jwt_file = login.jwt_file or vault.jwt_file
        role = login.jwt_role or vault.jwt_role
        if not (jwt_file and role):
            raise InputError("JWT login needs --jwt-file and --role")
        _read(jwt_file, "JWT")
        spec = LoginSpec(
            method="jwt",
            jwt_mount=login.jwt_mount or vault.jwt_mount,
            jwt_role=role,
            jwt_file=jwt_file,
            **common,
        )
    else:
        role_id = _read(login.role_id_file, "role id") if login.role_id_file else vault.role_id
        secret_id_file = login.secret_id_file or (None if vault.secret_id else vault.secret_id_file)
        secret_id = None if secret_id_file else vault.secret_id
        if secret_id_file:
            _read(secret_id_file, "secret id")
        if not (role_id and (secret_id or secret_id_file)):
            raise InputError(
                "AppRole login needs a role id (AZSIDECAR_VAULT_ROLE_ID or --role-id-file)"
                " and a secret id (AZSIDECAR_VAULT_SECRET_ID or --secret-id-file)"
            )
        spec = LoginSpec(
            method="approle",
            role_id=role_id,
            secret_id=secret_id,
            secret_id_file=secret_id_file,
            **common,
        )
    return VaultLogin(spec, name="runner")


def runner_client(config: Config, login: RunnerLogin) -> hvac.Client:
    """An hvac client logged in as the runner; VaultForbidden when the login is refused."""
    return runner_login(config, login).login()
