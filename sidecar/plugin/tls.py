"""Mutual TLS between OpenBao and the plugin (go-plugin's AutoMTLS).

Each side makes a one-time self-signed certificate for ``localhost`` and
trusts only the other's: OpenBao passes its certificate in
``PLUGIN_CLIENT_CERT`` and reads ours from the handshake line. Our server
requires and verifies OpenBao's certificate, so only the OpenBao process that
started us can call the plugin; our client side (to OpenBao's broker) presents
ours and verifies OpenBao's. Python's ``ssl`` (OpenSSL) handles OpenBao's
ECDSA P-521 key. The private key never touches a disk: it is handed to OpenSSL
through an anonymous memory file where the platform has one.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOSTNAME = "localhost"


@dataclass(frozen=True, repr=False)
class Identity:
    """The plugin's one-time certificate and key (PEM), kept in memory only."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(
            serialization.Encoding.DER
        )


def generate_identity(now: datetime | None = None) -> Identity:
    """A self-signed certificate for ``localhost``, usable as server and client."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "azsidecar plugin"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=30))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTNAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return Identity(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@contextlib.contextmanager
def _secret_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``data`` from, gone when the block ends."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("azsidecar-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="azsidecar-tls-") as directory:
        path = os.path.join(directory, "key.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield path


def _load_identity(context: ssl.SSLContext, identity: Identity) -> None:
    with _secret_file(identity.cert_pem + identity.key_pem) as path:
        context.load_cert_chain(path)


def server_context(identity: Identity, client_cert_pem: str) -> ssl.SSLContext:
    """TLS for our gRPC server: present ours, require OpenBao's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_cert_pem)
    context.set_alpn_protocols(["h2"])
    _load_identity(context, identity)
    return context


def client_context(identity: Identity, server_cert_pem: str) -> ssl.SSLContext:
    """TLS for dialling OpenBao's brokered services: verify OpenBao, present ours."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.load_verify_locations(cadata=server_cert_pem)
    context.set_alpn_protocols(["h2"])
    _load_identity(context, identity)
    return context
