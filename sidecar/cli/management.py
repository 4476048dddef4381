"""``azsidecar management``: the management application's identity and certificate."""

from __future__ import annotations

import json
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

from sidecar.cli.common import config_option, friendly_errors, runtime
from sidecar.cli.management_federated import init_federated
from sidecar.errors import InputError
from sidecar.integrations import validate_guid
from sidecar.management import (
    KeyPair,
    ManagementIdentity,
    choose_active,
    generate_key_pair,
    key_pair_from,
    load_certificates,
    load_identity,
    save_identity,
    store_certificate,
)


@click.group()
def management() -> None:
    """The application the daemon signs in to Microsoft Graph as."""


def _import_pair(cert_path: str | None, key_path: str | None, pfx_path: str | None) -> KeyPair:
    try:
        if pfx_path:
            password = click.prompt(
                "PKCS#12 password (empty for none)", hide_input=True, default="", show_default=False
            )
            key, cert, _ = pkcs12.load_key_and_certificates(
                Path(pfx_path).read_bytes(), password.encode() or None
            )
            if key is None or cert is None:
                raise InputError(f"{pfx_path} must hold both a certificate and its private key")
            return key_pair_from(cert, key)
        if not (cert_path and key_path):
            raise InputError("give --cert and --key (PEM), or --pkcs12")
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
        return key_pair_from(cert, key)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the certificate: {type(exc).__name__}: {exc}") from exc


@management.command()
@click.option("--tenant", required=True, help="Tenant of the management application (GUID).")
@click.option("--app-object-id", required=True, help="Object id of the management application.")
@click.option("--client-id", required=True, help="Application (client) id.")
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False), help="PEM certificate.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), help="PEM private key.")
@click.option("--pkcs12", "pfx_path", type=click.Path(dir_okay=False), help="PKCS#12 bundle.")
@click.option("--key-id", default="", help="keyId Azure gave the uploaded certificate, if known.")
@click.option("--generate", is_flag=True, help="Make a new key pair and print the certificate.")
@click.option(
    "--federated",
    is_flag=True,
    help="No certificate: the application trusts the [issuer] (a federated credential).",
)
@config_option
@friendly_errors
def init(
    tenant: str,
    app_object_id: str,
    client_id: str,
    cert_path: str | None,
    key_path: str | None,
    pfx_path: str | None,
    key_id: str,
    generate: bool,
    federated: bool,
    config_path: str | None,
) -> None:
    """Store the identity and a first certificate in Vault (the key never touches disk).

    With --federated, store the identity alone and set up the federated
    credential the daemon signs in with instead (its audience is
    azure.management_audience; see the README).
    """
    rt = runtime(config_path)
    identity = ManagementIdentity(
        tenant_id=validate_guid(tenant, "tenant id"),
        app_object_id=validate_guid(app_object_id, "application object id"),
        client_id=validate_guid(client_id, "client id"),
        auth="federated" if federated else "certificate",
    )
    if federated:
        if generate or cert_path or key_path or pfx_path or key_id:
            raise InputError("--federated takes no certificate: drop --generate/--cert/--pkcs12")
        init_federated(rt, identity)
        return
    now = rt.clock.now()
    if generate:
        pair = generate_key_pair("azsidecar-management", now, rt.config.timing.cert_lifetime)
    else:
        pair = _import_pair(cert_path, key_path, pfx_path)
    save_identity(rt.store, identity)
    stored = store_certificate(rt.store, pair, key_id=key_id, uploaded_at=now)
    click.echo(
        f"stored certificate {stored.thumbprint} (version {stored.version}),"
        f" valid until {stored.not_after.isoformat()}"
    )
    if generate:
        click.echo("Upload this certificate to the management application (portal or PATCH):")
        click.echo(pair.cert_pem, nl=False)


@management.command()
@click.option("--json", "as_json", is_flag=True)
@config_option
@friendly_errors
def status(as_json: bool, config_path: str | None) -> None:
    """Certificates in Vault, their validity and which one is active (never the key)."""
    rt = runtime(config_path)
    identity = load_identity(rt.store)
    now = rt.clock.now()
    certificates = load_certificates(rt.store)
    active = choose_active(certificates, now, rt.config.timing)
    rows = [
        {
            "version": c.version,
            "thumbprint": c.thumbprint,
            "key_id": c.key_id,
            "not_after": c.not_after.isoformat(),
            "days_left": round((c.not_after - now).total_seconds() / 86400, 1),
            "active": active is not None and c.version == active.version,
        }
        for c in certificates
    ]
    if as_json:
        click.echo(json.dumps({"identity": identity.__dict__, "certificates": rows}, indent=2))
        return
    how = "a federated assertion" if identity.auth == "federated" else "a certificate"
    click.echo(
        f"management application {identity.client_id} in tenant {identity.tenant_id},"
        f" signing in with {how}"
    )
    if rt.config.azure.management_auth != identity.auth:
        click.echo(
            f"  note: azure.management_auth is {rt.config.azure.management_auth!r}: the daemon"
            f" signs in that way, not as recorded here"
        )
    for row in rows:
        mark = "  <- active" if row["active"] else ""
        click.echo(
            f"  v{row['version']} {row['thumbprint']} until {row['not_after']}"
            f" ({row['days_left']} days){mark}"
        )
