"""``azsidecar plugin``: serve the OpenBao/Vault secrets-engine plugin, or install it."""

from __future__ import annotations

import sys

import click

from sidecar.plugin.install import install_wrapper, registration_commands
from sidecar.plugin.serve import main as serve_plugin


@click.group()
def plugin() -> None:
    """The `azure` secrets-engine plugin for OpenBao / Vault."""


@plugin.command()
def serve() -> None:
    """Run as a plugin process (OpenBao starts this; not for use by hand)."""
    sys.exit(serve_plugin())


@plugin.command()
@click.option(
    "--plugin-dir",
    required=True,
    type=click.Path(file_okay=False, dir_okay=True, writable=True),
    help="The server's plugin_directory.",
)
@click.option("--name", default="azsidecar", show_default=True, help="Catalog name.")
def install(plugin_dir: str, name: str) -> None:
    """Write the plugin command into PLUGIN_DIR and print how to register it."""
    installed = install_wrapper(plugin_dir, name)
    for line in registration_commands(installed):
        click.echo(line)
