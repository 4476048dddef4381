"""``azsidecar integration``: create, set-kind, list, show, consent-url, delete."""

from __future__ import annotations

import json

import click

from sidecar.cli.common import config_option, friendly_errors, runtime
from sidecar.errors import InputError
from sidecar.integrations import Integrations, consent_url, validate_name
from sidecar.model import FEDERATED_NEVER_EXPIRES, CredentialKind
from sidecar.orphans import remove_orphans
from sidecar.ready import Ready, choose_for_kind
from sidecar.runtime import Runtime, federated_trust
from sidecar.store import IntegrationRecord

#: The credential kinds an integration can hand out, as the commands accept them.
KIND_CHOICE = click.Choice([k.value for k in CredentialKind], case_sensitive=False)


def _record(rt: Runtime, name: str) -> IntegrationRecord:
    found = rt.store.find_integration(validate_name(name))
    if found is None:
        raise InputError(f"no integration named {name!r}; see `azsidecar integration list`")
    return found[0]


def _service(rt: Runtime) -> Integrations:
    azure = rt.config.azure
    issuer = rt.issuer()
    return Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        app_name_prefix=azure.app_name_prefix,
        redirect_uri=azure.consent_redirect_uri,
        trust=federated_trust(rt.config),
        signing_from=issuer.signing_from if issuer is not None else None,
    )


@click.group()
def integration() -> None:
    """Azure AD applications, one per connected tenant."""


@integration.command()
@click.option("--name", required=True, help="Integration name: lowercase letters, digits, '-'.")
@click.option("--tenant", required=True, help="The user's tenant id (a GUID).")
@click.option("--subscription", default=None, help="Default subscription id (a GUID).")
@click.option(
    "--kind",
    type=KIND_CHOICE,
    default=CredentialKind.SECRET.value,
    show_default=True,
    help="What runs get: a client secret, a certificate (a PKCS#12 bundle), or a"
    " federated credential (short-lived tokens of azsidecar's issuer; needs [issuer] url).",
)
@config_option
@friendly_errors
def create(
    name: str, tenant: str, subscription: str | None, kind: str, config_path: str | None
) -> None:
    """Create the application, its first credential, and print the admin consent URL."""
    rt = runtime(config_path)
    record = _service(rt).create(name, tenant, subscription, kind.lower())
    noun = record.kind.noun
    click.echo(f"created integration {record.name}: application {record.display_name}")
    click.echo(f"  client id: {record.client_id}")
    click.echo(f"  first {noun} stored; it is ready for runs once it has replicated")
    click.echo("Ask a tenant administrator to grant consent:")
    click.echo(consent_url(rt.config.azure.login_url, record, rt.config.azure.consent_redirect_uri))


@integration.command("set-kind")
@click.argument("name")
@click.argument("kind", type=KIND_CHOICE)
@config_option
@friendly_errors
def set_kind(name: str, kind: str, config_path: str | None) -> None:
    """Switch what runs get (secret, certificate or federated), without a failed run.

    The daemon creates the new kind on its next tick; runs keep getting the
    old kind until the new one is ready, and the old one is then removed.
    """
    rt = runtime(config_path)
    record, changed = _service(rt).set_kind(name, kind.lower())
    noun = record.kind.noun
    if not changed:
        click.echo(f"integration {record.name} already hands out {noun}s")
        return
    click.echo(f"integration {record.name} now wants {noun}s")
    click.echo(
        f"  the daemon creates the first {noun} on its next tick; runs keep the current"
        " credential until it is ready, then the old kind is removed"
    )


