"""The issuer at work: signs tokens through Transit, serves its JWKS and discovery.

Wiring only: it reads the clock and the Transit key, asks
:func:`sidecar.issuer.planner.plan` what holds, builds the documents with
:mod:`sidecar.issuer.documents` and has :class:`sidecar.transit.Transit` sign.

**Where "when was version N first published" is kept.** Nowhere of our own:
Transit's ``creation_time`` of each version is that fact, because the JWKS is
always computed from Transit's current key set (:meth:`Issuer.jwks` builds it
from a fresh key read, for the daemon to serve, and :mod:`sidecar.issuer.export`
writes it the same way), so a version is in every JWKS served from the moment
it exists. This makes rotation
crash-safe with no write-ahead record: a rotation is one Transit call, and
whatever its outcome (done, not done, unknown) the next key read shows the
truth; retirement only raises ``min_decryption_version``, which is idempotent.
Two replicas rotating at once add one spare version, which harms nothing
(the leader lease keeps it rare).

The assumption breaks where the JWKS is *not* served live: a static copy
(``azsidecar issuer export``) is published only when the operator uploads it.
Then a new version's publication starts at the upload, not at its creation,
so the operator must re-export on a schedule and add that interval to
``publish_ahead`` (the README says so); the export prints when the next
rotation is due and when the JWKS next drops a key.

Transit stamps versions with Vault's wall clock; :func:`transit_time` maps
a stamp into the issuer's clock: unchanged for the system clock (small
differences between Vault's and our clock are what ``clock_skew`` absorbs)
and for a :class:`~sidecar.clock.ManualClock` (a simulation must then move its
clock from the stamps Transit gives, as tests/test_issuer.py does), and through
the acceleration for an :class:`~sidecar.clock.AcceleratedClock` (the demo and
long emulated runs), without which a version made a second ago would look
hours old.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.clock import AcceleratedClock, Clock
from sidecar.crashpoints import crash_point
from sidecar.errors import InputError, NotReadyError, VaultError, VaultNotFound
from sidecar.issuer import documents
from sidecar.issuer.documents import IssuerIdentity, PublicKey, TokenRequest
from sidecar.issuer.planner import IssuerPolicy, KeyPlan, KeyVersion, plan
from sidecar.sensitive import Sensitive
from sidecar.transit import Transit, TransitKey

log = logging.getLogger(__name__)

DEFAULT_KEY_NAME = "azsidecar-issuer"


@dataclass(frozen=True)
class IssuedToken:
    """A signed token; :attr:`token` is a credential and never shows in ``repr``."""

    token: Sensitive = field(repr=False)
    kid: str
    version: int
    expires_at: datetime


def public_key(version: int, pem: str, key_name: str) -> PublicKey:
    """The RSA numbers of a Transit version's PEM public key."""
    try:
        loaded = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise VaultError(
            f"Transit key {key_name!r} version {version}: public key is not PEM"
        ) from exc
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise VaultError(f"Transit key {key_name!r} version {version} is not an RSA key")
    numbers = loaded.public_numbers()
    return PublicKey(version=version, n=numbers.n, e=numbers.e)


def transit_time(clock: Clock, stamp: datetime) -> datetime:
    """A Transit ``creation_time`` (Vault's wall clock) in ``clock``'s time."""
    return clock.at(stamp) if isinstance(clock, AcceleratedClock) else stamp


def key_versions(key: TransitKey, clock: Clock) -> list[KeyVersion]:
    return [KeyVersion(v.version, transit_time(clock, v.created)) for v in key.versions.values()]


