"""TLS certificates and keys of our listeners, reloaded when their files change.

cert-manager and Vault PKI rotate these files in place. A listener's
:class:`ReloadingPair` looks at the two files (a ``stat`` each) before each new
connection and, when they changed, loads and checks the new pair: the key must
match the certificate and the certificate must be valid now. A bad pair (a
half-written rotation, a mismatched key, an expired certificate) is refused with
one clear log line and the previous pair keeps serving; connections already open
are never touched. The gRPC resolver asks through
:class:`sidecar.resolver.tls.ReloadingCertificate`; the HTTPS listeners (the
resolver's ID-token endpoint, the issuer's documents) through
:class:`ReloadingServerContext`, one ``ssl`` context per pair.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sidecar.errors import ConfigError

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


@dataclass(frozen=True)
class LoadedPair:
    cert_pem: bytes
    key_pem: bytes
    not_after: datetime
    subject: str


class BadPair(Exception):
    """The files do not hold a usable certificate and key; the text says why."""


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load_pair(cert_path: str, key_path: str, now: datetime) -> LoadedPair:
    """Read and check a certificate (chain) and its key; BadPair when unusable."""
    try:
        cert_pem = Path(cert_path).read_bytes()
        key_pem = Path(key_path).read_bytes()
    except OSError as exc:
        raise BadPair(f"cannot read it: {exc.strerror}") from exc
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise BadPair(f"{cert_path} holds no PEM certificate") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BadPair(f"{key_path} holds no unencrypted PEM private key") from exc
    leaf = chain[0]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise BadPair("the key does not belong to the certificate")
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
        raise BadPair(
            f"the certificate is not valid now (valid {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}"
            f" to {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        )
    return LoadedPair(cert_pem, key_pem, leaf.not_valid_after_utc, leaf.subject.rfc4514_string())


class ReloadingPair:
    """The serving pair, swapped for the files' new content when that is usable."""

    def __init__(
        self,
        cert_path: str,
        key_path: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        setting: str = "daemon.tls_cert",
        label: str = "resolver TLS",
    ) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.now = now
        self.label = label
        self.reloads = 0
        self.refusals = 0
        self._lock = threading.Lock()
        self._seen: Signature = (_stat(cert_path), _stat(key_path))
        try:
            self.current = load_pair(cert_path, key_path, now())
        except BadPair as exc:
            raise ConfigError(setting, f"{cert_path} / {key_path}: {exc}") from exc

    def remaining_seconds(self) -> float:
        return (self.current.not_after - self.now()).total_seconds()

    def reload_if_changed(self) -> bool:
        """Take the files' new pair if they changed and it is usable; True if taken."""
        signature: Signature = (_stat(self.cert_path), _stat(self.key_path))
        with self._lock:
            if signature == self._seen:
                return False
            self._seen = signature
            try:
                pair = load_pair(self.cert_path, self.key_path, self.now())
            except BadPair as exc:
                self.refusals += 1
                log.error(
                    "%s: refusing the new certificate/key in %s / %s: %s;"
                    " still serving the previous certificate (%s, expires %s)",
                    self.label,
                    self.cert_path,
                    self.key_path,
                    exc,
                    self.current.subject,
                    self.current.not_after.isoformat(),
                )
                return False
            if pair.cert_pem == self.current.cert_pem and pair.key_pem == self.current.key_pem:
                return False
            self.current = pair
            self.reloads += 1
            log.info(
                "%s: serving the new certificate %s (expires %s) from %s",
                self.label,
                pair.subject,
                pair.not_after.isoformat(),
                self.cert_path,
            )
            return True


class ReloadingServerContext:
    """A server TLS context (TLS 1.2 or later) for an HTTPS listener, rebuilt from the files
    whenever :class:`ReloadingPair` takes a new pair; call it for each connection.

    ``ssl`` loads a pair only from files, so the new context loads the checked files
    again; should they change between the check and the load (a rotation in progress),
    the load fails or is caught at the next connection, and the previous context serves.
    """

    def __init__(
        self,
        cert_path: str,
        key_path: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        setting: str,
        label: str,
    ) -> None:
        self.pair = ReloadingPair(cert_path, key_path, now, setting=setting, label=label)
        self.setting = setting
        self._context = self._load()

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.pair.cert_path, self.pair.key_path)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                self.setting,
                f"cannot load the certificate {self.pair.cert_path} with the key"
                f" {self.pair.key_path}: {type(exc).__name__}",
            ) from exc
        return context

    def __call__(self) -> ssl.SSLContext:
        try:
            if self.pair.reload_if_changed():
                self._context = self._load()
        except Exception:  # never fail a connection over a reload: the old pair serves
            log.exception("%s: could not load the new certificate", self.pair.label)
        return self._context
