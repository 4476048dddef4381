"""The ``azsidecar`` command group; each subcommand lives in its own module."""

from __future__ import annotations

import importlib

import click

from sidecar import __version__

# (module, attribute) of every registered subcommand, imported lazily so that
# `azsidecar --help` stays fast and one broken group cannot hide the others.
_COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("sidecar.cli.emulator", "emulator"),
    "integration": ("sidecar.cli.integration", "integration"),
    "daemon": ("sidecar.cli.daemon", "daemon"),
    "management": ("sidecar.cli.management", "management"),
    "plugin": ("sidecar.cli.plugin", "plugin"),
    "stack": ("sidecar.cli.stack", "stack"),
    "creds": ("sidecar.cli.creds", "creds"),
    "exec": ("sidecar.cli.creds", "exec_"),
    "resolver": ("sidecar.cli.resolver", "resolver"),
    "policies": ("sidecar.cli.policies", "policies"),
    "demo": ("sidecar.cli.demo", "demo"),
    "soak": ("sidecar.cli.soak", "soak"),
    "doctor": ("sidecar.cli.doctor", "doctor"),
    "issuer": ("sidecar.cli.issuer", "issuer"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module_name, attr = _COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="azsidecar")
def main() -> None:
    """Azure credentials for CI/CD runners through Vault / OpenBao."""


if __name__ == "__main__":
    main()
