"""Doctor's checks of a federated management identity (``azure.management_auth = federated``).

In order: the identity in Vault and the mode it records; the issuer's Transit
key (readable, and a version published for ``publish_ahead`` so that it may
sign); then a sign-in with a freshly signed assertion, whose failure is
explained by its AADSTS code.

The codes, from Microsoft's list
(learn.microsoft.com/entra/identity-platform/reference-error-codes) and from
the workload-identity reports that quote them (github.com/Azure/azure-workload-identity
issues 616, 1130, 1200, 1232; learn.microsoft.com/azure/devops/pipelines/release/
troubleshoot-workload-identity), are in :data:`SIGN_IN_HINTS`.
"""

from __future__ import annotations

from sidecar.doctor.check import Check
from sidecar.errors import GraphError, NotReadyError, SidecarError
from sidecar.graph import GraphClient
from sidecar.issuer.management import MANAGEMENT_SUBJECT
from sidecar.issuer.signing import Issuer
from sidecar.management import ManagementNotInitialised, load_identity
from sidecar.store import Store

_ADD = "azsidecar management init --federated prints the credential to add"

#: What an AADSTS code answered to the daemon's assertion means here, and what to do.
SIGN_IN_HINTS: dict[str, str] = {
    "AADSTS70021": (
        "no federated credential of the management application matches the assertion"
        f" (issuer, subject {MANAGEMENT_SUBJECT!r}, audience); if it was added minutes ago,"
        f" it has not replicated yet: try again shortly; else {_ADD}"
    ),
    "AADSTS700211": (
        "the federated credential's issuer is not issuer.url exactly (a trailing '/' counts):"
        f" {_ADD}"
    ),
    "AADSTS700212": (
        f"the federated credential's audience is not azure.management_audience: {_ADD}"
    ),
    "AADSTS700213": (
        f"the federated credential's subject must be {MANAGEMENT_SUBJECT!r} exactly: {_ADD}"
    ),
    "AADSTS50166": (
        "Entra could not fetch the issuer's discovery document or JWKS: they must be served"
        " over public HTTPS at issuer.url (the daemon's issuer listener, or a static site fed"
        " by `azsidecar issuer export`)"
    ),
    "AADSTS7000272": (
        "the signing key is not in the issuer's published JWKS: a static JWKS is out of date"
        " (run `azsidecar issuer export` again and upload it)"
    ),
    "AADSTS50013": "the assertion's signature does not verify with the issuer's published key",
    "AADSTS700024": (
        "the assertion is not within its valid time range: check this host's clock"
        " against Entra's (and issuer.clock_skew)"
    ),
    "AADSTS50027": "Entra could not read the assertion as a JWT",
    "AADSTS700016": (
        "the tenant does not know the management application's client id (a wrong"
        " --client-id, or an application created moments ago)"
    ),
}


def federated_identity(store: Store) -> tuple[Check, bool]:
    """The management identity in Vault and the mode it records; True if it can be tried."""
    try:
        identity = load_identity(store)
    except ManagementNotInitialised as exc:
        return Check("fail", str(exc), "azsidecar management init --federated"), False
    except SidecarError as exc:
        return Check("fail", f"cannot read the management identity: {exc}"), False
    if identity.auth != "federated":
        return Check(
            "warn",
            f"management application {identity.client_id}: azure.management_auth is federated"
            f" but management/identity records {identity.auth} sign-in",
            "azsidecar management init --federated (it records the mode and prints the"
            " federated credential)",
        ), True
    return Check(
        "ok",
        f"management application {identity.client_id}: federated sign-in, no certificate",
    ), True


def issuer_key(issuer: Issuer | None) -> Check:
    """The issuer configured, its Transit key readable and a version allowed to sign."""
    if issuer is None:
        return Check("fail", "azure.management_auth is federated but issuer.url is not set")
    try:
        key, key_plan = issuer.read()
    except SidecarError as exc:
        return Check(
            "fail",
            f"issuer key: {exc}",
            "azsidecar issuer init, and a Vault policy allowing read and sign on the key",
        )
    if key_plan.signer is None:
        when = f"{key_plan.ready_at:%Y-%m-%d %H:%M} UTC" if key_plan.ready_at else "unknown"
        return Check(
            "fail",
            f"issuer key {issuer.key_name}: no version published for issuer.publish_ahead yet;"
            f" the daemon can sign in from {when}",
            "wait: Entra may still hold a JWKS without the new key",
        )
    return Check(
        "ok",
        f"issuer {issuer.identity.url}: key {issuer.key_name} version {key_plan.signer} signs"
        f" ({len(key_plan.published)} published, latest version {key.latest_version})",
    )


def federated_sign_in(graph: GraphClient) -> Check:
    """A sign-in with a freshly signed assertion, or what its AADSTS code means."""
    try:
        graph.check_sign_in()
    except NotReadyError as exc:
        return Check("fail", f"cannot sign the assertion: {exc}")
    except GraphError as exc:
        hint = SIGN_IN_HINTS.get(exc.code, "")
        return Check(
            "fail",
            f"the management application could not sign in with its federated assertion: {exc}",
            hint or "see the AADSTS code at https://login.microsoftonline.com/error",
        )
    except SidecarError as exc:
        return Check("fail", f"cannot sign the assertion: {exc}")
    return Check(
        "ok",
        f"signed in to Graph as {graph.client_id} with a federated assertion"
        f" (subject {MANAGEMENT_SUBJECT})",
    )
