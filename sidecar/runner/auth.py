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

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from sidecar.config import Config
from sidecar.errors import InputError, VaultForbidden
from sidecar.vault_http import HttpTransport
from sidecar.vault_login import LoginChoice, VaultLogin, choose_method, login_spec

if TYPE_CHECKING:
    from sidecar.vault_transport import VaultTransport

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
        with open(path) as handle:  # as Path.read_text; pathlib is not loaded for it
            value = handle.read().strip()
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    if not value:
        raise InputError(f"the {what} file {path} is empty")
    return value


#: The runner's settings are named as its options in error messages.
KEYS = {
    "token_file": "--token-file",
    "jwt_file": "--jwt-file",
    "jwt_role": "--role",
    "secret_id_file": "--secret-id-file",
    "secret_id": "AZSIDECAR_VAULT_SECRET_ID",
    "role_id": "--role-id-file",
}


def runner_login(config: Config, login: RunnerLogin) -> VaultLogin:
    """The runner's login, not yet performed; files are named as its options.

    Resolved by :func:`sidecar.vault_login.login_spec`, as every Vault client's
    login is; here only what the runner must say before trying: which file or
    setting is missing or unreadable.
    """
    choice = LoginChoice(
        method=login.method,
        token_file=login.token_file,
        jwt_file=login.jwt_file,
        jwt_role=login.jwt_role,
        jwt_mount=login.jwt_mount,
        role_id_file=login.role_id_file,
        secret_id_file=login.secret_id_file,
    )
    method = choose_method(config.vault, choice)
    if method == "token":
        token = None if login.token_file else config.vault_token()
        if not (login.token_file or token):
            raise VaultForbidden(
                "no Vault token: set VAULT_TOKEN, or use --jwt-file/--role or AppRole"
            )
        if login.token_file:
            _read(login.token_file, "token")
        choice = replace(choice, token=token)
    elif method == "approle" and login.role_id_file:
        choice = replace(choice, role_id=_read(login.role_id_file, "role id"))
    spec = login_spec(config.vault, replace(choice, method=method), keys=KEYS)
    if method == "jwt":
        if not (spec.jwt_file and spec.jwt_role):
            raise InputError("JWT login needs --jwt-file and --role")
        _read(spec.jwt_file, "JWT")
    elif method == "approle":
        if spec.secret_id_file:
            _read(spec.secret_id_file, "secret id")
        if not (spec.role_id and (spec.secret_id or spec.secret_id_file)):
            raise InputError(
                "AppRole login needs a role id (AZSIDECAR_VAULT_ROLE_ID or --role-id-file)"
                " and a secret id (AZSIDECAR_VAULT_SECRET_ID or --secret-id-file)"
            )
    # The standard library's HTTP, not hvac and requests: they would cost the job more
    # to import than its two or three requests take (issue 17).
    transport = HttpTransport(
        spec.addr, ca_cert=spec.ca_cert, namespace=spec.namespace, timeout=spec.timeout
    )
    return VaultLogin(spec, transport=transport, name="runner")


def runner_client(config: Config, login: RunnerLogin) -> VaultTransport:
    """A Vault transport logged in as the runner; VaultForbidden when the login is refused."""
    return runner_login(config, login).open()
