"""The resolver's TLS certificate and key, reloaded when their files change.

cert-manager and Vault PKI rotate these files in place. gRPC asks
:meth:`ReloadingCertificate.fetch` before every new handshake; it looks at the
two files (a ``stat`` each) and, when they changed, loads and checks the new pair:
the key must match the certificate and the certificate must be valid now. A bad
pair (a half-written rotation, a mismatched key, an expired certificate) is
refused with one clear log line and the previous pair keeps serving; connections
already open are never touched.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
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


class ReloadingCertificate:
    """The serving pair, swapped for the files' new content when that is usable."""

    def __init__(
        self,
        cert_path: str,
        key_path: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.now = now
        self.reloads = 0
        self.refusals = 0
        self._lock = threading.Lock()
        self._seen: Signature = (_stat(cert_path), _stat(key_path))
        try:
            self.current = load_pair(cert_path, key_path, now())
        except BadPair as exc:
            raise ConfigError("daemon.tls_cert", f"{cert_path} / {key_path}: {exc}") from exc

    def configuration(self) -> Any:
        return grpc.ssl_server_certificate_configuration(
            [(self.current.key_pem, self.current.cert_pem)]
        )

    def credentials(self) -> Any:
        return grpc.dynamic_ssl_server_credentials(self.configuration(), self.fetch)

    def remaining_seconds(self) -> float:
        return (self.current.not_after - self.now()).total_seconds()

    def fetch(self) -> Any:
        """gRPC's hook before each handshake: a new configuration, or None to keep the old."""
        try:
            return self._check()
        except Exception:  # never break a handshake over a reload bug
            log.exception("resolver TLS: unexpected error while checking for a new certificate")
            return None

    def _check(self) -> Any:
        signature: Signature = (_stat(self.cert_path), _stat(self.key_path))
        with self._lock:
            if signature == self._seen:
                return None
            self._seen = signature
            try:
                pair = load_pair(self.cert_path, self.key_path, self.now())
            except BadPair as exc:
                self.refusals += 1
                log.error(
                    "resolver TLS: refusing the new certificate/key in %s / %s: %s;"
                    " still serving the previous certificate (%s, expires %s)",
                    self.cert_path,
                    self.key_path,
                    exc,
                    self.current.subject,
                    self.current.not_after.isoformat(),
                )
                return None
            if pair.cert_pem == self.current.cert_pem and pair.key_pem == self.current.key_pem:
                return None
            self.current = pair
            self.reloads += 1
            log.info(
                "resolver TLS: serving the new certificate %s (expires %s) from %s",
                pair.subject,
                pair.not_after.isoformat(),
                self.cert_path,
            )
            return self.configuration()
