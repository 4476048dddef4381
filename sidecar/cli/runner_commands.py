"""What ``azsidecar creds`` and ``azsidecar exec`` do, without click.

The click commands of :mod:`sidecar.cli.creds` and the console script's lean
path (:mod:`sidecar.cli.entry`) both run these, so the two ways in behave alike;
``echo`` writes a line as :func:`click.echo` would. Parsed options are the click
commands' parameters, by name (see :mod:`sidecar.cli.runner_argv`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from sidecar.answers import ResolvedCredential, check_name
from sidecar.config import load_config
from sidecar.durations import parse_duration
from sidecar.errors import VaultUnavailable
from sidecar.phases import Phase
from sidecar.runner import child
from sidecar.runner.auth import RunnerLogin, runner_login
from sidecar.runner.envfmt import Format, arm_variables, pkcs12_bytes, render
from sidecar.runner.source import CredentialSource, Via
from sidecar.runner.wait import fetch_ready

#: ``echo(text, err=..., nl=...)``: one write to standard output (or error) and a flush.
Echo = Callable[..., None]


def fetch(options: Mapping[str, Any], echo: Echo) -> ResolvedCredential:
    """The ready credential the options ask for, waited for as ``--wait`` allows."""
    config = load_config(options["config_path"])
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
        return fetch_ready(attempt, wait, lambda line: echo(f"azsidecar: {line}", err=True))
    finally:
        vault_login.stop()
        if resolver is not None:
            resolver.close()


def print_creds(fmt: Format, options: Mapping[str, Any], echo: Echo) -> None:
    """``creds``: the credential on standard output, in ``fmt``."""
    child.forbid_core_dumps()
    cred = fetch(options, echo)
    if fmt != "json" and not cred.subscription_id:
        echo("azsidecar: no subscription id for this stack; set one", err=True)
    echo(render(cred, fmt), nl=False)


def run_command(command: Sequence[str], options: Mapping[str, Any], echo: Echo) -> NoReturn:
    """``exec``: ``command`` with the credential's variables; exits with its status.

    A certificate is written to a private file for as long as ``command`` runs
    (``ARM_CLIENT_CERTIFICATE_PATH``): the provider reads a PKCS#12 file at any
    version (see :mod:`sidecar.runner.envfmt`).
    """
    child.forbid_core_dumps()
    cred = fetch(options, echo)
    if cred.certificate is None:
        sys.exit(child.run(command, arm_variables(cred)))
    bundle = pkcs12_bytes(cred.certificate)
    with child.private_file("client-certificate.pfx", bundle) as path:
        code = child.run(command, arm_variables(cred, certificate_path=str(path)))
    sys.exit(code)
