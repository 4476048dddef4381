"""``azsidecar creds`` and ``azsidecar exec``: the runner helper.

``creds`` prints the ready credential of a stack's phase; ``exec`` runs a
command with it in the environment. See :mod:`sidecar.runner` for how the
runner logs in and how the credential is reached.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from sidecar.answers import ResolvedCredential, check_name
from sidecar.cli.common import config_option, friendly_errors, load
from sidecar.durations import parse_duration
from sidecar.errors import VaultUnavailable
from sidecar.model import DEFAULT_CREDS_MOUNT, Phase
from sidecar.runner import child
from sidecar.runner.auth import RunnerLogin, runner_login
from sidecar.runner.envfmt import Format, arm_variables, pkcs12_bytes, render
from sidecar.runner.source import CredentialSource, Via
from sidecar.runner.wait import fetch_ready

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--stack", required=True, help="The stack whose credential to fetch."),
    click.option(
        "--phase",
        required=True,
        type=click.Choice([p.value for p in Phase]),
        help="plan (read integration) or apply (write integration).",
    ),
    click.option(
        "--wait",
        "wait",
        default="0s",
        show_default=True,
        help="Wait this long (e.g. 15m) for a credential that is not ready yet,"
        " or for Vault or the resolver to be reachable again.",
    ),
    click.option(
        "--mount", default=DEFAULT_CREDS_MOUNT, show_default=True, help="The plugin's mount."
    ),
    click.option(
        "--via",
        type=click.Choice(["auto", "plugin", "resolver"]),
        default="auto",
        show_default=True,
        help="auto: the plugin path if it is mounted, else the resolver.",
    ),
    click.option("--resolver", "resolver_addr", default=None, help="Resolver host:port."),
    click.option(
        "--resolver-ca",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help="PEM CA to verify the resolver's TLS certificate (TLS is used when given).",
    ),
    click.option(
        "--auth",
        "method",
        type=click.Choice(["auto", "token", "jwt", "approle"]),
        default="auto",
        show_default=True,
        help="How to log in to Vault (auto: JWT if --jwt-file, AppRole if configured, "
        "else VAULT_TOKEN).",
    ),
    click.option("--token-file", type=click.Path(dir_okay=False), help="File with a Vault token."),
    click.option("--jwt-file", type=click.Path(dir_okay=False), help="File with the CI's JWT."),
    click.option("--role", "jwt_role", default=None, help="Vault JWT role."),
    click.option("--jwt-mount", default=None, help="JWT auth mount (default: jwt)."),
    click.option("--role-id-file", type=click.Path(dir_okay=False), help="AppRole role id file."),
    click.option(
        "--secret-id-file", type=click.Path(dir_okay=False), help="AppRole secret id file."
    ),
    config_option,
]


def runner_options(fn: F) -> F:
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def _fetch(options: dict[str, Any]) -> ResolvedCredential:
    config = load(options["config_path"])
    stack = check_name(options["stack"], "stack")
    phase = Phase(options["phase"])
    wait = parse_duration(options["wait"])
    login = RunnerLogin(
        method=options["method"],
        token_file=options["token_file"],
        jwt_file=options["jwt_file"],
        jwt_role=options["jwt_role"],
        jwt_mount=options["jwt_mount"],
        role_id_file=options["role_id_file"],
        secret_id_file=options["secret_id_file"],
    )
    vault_login = runner_login(config, login)
    resolver = None
    if options["resolver_addr"]:
        # gRPC and protobuf cost tens of milliseconds to import: only runs that use it pay.
        from sidecar.resolver.client import ResolverClient  # noqa: PLC0415 - lazy, see above

        resolver = ResolverClient(
            options["resolver_addr"], ca_file=options["resolver_ca"], timeout=config.vault.timeout
        )
    via: Via = options["via"]
    source: CredentialSource | None = None

    def attempt() -> ResolvedCredential:
        # The login is part of the attempt, so an unreachable Vault is waited for too.
        nonlocal source
        if source is None:
            try:
                client = vault_login.open(look_up=False)
            except VaultUnavailable as exc:
                raise VaultUnavailable(f"Vault at {config.vault.addr}: {exc}") from exc
            source = CredentialSource(client, options["mount"], via, resolver)
            if wait > timedelta(0):
                # While --wait lasts the token is renewed, or replaced by a new login,
                # as a daemon's is: a wait longer than the token's TTL still succeeds.
                vault_login.start()
        elif vault_login.last_error is not None and not isinstance(
            vault_login.last_error, VaultUnavailable
        ):
            raise vault_login.last_error  # refused: final (unreachable: the fetch says so)
        return source.fetch(stack, phase)

    try:
        return fetch_ready(
            attempt,
            wait,
            lambda line: click.echo(f"azsidecar: {line}", err=True),
        )
    finally:
        vault_login.stop()
        if resolver is not None:
            resolver.close()


@click.command()
@runner_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["env", "dotenv", "json"]),
    default="env",
    show_default=True,
    help="env: `export` lines for eval; dotenv: KEY=value; json: every field.",
)
@friendly_errors
def creds(fmt: Format, **options: Any) -> None:
    """Print the ready Azure credential of a stack's phase as ARM_* variables."""
    child.forbid_core_dumps()
    cred = _fetch(options)
    if fmt != "json" and not cred.subscription_id:
        click.echo("azsidecar: no subscription id for this stack; set one", err=True)
    click.echo(render(cred, fmt), nl=False)


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@runner_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def exec_(command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND (after --) with the credential's ARM_* variables in its environment.

    A certificate is written to a private file for as long as COMMAND runs
    (ARM_CLIENT_CERTIFICATE_PATH).
    """
    child.forbid_core_dumps()
    cred = _fetch(options)
    if cred.certificate is None:
        sys.exit(child.run(command, arm_variables(cred)))
    # The provider reads a PKCS#12 file at any version (see sidecar.runner.envfmt).
    bundle = pkcs12_bytes(cred.certificate)
    with child.private_file("client-certificate.pfx", bundle) as path:
        code = child.run(command, arm_variables(cred, certificate_path=str(path)))
    sys.exit(code)
