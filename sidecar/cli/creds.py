"""``azsidecar creds`` and ``azsidecar exec``: the runner helper.

``creds`` prints the ready credential of a stack's phase; ``exec`` runs a
command with it in the environment. See :mod:`sidecar.runner` for how the
runner logs in and how the credential is reached, and
:mod:`sidecar.cli.runner_commands` for what the commands do: the console
script runs that without click when it can (:mod:`sidecar.cli.entry`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sidecar.cli.common import config_option, friendly_errors
from sidecar.cli.runner_commands import print_creds, run_command
from sidecar.phases import DEFAULT_CREDS_MOUNT, Phase
from sidecar.runner.envfmt import Format

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
    print_creds(fmt, options, click.echo)


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@runner_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def exec_(command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND (after --) with the credential's ARM_* variables in its environment."""
    run_command(command, options, click.echo)
