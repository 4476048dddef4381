"""``azsidecar policies render``: the shipped policy templates, filled in for one deployment.

The templates and the rendering live in :mod:`sidecar.policies` (package data).
"""

from __future__ import annotations

from pathlib import Path

import click

from sidecar.cli.common import friendly_errors
from sidecar.model import DEFAULT_CREDS_MOUNT
from sidecar.policies import DEFAULT_VALUES, render_all


@click.group()
def policies() -> None:
    """Vault policies for the sidecar, runners, operators, the plugin and the issuer."""


@policies.command()
@click.option("--jwt-accessor", required=True, help="Accessor of the JWT auth mount.")
@click.option("--kv-mount", default="secret", show_default=True, help="KV v2 mount.")
@click.option("--prefix", default="azsidecar", show_default=True, help="Product's KV prefix.")
@click.option(
    "--creds-mount", default=DEFAULT_CREDS_MOUNT, show_default=True, help="The plugin's mount."
)
@click.option(
    "--transit-mount",
    default=DEFAULT_VALUES["transit_mount"],
    show_default=True,
    help="Transit mount of the OIDC issuer's signing key.",
)
@click.option(
    "--issuer-key",
    default=DEFAULT_VALUES["issuer_key"],
    show_default=True,
    help="Transit key the OIDC issuer signs with.",
)
@click.option(
    "--templates",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Directory of the *.hcl templates (default: the ones shipped with azsidecar).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write azsidecar-<name>.hcl here instead of printing.",
)
@friendly_errors
def render(
    jwt_accessor: str,
    kv_mount: str,
    prefix: str,
    creds_mount: str,
    transit_mount: str,
    issuer_key: str,
    templates: Path | None,
    out: Path | None,
) -> None:
    """Fill in the policy templates; load them with `bao policy write azsidecar-<name> FILE`."""
    values = {
        "jwt_accessor": jwt_accessor,
        "kv_mount": kv_mount.strip("/"),
        "prefix": prefix.strip("/"),
        "creds_mount": creds_mount.strip("/"),
        "transit_mount": transit_mount.strip("/"),
        "issuer_key": issuer_key,
    }
    rendered = render_all(values, templates)
    if out is None:
        for name, text in rendered.items():
            click.echo(f"# ---- azsidecar-{name}\n{text}")
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        target = out / f"azsidecar-{name}.hcl"
        target.write_text(text)
        click.echo(f"bao policy write azsidecar-{name} {target}")