class Issuer:
    """One issuer: its identity, its Transit key and its policy."""

    def __init__(
        self,
        transit: Transit,
        identity: IssuerIdentity,
        clock: Clock,
        *,
        key_name: str = DEFAULT_KEY_NAME,
        policy: IssuerPolicy | None = None,
    ) -> None:
        self.transit = transit
        self.identity = identity
        self.clock = clock
        self.key_name = key_name
        self.policy = policy or IssuerPolicy()

    def __repr__(self) -> str:
        return f"Issuer(url={self.identity.url!r}, key={self.key_name!r})"

    def read(self, now: datetime | None = None) -> tuple[TransitKey, KeyPlan]:
        """The key as Transit holds it now, and what the planner says of it at ``now``."""
        key = self.transit.read_key(self.key_name)
        return key, plan(key_versions(key, self.clock), self.policy, now or self.clock.now())

    def signing_from(self) -> datetime | None:
        """When a token can first be signed: None if it can now. A key not made yet
        (the daemon makes it, or ``azsidecar issuer init``) signs ``publish_ahead`` from now."""
        try:
            _, key_plan = self.read()
        except VaultNotFound:
            return self.clock.now() + self.policy.publish_ahead
        return None if key_plan.signer is not None else key_plan.ready_at

    def published_keys(self, key: TransitKey, key_plan: KeyPlan) -> list[PublicKey]:
        return [
            public_key(v, key.versions[v].public_key_pem, self.key_name) for v in key_plan.published
        ]

    def jwks(self) -> dict[str, Any]:
        """The JWKS: every version the planner says is published."""
        key, key_plan = self.read()
        return documents.jwks(self.published_keys(key, key_plan))

    def discovery(self) -> dict[str, Any]:
        return documents.discovery(self.identity)

    def sign_token(self, request: TokenRequest, lifetime: timedelta | None = None) -> IssuedToken:
        """A compact RS256 JWT for ``request``, signed in Transit by the planner's signer.

        NotReadyError (with ``ready_at``) while no version has been published
        for ``publish_ahead``; ``lifetime`` defaults to the policy's.
        """
        now = self.clock.now()
        key, key_plan = self.read(now)
        if key_plan.signer is None:
            raise NotReadyError(
                f"no version of issuer key {self.key_name!r} has been published for "
                "publish_ahead yet: tokens are signed only with keys verifiers can know",
                key_plan.ready_at,
            )
        seconds = int((lifetime or self.policy.token_lifetime).total_seconds())
        if seconds > self.policy.token_lifetime.total_seconds():
            raise InputError(
                "a token may not outlive the issuer's token_lifetime: its key could be "
                "retired while the token is still valid"
            )
        signer = public_key(
            key_plan.signer, key.versions[key_plan.signer].public_key_pem, self.key_name
        )
        head = documents.header(signer.kid)
        body = documents.claims(self.identity, request, now, seconds, uuid.uuid4().hex)
        signed = documents.signing_input(head, body)
        signature = self.transit.sign(self.key_name, signer.version, signed)
        token = documents.compact(signed, signature.value)
        log.debug(
            "issuer signed a token for %s with key version %d", request.subject, signer.version
        )
        return IssuedToken(
            token=Sensitive(token),
            kid=signer.kid,
            version=signer.version,
            expires_at=datetime.fromtimestamp(int(body["exp"]), tz=now.tzinfo),
        )

    def maintain(self) -> KeyPlan:
        """Create the key if missing, rotate it when due, retire what no token needs.

        Each step is one Transit call decided from a fresh read, so a crash
        anywhere leaves nothing to reconcile: the next call re-decides. A
        rotation repeated after an unclear answer adds one spare version, which
        is published ahead like any other and harms nothing.
        """
        key = self.transit.ensure_key(self.key_name)
        key_plan = plan(key_versions(key, self.clock), self.policy, self.clock.now())
        if key_plan.rotate:
            crash_point("issuer_before_rotate")
            key = self.transit.rotate(self.key_name)
            crash_point("issuer_after_rotate")
            log.info("issuer key %s rotated: version %d", self.key_name, key.latest_version)
            key_plan = plan(key_versions(key, self.clock), self.policy, self.clock.now())
        below = key_plan.retire_below
        if below is not None and below > key.min_decryption_version:
            self.transit.retire_below(self.key_name, below)
            log.info("issuer key %s: versions below %d retired", self.key_name, below)
        return key_plan
