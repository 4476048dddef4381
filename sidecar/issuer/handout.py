"""Readers' side of the issuer: a run's federated token, signed at read time in Transit.

The plugin, the resolver and :func:`sidecar.resolve.resolve_credential` hand
out a federated credential as a token signed here (issue 18). Each reader
reads with its own Vault client and signs with it: the reader's token needs
``read`` on ``<transit_mount>/keys/<key>`` (the key's versions, to pick the
one the planner says signs) and ``update`` on
``<transit_mount>/sign/<key>/sha2-256`` (the signature), as the shipped
``plugin`` policy grants; nothing else of Transit.

The ``iss`` claim is the issuer URL stored with the federated credential
(what Entra ID compares it with), not the reader's own configuration, so a
reader needs no issuer URL. The key and the planner's rules
(``publish_ahead``, the token lifetime) must be the daemon's: a reader with a
shorter ``publish_ahead`` would sign with a version verifiers may not know yet.

Tokens are never cached: every read signs a new one (two Transit calls:
the key read and the signature), so a token handed out is always fresh and
lives ``token_lifetime`` from the read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sidecar.answers import FederatedToken
from sidecar.clock import Clock, SystemClock
from sidecar.errors import InputError, InvalidRecord
from sidecar.issuer.documents import IssuerIdentity, TokenRequest
from sidecar.issuer.planner import IssuerPolicy
from sidecar.issuer.signing import DEFAULT_KEY_NAME, Issuer
from sidecar.transit import Transit
from sidecar.vault import VaultKV

DEFAULT_TRANSIT_MOUNT = "transit"


@dataclass(frozen=True)
class TransitSigner:
    """Signs with the issuer's Transit key through the reader's own Vault client."""

    mount: str = DEFAULT_TRANSIT_MOUNT
    key: str = DEFAULT_KEY_NAME
    policy: IssuerPolicy = field(default_factory=IssuerPolicy)
    clock: Clock = field(default_factory=SystemClock)

    def sign(self, kv: VaultKV, issuer_url: str, request: TokenRequest) -> FederatedToken:
        """A token for ``request`` with ``iss = issuer_url``; NotReadyError until the key is."""
        try:
            identity = IssuerIdentity(issuer_url)
        except InputError:
            raise InvalidRecord(
                "the federated credential's issuer is not an https:// URL Entra can fetch"
            ) from None
        issuer = Issuer(
            Transit(kv.client, self.mount),
            identity,
            self.clock,
            key_name=self.key,
            policy=self.policy,
        )
        issued = issuer.sign_token(request)
        return FederatedToken(issued.token, issued.expires_at)


def reader_issuer_policy(
    publish_ahead: timedelta | None = None, token_lifetime: timedelta | None = None
) -> IssuerPolicy:
    """The planner's rules as a reader needs them: the defaults, with overrides.

    A reader never rotates, so ``rotation_period`` only has to satisfy the
    planner's check (longer than ``publish_ahead``).
    """
    base = IssuerPolicy()
    ahead = base.publish_ahead if publish_ahead is None else publish_ahead
    return IssuerPolicy(
        publish_ahead=ahead,
        token_lifetime=base.token_lifetime if token_lifetime is None else token_lifetime,
        clock_skew=base.clock_skew,
        rotation_period=max(base.rotation_period, ahead * 2),
    )