@integration.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@config_option
@friendly_errors
def list_(as_json: bool, config_path: str | None) -> None:
    """List integrations (never secret values)."""
    rt = runtime(config_path)
    rows = []
    for name in rt.store.integration_names():
        record, _ = rt.store.integration(name)
        rows.append(
            {
                "name": record.name,
                "tenant_id": record.tenant_id,
                "client_id": record.client_id,
                "consent": record.consent,
                "status": record.status,
                "kind": record.kind,
                "secrets": len(rt.store.credentials(name)),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no integrations; create one with `azsidecar integration create`")
    for row in rows:
        click.echo(
            f"{row['name']:<24} tenant {row['tenant_id']}  client {row['client_id'] or '-':<36}"
            f"  {row['status']:<8} consent {row['consent']:<8} kind {row['kind']:<11}"
            f" credentials {row['secrets']}"
        )


@integration.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@config_option
@friendly_errors
def show(name: str, as_json: bool, config_path: str | None) -> None:
    """Show one integration and its credentials' timing (never a secret value)."""
    rt = runtime(config_path)
    record = _record(rt, name)
    now = rt.clock.now()
    stored = rt.store.credentials(name)
    choice = choose_for_kind(stored, record.kind, now, rt.config.timing, rt.store.probes(name))
    ready_version = choice.credential.version if isinstance(choice, Ready) else None
    secrets = [
        {
            "version": c.version,
            "kind": c.kind,
            "key_id": c.key_id,
            "created": c.created.isoformat(),
            # A federated credential never expires.
            "expires": "never" if c.expires >= FEDERATED_NEVER_EXPIRES else c.expires.isoformat(),
            "ready": c.version == ready_version,
        }
        for c in stored
    ]
    info: dict[str, object] = {
        "name": record.name,
        "tenant_id": record.tenant_id,
        "subscription_id": record.subscription_id,
        "client_id": record.client_id,
        "application_object_id": record.app_object_id,
        "display_name": record.display_name,
        "consent": record.consent,
        "status": record.status,
        "kind": record.kind,
        "created": record.created.isoformat(),
    }
    if as_json:
        click.echo(json.dumps({**info, "secrets": secrets}, indent=2))
        return
    for key, value in info.items():
        click.echo(f"{key:<22} {value}")
    for secret in secrets:
        mark = "  <- ready" if secret["ready"] else ""
        click.echo(
            f"  {secret['kind']} v{secret['version']} key {secret['key_id']}"
            f" created {secret['created']} expires {secret['expires']}{mark}"
        )


@integration.command("consent-url")
@click.argument("name")
@config_option
@friendly_errors
def consent_url_(name: str, config_path: str | None) -> None:
    """Print the admin consent URL for the integration's tenant."""
    rt = runtime(config_path)
    record = _record(rt, name)
    click.echo(consent_url(rt.config.azure.login_url, record, rt.config.azure.consent_redirect_uri))


@integration.command()
@click.argument("name")
@config_option
@friendly_errors
def delete(name: str, config_path: str | None) -> None:
    """Remove the application and its secrets from Azure and its data from Vault."""
    rt = runtime(config_path)
    removed = _service(rt).delete(name)
    if removed.application:
        click.echo(f"deleted application {removed.application} (and its client secrets) in Azure")
    else:
        click.echo("no application left in Azure")
    click.echo(f"destroyed {removed.secrets} stored secret(s)")
    click.echo("removed from Vault: " + ", ".join(removed.vault_paths))


@integration.command()
@click.option(
    "--delete", "delete_", is_flag=True, help="Delete the orphans found (default: only list)."
)
@config_option
@friendly_errors
def reconcile(delete_: bool, config_path: str | None) -> None:
    """Find applications named like ours that no integration records (and delete them).

    A gateway timeout on `integration create` can leave such an application in
    the platform tenant; nothing else would ever remove it.
    """
    rt = runtime(config_path)
    prefix = rt.config.azure.app_name_prefix
    result = remove_orphans(rt.graph(), rt.store, prefix, delete=delete_)
    if not result.found:
        click.echo(f"no orphaned applications named {prefix}-*")
        return
    removed = {a.object_id for a in result.removed}
    for app in result.found:
        state = "deleted" if app.object_id in removed else "orphaned"
        click.echo(f"{state:<9} {app.display_name}  client {app.app_id}  object {app.object_id}")
    if not delete_:
        click.echo("run `azsidecar integration reconcile --delete` to remove them from Azure")
