"""Key pairs made in memory: the management certificate's and the integrations' certificates.

A key is generated here, in the process's memory, and leaves it only to be
stored in Vault: as PEM for the management certificate
(:mod:`sidecar.management`), as a password-protected PKCS#12 bundle for an
integration's certificate credential (:func:`pkcs12_bundle`), which is what
the azurerm provider takes (``ARM_CLIENT_CERTIFICATE`` /
``ARM_CLIENT_CERTIFICATE_PASSWORD``). :func:`load_bundle` reads a stored
bundle back, for signing a proof of possession or a sign-in probe.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from sidecar.errors import SidecarError
from sidecar.sensitive import Sensitive

__all__ = [
    "BadBundle",
    "Bundle",
    "KeyPair",
    "generate_key_pair",
    "key_pair_from",
    "load_bundle",
    "pkcs12_bundle",
]


class BadBundle(SidecarError):
    """A stored PKCS#12 bundle that cannot be opened (never says why in terms of its content)."""


@dataclass(frozen=True)
class KeyPair:
    cert_pem: str
    cert_der: bytes
    key_pem: Sensitive = field(repr=False)
    thumbprint: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Bundle:
    """A PKCS#12 bundle in base64 and the password it is encrypted with."""

    pfx: Sensitive = field(repr=False)
    password: Sensitive = field(repr=False)


def generate_key_pair(common_name: str, now: datetime, lifetime: timedelta) -> KeyPair:
    """A new RSA key and a self-signed certificate valid from ``now``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before = now.replace(microsecond=0)
    not_after = not_before + lifetime
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return key_pair_from(cert, key)


def key_pair_from(cert: x509.Certificate, key: Any) -> KeyPair:
    der = cert.public_bytes(serialization.Encoding.DER)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return KeyPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert_der=der,
        key_pem=Sensitive(key_pem),
        thumbprint=hashlib.sha1(der).hexdigest().upper(),  # noqa: S324 - Azure's thumbprint
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def pkcs12_bundle(pair: KeyPair, friendly_name: str) -> Bundle:
    """The pair as one PKCS#12 bundle (one certificate, one key) under a random password.

    The legacy PKCS#12 algorithms (3DES key and certificate encryption, SHA-1
    MAC) are chosen on purpose: Go's ``golang.org/x/crypto/pkcs12``, which
    Terraform providers decode ``ARM_CLIENT_CERTIFICATE`` with, reads only
    those, while every newer reader reads them too. The password (32 random
    bytes, URL-safe) is what protects the bundle at rest outside Vault; with
    256 bits of entropy no key stretching is needed, so the KDF runs OpenSSL's
    default 2048 rounds (``PKCS12_DEFAULT_ITER``), which keeps opening a
    bundle, once per run and per probe, in milliseconds.
    """
    password = secrets.token_urlsafe(32)
    key = serialization.load_pem_private_key(pair.key_pem.reveal().encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadBundle("only RSA keys are bundled")
    cert = x509.load_der_x509_certificate(pair.cert_der)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())  # noqa: S303 - the MAC legacy PKCS#12 readers accept
        .build(password.encode())
    )
    der = pkcs12.serialize_key_and_certificates(friendly_name.encode(), key, cert, None, encryption)
    return Bundle(Sensitive(base64.b64encode(der).decode()), Sensitive(password))


def load_bundle(pfx: Sensitive, password: Sensitive) -> KeyPair:
    """The key pair inside a stored bundle; :class:`BadBundle` if it does not open."""
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(
            base64.b64decode(pfx.reveal(), validate=True), password.reveal().encode()
        )
    except ValueError:
        raise BadBundle("the stored PKCS#12 bundle does not open with its password") from None
    if key is None or cert is None:
        raise BadBundle("the stored PKCS#12 bundle lacks its key or its certificate")
    return key_pair_from(cert, key)
