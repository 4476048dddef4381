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
from typing import Literal

import hvac

from sidecar.config import Config
from sidecar.errors import InputError, VaultForbidden
from sidecar.vault import connect

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


def runner_client(config: Config, login: RunnerLogin) -> hvac.Client:
    """An hvac client logged in as the runner; VaultForbidden when the login is refused."""
    vault = config.vault
    method = _method(login, config)
    token = approle = jwt = None
    if method == "token":
        token = _read(login.token_file, "token") if login.token_file else config.vault_token()
        if not token:
            raise VaultForbidden(
                "no Vault token: set VAULT_TOKEN, or use --jwt-file/--role or AppRole"
            )
    elif method == "jwt":
        jwt_file = login.jwt_file or vault.jwt_file
        role = login.jwt_role or vault.jwt_role
        if not (jwt_file and role):
            raise InputError("JWT login needs --jwt-file and --role")
        jwt = (login.jwt_mount or vault.jwt_mount, role, _read(jwt_file, "JWT"))
    else:
        role_id = _read(login.role_id_file, "role id") if login.role_id_file else vault.role_id
        secret_id = (
            _read(login.secret_id_file, "secret id")
            if login.secret_id_file
            else config.approle_secret_id()
        )
        if not (role_id and secret_id):
            raise InputError(
                "AppRole login needs a role id (AZSIDECAR_VAULT_ROLE_ID or --role-id-file)"
                " and a secret id (AZSIDECAR_VAULT_SECRET_ID or --secret-id-file)"
            )
        approle = (role_id, secret_id)
    return connect(
        vault.addr,
        token=token,
        approle=approle,
        jwt=jwt,
        ca_cert=vault.ca_cert,
        namespace=vault.namespace,
        timeout=vault.timeout,
    )
