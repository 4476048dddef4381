"""``azsidecar management init --federated``: the management identity without a certificate.

What it does, in order:

1. checks that ``[issuer]`` is configured and creates its Transit key if it
   is missing (as ``azsidecar issuer init`` does), saying when the key may
   first sign (``publish_ahead`` after its creation);
2. adds the federated credential to the management application through
   Graph when the daemon can still sign in with a management certificate
   (switching from ``certificate`` to ``federated``); otherwise, or when Graph
   refuses, prints the ``az`` command and the Graph request for the operator,
   who adds it once: the application cannot add a credential to itself
   before it can sign in;
3. records the identity with ``auth = federated`` in ``management/identity``.

It never creates, stores or touches a certificate.
"""

from __future__ import annotations

import click

from sidecar.errors import SidecarError
from sidecar.issuer.management import (
    FederatedCredentialSpec,
    az_command,
    ensure_management_credential,
    graph_request,
)
from sidecar.issuer.signing import key_versions
from sidecar.management import ManagementIdentity, choose_active, load_certificates, load_identity
from sidecar.runtime import Runtime


def _ensure_issuer_key(rt: Runtime) -> None:
    issuer = rt.issuer()
    if issuer is None:
        # load_config refuses management_auth = federated without it; here the
        # config may still say certificate.
        raise click.UsageError(
            "--federated needs the issuer: set [issuer] url (the public https:// URL the"
            " application will trust) and run this again"
        )
    key = issuer.transit.ensure_key(issuer.key_name)
    newest = max(key_versions(key, rt.clock), key=lambda v: v.version)
    may_sign = newest.created + issuer.policy.publish_ahead
    click.echo(
        f"issuer {issuer.identity.url}: Transit key {issuer.transit.mount}/keys/"
        f"{issuer.key_name} version {newest.version}, published since"
        f" {newest.created:%Y-%m-%d %H:%M} UTC, may sign from {may_sign:%Y-%m-%d %H:%M} UTC"
        " (issuer.publish_ahead)"
    )


def _certificate_signs_in(rt: Runtime, identity: ManagementIdentity) -> bool:
    """Whether the daemon can still sign in as this application with a certificate."""
    try:
        current = load_identity(rt.store)
    except SidecarError:
        return False
    if current.app_object_id != identity.app_object_id or current.auth != "certificate":
        return False
    certificates = load_certificates(rt.store)
    return choose_active(certificates, rt.clock.now(), rt.config.timing) is not None


def _add_with_certificate(
    rt: Runtime, identity: ManagementIdentity, spec: FederatedCredentialSpec
) -> bool:
    """Add the credential signed in with the current certificate; False if that failed."""
    try:
        graph = rt.graph(provider=rt.certificates())
        added = ensure_management_credential(graph, identity.app_object_id, spec)
    except SidecarError as exc:
        click.echo(f"could not add the federated credential with the current certificate: {exc}")
        return False
    state = "added" if added else "already present"
    click.echo(
        f"federated credential {spec.name!r} {state} on the management application"
        " (signed in with the current management certificate)"
    )
    return True


def init_federated(rt: Runtime, identity: ManagementIdentity) -> None:
    """Set up the management identity to sign in with the issuer's assertions."""
    _ensure_issuer_key(rt)
    spec = FederatedCredentialSpec(
        issuer=rt.config.issuer.identity().url, audience=rt.config.azure.management_audience
    )
    added = _certificate_signs_in(rt, identity) and _add_with_certificate(rt, identity, spec)
    rt.store.save_management_identity(identity)
    click.echo(
        f"stored the management identity: application {identity.client_id}, no certificate"
        " (auth = federated)"
    )
    if not added:
        click.echo(
            "\nAdd this federated identity credential to the management application once"
            " (the application cannot add it to itself before it can sign in), with the"
            " Azure CLI:\n"
        )
        click.echo("  " + az_command(identity.app_object_id, spec))
        click.echo("\nor with this Microsoft Graph request:\n")
        click.echo(graph_request(rt.config.azure.graph_url, identity.app_object_id, spec))
    click.echo(
        "\nEntra answers AADSTS70021 until the credential has replicated (minutes). Then set"
        ' [azure] management_auth = "federated" and run `azsidecar doctor`.'
    )
    if rt.config.azure.management_auth != "federated":
        click.echo(
            "Until then the daemon keeps signing in with its certificate; once doctor"
            " passes, the management certificates left on the application and in Vault"
            " are no longer used and can be removed."
        )
