"""The daemon's own identity, secretless: the issuer vouches for the management application.

With ``azure.management_auth = "federated"`` the management application holds
no certificate. A federated identity credential on it trusts our issuer for
one subject, :data:`MANAGEMENT_SUBJECT`, and the daemon signs in to Graph with
a client assertion the issuer signs through Transit
(:func:`assertion_credential`): nothing secret is stored, nothing rotates but
the issuer's own key.

The operator adds that federated credential once, by hand: the management
application cannot add a credential to itself before it can sign in, and it
cannot sign in before the credential exists. :func:`az_command` and
:func:`graph_request` print the two ways of doing it;
:func:`ensure_management_credential` adds it through Graph when the daemon can
still sign in another way (switching from a certificate), since
``Application.ReadWrite.OwnedBy`` lets an application that owns itself add
credentials to itself.

Graph's API for it: ``GET`` / ``POST /applications/{id}/federatedIdentityCredentials``
with ``name``, ``issuer``, ``subject``, ``audiences`` (one) and ``description``
(learn.microsoft.com/graph/api/application-post-federatedidentitycredentials);
the same JSON is what ``az ad app federated-credential create --id <app>
--parameters <json>`` takes (learn.microsoft.com/cli/azure/ad/app/federated-credential).
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sidecar.errors import InputError
from sidecar.graph import AssertionCredential, FederatedCredential, GraphClient
from sidecar.issuer.documents import ENTRA_AUDIENCE, TokenRequest
from sidecar.issuer.signing import Issuer

log = logging.getLogger(__name__)

#: The ``sub`` of the daemon's own assertions, and of the management
#: application's federated credential. Runs' subjects are
#: ``azsidecar:integration:...`` (:func:`sidecar.model.federated_subject`), so
#: no run's token can ever pass for the daemon.
MANAGEMENT_SUBJECT = "azsidecar:management"
#: The ``stack`` and ``phase`` claims of the daemon's assertions: not a stack,
#: the daemon (Entra ignores them; they tell a reader of the token who it was).
MANAGEMENT_STACK = "azsidecar"
MANAGEMENT_PHASE = "daemon"
#: The ``name`` of the management application's federated credential. Not
#: ``azsidecar-<...>``: that form names an integration's credential by its
#: intent (:func:`sidecar.model.intent_of_federated`), and this one is no intent's.
MANAGEMENT_CREDENTIAL_NAME = "azsidecar_management"


def management_request(audience: str = ENTRA_AUDIENCE) -> TokenRequest:
    """What the daemon's assertion says of itself."""
    return TokenRequest(
        subject=MANAGEMENT_SUBJECT,
        stack=MANAGEMENT_STACK,
        phase=MANAGEMENT_PHASE,
        integration="management",
        audience=audience,
    )


def assertion_credential(issuer: Issuer, audience: str = ENTRA_AUDIENCE) -> AssertionCredential:
    """A credential whose every use signs a fresh assertion through ``issuer``.

    The assertion lives for the issuer's ``token_lifetime``: MSAL sends it
    at once and Entra only checks it at the exchange. Signing raises
    :class:`~sidecar.errors.NotReadyError` while no key version has been
    published for ``publish_ahead`` and a VaultError when Transit cannot sign.
    """
    request = management_request(audience)

    def sign() -> str:
        issued = issuer.sign_token(request)
        log.debug("signed a management assertion with issuer key version %d", issued.version)
        return issued.token.reveal()

    return AssertionCredential(sign=sign, label=issuer.identity.url)


@dataclass(frozen=True)
class FederatedCredentialSpec:
    """The federated credential the management application needs."""

    issuer: str
    audience: str = ENTRA_AUDIENCE
    subject: str = MANAGEMENT_SUBJECT
    name: str = MANAGEMENT_CREDENTIAL_NAME

    def body(self) -> dict[str, Any]:
        """Graph's (and ``az``'s) JSON for it."""
        return {
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audiences": [self.audience],
            "description": "azsidecar daemon: signs in to Graph without a certificate",
        }

    def matches(self, found: FederatedCredential) -> bool:
        """Whether a federated credential as Graph lists it trusts exactly this."""
        return (found.issuer, found.subject, found.audience) == (
            self.issuer,
            self.subject,
            self.audience,
        )


def az_command(app_object_id: str, spec: FederatedCredentialSpec) -> str:
    """The Azure CLI command that adds the credential."""
    parameters = json.dumps(spec.body(), separators=(",", ":"))
    return (
        f"az ad app federated-credential create --id {shlex.quote(app_object_id)}"
        f" --parameters {shlex.quote(parameters)}"
    )


def graph_request(graph_url: str, app_object_id: str, spec: FederatedCredentialSpec) -> str:
    """The Graph request that adds the credential, as text to paste (Graph Explorer, curl)."""
    path = f"/v1.0/applications/{quote(app_object_id, safe='')}/federatedIdentityCredentials"
    return (
        f"POST {graph_url.rstrip('/')}{path}\n"
        "Content-Type: application/json\n\n"
        f"{json.dumps(spec.body(), indent=2)}"
    )


def find_management_credential(
    graph: GraphClient, app_object_id: str, spec: FederatedCredentialSpec
) -> FederatedCredential | None:
    """The application's federated credential named ``spec.name``, as Graph lists it."""
    listed = graph.list_federated_credentials(app_object_id, fresh=True)
    return next((c for c in listed if c.name == spec.name), None)


def ensure_management_credential(
    graph: GraphClient, app_object_id: str, spec: FederatedCredentialSpec
) -> bool:
    """Add the credential to the application unless it is there; True if it was added.

    InputError when a credential of that name trusts something else (names
    are unique and immutable on an application: delete it first). A write
    with no clear answer, or one refused as a duplicate, is settled by
    :meth:`GraphClient.add_federated_credential`, which looks it up by name.
    """
    found = find_management_credential(graph, app_object_id, spec)
    if found is not None:
        if spec.matches(found):
            return False
        raise InputError(
            f"the management application already has a federated credential named "
            f"{spec.name!r} trusting another issuer, subject or audience: delete it "
            f"(az ad app federated-credential delete --id {app_object_id} "
            f"--federated-credential-id {spec.name}) and run this again"
        )
    graph.add_federated_credential(
        app_object_id, spec.name, spec.issuer, spec.subject, spec.audience
    )
    return True
