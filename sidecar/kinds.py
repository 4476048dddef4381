"""The kinds of credential an integration hands out: a word of every creds answer.

Kept apart from :mod:`sidecar.model` (which re-exports it), like
:mod:`sidecar.phases`, so that the runner helper reads an answer's kind without
building the record classes at each start.
"""

from __future__ import annotations

from enum import StrEnum


class CredentialKind(StrEnum):
    """What an integration hands to runs; the integration record says which it wants."""

    SECRET = "secret"  # noqa: S105 - a kind of credential, not a password
    CERTIFICATE = "certificate"
    #: A federated identity credential on the application trusting azsidecar's
    #: OIDC issuer (:mod:`sidecar.issuer`): runs get a short-lived signed token.
    FEDERATED = "federated"

    @property
    def noun(self) -> str:
        """The word reasons and messages use for one credential of the kind."""
        return _NOUNS[self]


_NOUNS = {
    CredentialKind.SECRET: "secret",
    CredentialKind.CERTIFICATE: "certificate",
    CredentialKind.FEDERATED: "federated credential",
}
