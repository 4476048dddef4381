"""``azsidecar issuer``: the OIDC issuer's signing key in Transit, and its static documents.

``init`` creates the Transit key (``rsa-2048``) if it is missing; ``export``
writes the discovery document and the JWKS for a public static site. Both log
in to Vault as the configuration says and take the issuer's settings from its
``[issuer]`` section; an option given here wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from sidecar.cli.common import config_option, friendly_errors, load
from sidecar.config import Config, IssuerConfig
from sidecar.durations import parse_duration
from sidecar.issuer.documents import DEFAULT_JWKS_PATH
from sidecar.issuer.export import export as export_documents
from sidecar.issuer.signing import Issuer
from sidecar.runtime import make_clock, make_login
from sidecar.transit import Transit

F = TypeVar("F", bound=Callable[..., Any])


def _key_options(fn: F) -> F:
    fn = click.option("--transit-mount", help="Transit mount (issuer.transit_mount).")(fn)
    fn = click.option("--key", "key_name", help="Transit key (issuer.key).")(fn)
    return config_option(fn)


def _settings(config_path: str | None, **given: str | None) -> tuple[Config, IssuerConfig]:
    """The configuration, its ``[issuer]`` section overridden by the options given."""
    config = load(config_path)
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        is_duration = isinstance(getattr(config.issuer, name), timedelta)
        changes[name] = parse_duration(value) if is_duration else value
    return config, dataclasses.replace(config.issuer, **changes)


def _transit(config: Config, settings: IssuerConfig) -> Transit:
    return Transit(make_login(config).client, settings.transit_mount)


@click.group()
def issuer() -> None:
    """azsidecar as an OIDC issuer: its signing key lives in Vault's Transit engine."""


@issuer.command()
@_key_options
@friendly_errors
def init(config_path: str | None, transit_mount: str | None, key_name: str | None) -> None:
    """Create the issuer's signing key (rsa-2048) in Transit if it does not exist."""
    config, settings = _settings(config_path, transit_mount=transit_mount, key=key_name)
    transit = _transit(config, settings)
    key = transit.ensure_key(settings.key)
    click.echo(
        f"Transit key {transit.mount}/keys/{settings.key}: type {key.type}, "
        f"versions {', '.join(str(v) for v in sorted(key.versions))}"
    )


@issuer.command()
@_key_options
@click.option(
    "--issuer-url",
    default=None,
    help="The public https:// URL of the issuer, the tokens' `iss` (issuer.url).",
)
@click.option(
    "--jwks-uri",
    default=None,
    help=f"Where the JWKS is served (issuer.jwks_uri; default <issuer-url>/{DEFAULT_JWKS_PATH}).",
)
@click.option(
    "--publish-ahead",
    default=None,
    help="How long a new key version is published before it signs (issuer.publish_ahead, "
    "24h): Entra's key cache, plus your export interval for a static site.",
)
@click.option("--token-lifetime", default=None, help="Token lifetime (issuer.token_lifetime).")
@click.option("--clock-skew", default=None, help="Margin for clocks (issuer.clock_skew).")
@click.option(
    "--rotation-period", default=None, help="Newest version's age that makes a rotation due."
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
    transit_mount: str | None,
    key_name: str | None,
    issuer_url: str | None,
    jwks_uri: str | None,
    publish_ahead: str | None,
    token_lifetime: str | None,
    clock_skew: str | None,
    rotation_period: str | None,
    out: Path,
) -> None:
    """Write .well-known/openid-configuration and the JWKS for a public static site."""
    config, settings = _settings(
        config_path,
        transit_mount=transit_mount,
        key=key_name,
        url=issuer_url,
        jwks_uri=jwks_uri,
        publish_ahead=publish_ahead,
        token_lifetime=token_lifetime,
        clock_skew=clock_skew,
        rotation_period=rotation_period,
    )
    identity = settings.identity()
    issuer = Issuer(
        _transit(config, settings),
        identity,
        make_clock(config),
        key_name=settings.key,
        policy=settings.policy(),
    )
    done = export_documents(issuer, out)
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
