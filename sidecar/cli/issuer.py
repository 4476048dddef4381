"""``azsidecar issuer``: the OIDC issuer's signing key in Transit, and its static documents.

``init`` creates the Transit key (``rsa-2048``) if it is missing; ``export``
writes the discovery document and the JWKS for a public static site. Both use
the configuration's Vault login; the issuer's settings are options here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sidecar.cli.common import config_option, friendly_errors, load
from sidecar.durations import format_duration, parse_duration
from sidecar.issuer.documents import DEFAULT_JWKS_PATH, IssuerIdentity
from sidecar.issuer.export import export as export_documents
from sidecar.issuer.planner import IssuerPolicy
from sidecar.issuer.signing import DEFAULT_KEY_NAME, Issuer
from sidecar.runtime import make_clock, make_login
from sidecar.transit import Transit

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = IssuerPolicy()


def _key_options(fn: F) -> F:
    fn = click.option(
        "--transit-mount", default="transit", show_default=True, help="Transit engine's mount."
    )(fn)
    fn = click.option(
        "--key", "key_name", default=DEFAULT_KEY_NAME, show_default=True, help="Transit key."
    )(fn)
    return config_option(fn)


def _transit(config_path: str | None, mount: str) -> tuple[Transit, Any]:
    config = load(config_path)
    login = make_login(config)
    return Transit(login.client, mount), make_clock(config)


@click.group()
def issuer() -> None:
    """azsidecar as an OIDC issuer: its signing key lives in Vault's Transit engine."""


@issuer.command()
@_key_options
@friendly_errors
def init(config_path: str | None, transit_mount: str, key_name: str) -> None:
    """Create the issuer's signing key (rsa-2048) in Transit if it does not exist."""
    transit, _ = _transit(config_path, transit_mount)
    key = transit.ensure_key(key_name)
    click.echo(
        f"Transit key {transit.mount}/keys/{key_name}: type {key.type}, "
        f"versions {', '.join(str(v) for v in sorted(key.versions))}"
    )


@issuer.command()
@_key_options
@click.option(
    "--issuer-url",
    required=True,
    envvar="AZSIDECAR_ISSUER_URL",
    help="The public https:// URL of the issuer: the `iss` claim and the federated "
    "credential's issuer.",
)
@click.option(
    "--jwks-uri",
    default="",
    help=f"Where the JWKS is served (default: <issuer-url>/{DEFAULT_JWKS_PATH}).",
)
@click.option(
    "--publish-ahead",
    default=format_duration(_DEFAULTS.publish_ahead),
    show_default=True,
    help="How long a new key version is published before it signs (Entra's key cache, "
    "plus your export interval for a static site).",
)
@click.option(
    "--token-lifetime",
    default=format_duration(_DEFAULTS.token_lifetime),
    show_default=True,
    help="Lifetime of the tokens the issuer signs.",
)
@click.option(
    "--clock-skew",
    default=format_duration(_DEFAULTS.clock_skew),
    show_default=True,
    help="Margin for clocks, added before a retired key leaves the JWKS.",
)
@click.option(
    "--rotation-period",
    default=format_duration(_DEFAULTS.rotation_period),
    show_default=True,
    help="How long a key version is newest before the daemon rotates the key.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the site's files to (its root is the issuer URL).",
)
@friendly_errors
def export(
    config_path: str | None,
    transit_mount: str,
    key_name: str,
    issuer_url: str,
    jwks_uri: str,
    publish_ahead: str,
    token_lifetime: str,
    clock_skew: str,
    rotation_period: str,
    out: Path,
) -> None:
    """Write .well-known/openid-configuration and the JWKS for a public static site."""
    identity = IssuerIdentity(issuer_url, jwks_uri)
    policy = IssuerPolicy(
        publish_ahead=parse_duration(publish_ahead),
        token_lifetime=parse_duration(token_lifetime),
        clock_skew=parse_duration(clock_skew),
        rotation_period=parse_duration(rotation_period),
    )
    transit, clock = _transit(config_path, transit_mount)
    done = export_documents(Issuer(transit, identity, clock, key_name=key_name, policy=policy), out)
    click.echo(f"wrote {done.discovery}")
    click.echo(f"wrote {done.jwks} ({len(done.kids)} key(s): versions {done.plan.published})")
    click.echo(f"upload {out}/ so that it is served at {identity.base}/")
    if done.plan.signer is None:
        when = done.plan.ready_at.isoformat() if done.plan.ready_at else "after a key exists"
        click.echo(f"no key version signs yet; the first one will at {when}")
    if done.plan.next_retirement is not None:
        click.echo(f"the JWKS drops a retired key at {done.plan.next_retirement.isoformat()}")
    if done.plan.rotation_due is not None:
        click.echo(
            f"the next rotation is due at {done.plan.rotation_due.isoformat()}: export and "
            "upload again after every rotation, within publish_ahead"
        )
