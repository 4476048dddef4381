"""``azsidecar policies render``: the shipped policy templates, filled in for one deployment.

The templates in ``policies/`` name the deployment's values with
placeholders (``<kv_mount>``, ``<prefix>``, ``<creds_mount>``,
``<jwt_accessor>``) because the runner policy must name the JWT mount's
accessor, which exists only once JWT auth is enabled.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

import sidecar
from sidecar.cli.common import friendly_errors
from sidecar.errors import InputError
from sidecar.model import DEFAULT_CREDS_MOUNT

NAMES = ("sidecar", "runner", "operator", "plugin")
DEFAULT_DIR = Path(sidecar.__file__).resolve().parent.parent / "policies"
_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*")
_PLACEHOLDER = re.compile(r"<(kv_mount|prefix|creds_mount|jwt_accessor)>")


def render_policy(template: str, values: dict[str, str]) -> str:
    """Replace every placeholder; refuse values that could change a path's meaning."""
    for key, value in values.items():
        if not _VALUE.fullmatch(value) or ".." in value:
            raise InputError(f"invalid {key} {value[:40]!r}: letters, digits, '_', '.', '-', '/'")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_all(templates: Path, values: dict[str, str]) -> dict[str, str]:
    rendered = {}
    for name in NAMES:
        path = templates / f"{name}.hcl"
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}; pass --templates") from exc
        rendered[name] = render_policy(text, values)
    return rendered


@click.group()
def policies() -> None:
    """Vault policies for the sidecar, runners, operators and the plugin."""


@policies.command()
@click.option("--jwt-accessor", required=True, help="Accessor of the JWT auth mount.")
@click.option("--kv-mount", default="secret", show_default=True, help="KV v2 mount.")
@click.option("--prefix", default="azsidecar", show_default=True, help="Product's KV prefix.")
@click.option(
    "--creds-mount", default=DEFAULT_CREDS_MOUNT, show_default=True, help="The plugin's mount."
)
@click.option(
    "--templates",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Directory of the *.hcl templates.",
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
    templates: Path,
    out: Path | None,
) -> None:
    """Fill in the policy templates; load them with `bao policy write azsidecar-<name> FILE`."""
    values = {
        "jwt_accessor": jwt_accessor,
        "kv_mount": kv_mount.strip("/"),
        "prefix": prefix.strip("/"),
        "creds_mount": creds_mount.strip("/"),
    }
    rendered = render_all(templates, values)
    if out is None:
        for name, text in rendered.items():
            click.echo(f"# ---- azsidecar-{name}\n{text}")
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        target = out / f"azsidecar-{name}.hcl"
        target.write_text(text)
        click.echo(f"bao policy write azsidecar-{name} {target}")
