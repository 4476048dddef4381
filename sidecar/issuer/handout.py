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

Tokens are never cached: every read signs a new one, so a token handed out
is always fresh and lives ``token_lifetime`` from the read. What is cached is
the key read (:class:`KeyCache`, a few seconds of the product's clock), so a
warm read costs one Transit call, the signature. That is safe because:

* a version the cached read lacks is younger than the cache, and no version
  signs before it is ``publish_ahead`` old: the cache is used only while its
  time to live is shorter than ``publish_ahead``, so the planner picks the
  same signer from the cached read as from a fresh one;
* a version the cached read still lists but Transit has retired (or a key
  deleted and made again under its name, whose versions restart at 1) makes
  the signature fail, or verify against another public key than the one the
  ``kid`` names: either way the cached read is dropped and the token signed
  again from a fresh read. A token whose signature does not verify against
  the key its ``kid`` names is never handed out.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import hvac
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sidecar.answers import FederatedToken
from sidecar.clock import Clock, SystemClock
from sidecar.errors import InputError, InvalidRecord, VaultError, VaultForbidden, VaultUnavailable
from sidecar.issuer.documents import IssuerIdentity, TokenRequest
from sidecar.issuer.planner import IssuerPolicy
from sidecar.issuer.signing import DEFAULT_KEY_NAME, IssuedToken, Issuer
from sidecar.transit import Transit, TransitKey
from sidecar.vault import VaultKV

DEFAULT_TRANSIT_MOUNT = "transit"
#: How long a key read is reused, on the product's clock (see the module docstring).
KEY_CACHE_TTL = timedelta(seconds=5)


class KeyCache:
    """The issuer key's last read per ``(mount, key)``, reused for ``ttl``; thread-safe."""

    def __init__(self, ttl: timedelta = KEY_CACHE_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], tuple[datetime, TransitKey]] = {}

    def get(
        self, mount: str, name: str, now: datetime, publish_ahead: timedelta
    ) -> TransitKey | None:
        if not timedelta(0) < self.ttl < publish_ahead:
            return None
        with self._lock:
            hit = self._keys.get((mount, name))
        if hit is None or not timedelta(0) <= now - hit[0] < self.ttl:
            return None
        return hit[1]

    def put(self, mount: str, name: str, now: datetime, key: TransitKey) -> None:
        with self._lock:
            self._keys[(mount, name)] = (now, key)

    def drop(self, mount: str, name: str) -> None:
        with self._lock:
            self._keys.pop((mount, name), None)


class _CachingTransit(Transit):
    """Transit whose key reads come from a :class:`KeyCache` while it is fresh."""

    def __init__(
        self,
        client: hvac.Client,
        mount: str,
        cache: KeyCache,
        clock: Clock,
        publish_ahead: timedelta,
    ) -> None:
        super().__init__(client, mount)
        self.cache = cache
        self.clock = clock
        self.publish_ahead = publish_ahead
        self.cached: TransitKey | None = None  # the cached read this signer used, if any

    def read_key(self, name: str) -> TransitKey:
        now = self.clock.now()
        hit = self.cache.get(self.mount, name, now, self.publish_ahead)
        if hit is not None:
            self.cached = hit
            return hit
        key = super().read_key(name)
        self.cache.put(self.mount, name, now, key)
        return key


def _verifies(issued: IssuedToken, key: TransitKey) -> bool:
    """Whether the token's signature verifies with the public key of the version that signed."""
    version = key.versions.get(issued.version)
    if version is None:
        return False
    public = serialization.load_pem_public_key(version.public_key_pem.encode("ascii"))
    if not isinstance(public, rsa.RSAPublicKey):
        return False
    signed, _, signature = issued.token.reveal().rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    try:
        public.verify(raw, signed.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class TransitSigner:
    """Signs with the issuer's Transit key through the reader's own Vault client."""

    mount: str = DEFAULT_TRANSIT_MOUNT
    key: str = DEFAULT_KEY_NAME
    policy: IssuerPolicy = field(default_factory=IssuerPolicy)
    clock: Clock = field(default_factory=SystemClock)
    #: Shared by the signers of one reader (the plugin makes a signer per request).
    keys: KeyCache = field(default_factory=KeyCache, compare=False)

    def sign(self, kv: VaultKV, issuer_url: str, request: TokenRequest) -> FederatedToken:
        """A token for ``request`` with ``iss = issuer_url``; NotReadyError until the key is."""
        try:
            identity = IssuerIdentity(issuer_url)
        except InputError:
            raise InvalidRecord(
                "the federated credential's issuer is not an https:// URL Entra can fetch"
            ) from None
        for _ in range(2):
            transit = _CachingTransit(
                kv.client, self.mount, self.keys, self.clock, self.policy.publish_ahead
            )
            issuer = Issuer(transit, identity, self.clock, key_name=self.key, policy=self.policy)
            try:
                issued = issuer.sign_token(request)
            except VaultForbidden as exc:
                raise VaultForbidden(
                    f"this reader's Vault token may not sign with Transit key {self.key!r}:"
                    f" it needs read on {transit.mount}/keys/{self.key} and update on"
                    f" {transit.mount}/sign/{self.key}/sha2-256 (the rendered plugin policy)",
                    path=exc.path,
                    status=exc.status,
                ) from exc
            except VaultUnavailable:
                raise
            except VaultError:
                if transit.cached is None:
                    raise
                self.keys.drop(transit.mount, self.key)  # a version retired since: read again
                continue
            if transit.cached is not None and not _verifies(issued, transit.cached):
                self.keys.drop(transit.mount, self.key)  # the key was made again: read again
                continue
            return FederatedToken(issued.token, issued.expires_at)
        raise VaultError(
            f"Transit key {self.key!r} changed twice while signing; retry",
            path=f"{self.mount}/keys/{self.key}",
        )


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
