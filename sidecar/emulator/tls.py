"""Certificates: the emulator's own CA and server certificate, and client certificates.

The CA signs a server certificate for ``127.0.0.1`` / ``localhost`` (IP and DNS
SANs). The CA certificate is written to a directory so clients can trust it
(``requests.Session().verify = ca_path``). When the directory already holds a CA
from an earlier run, it is reused so clients keep trusting restarts.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"


@dataclass(frozen=True)
class ServerTLS:
    """Where the CA certificate (for clients) and the server chain (for the server) live."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    cert_file, key_file = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if not (cert_file.is_file() and key_file.is_file()):
        return None
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < now + dt.timedelta(days=1):
        return None
    return cert, key


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azsidecar emulator CA")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_cert(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: tuple[str, ...]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def prepare_server_tls(directory: Path, extra_hosts: tuple[str, ...] = ()) -> ServerTLS:
    """Create (or reuse) the CA in ``directory`` and issue a fresh server certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    loaded = _load_ca(directory)
    if loaded is None:
        ca_cert, ca_key = _new_ca()
        _write_private(directory / CA_KEY_FILE, _pem_key(ca_key))
        _write_public(directory / CA_CERT_FILE, ca_cert.public_bytes(serialization.Encoding.PEM))
    else:
        ca_cert, ca_key = loaded
    hosts = tuple(dict.fromkeys(("127.0.0.1", "localhost", "::1", *extra_hosts)))
    cert, key = _server_cert(ca_cert, ca_key, hosts)
    _write_private(directory / SERVER_KEY_FILE, _pem_key(key))
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    _write_public(directory / SERVER_CERT_FILE, chain)
    return ServerTLS(
        ca_path=directory / CA_CERT_FILE,
        cert_path=directory / SERVER_CERT_FILE,
        key_path=directory / SERVER_KEY_FILE,
    )


@dataclass(frozen=True)
class ClientCertificate:
    """A self-signed client certificate, as an app would upload to Entra ID."""

    certificate_pem: str
    private_key_pem: str
    thumbprint_sha1: str
    thumbprint_sha256: str

    @property
    def der_base64(self) -> str:
        """The ``key`` value Graph's ``addKey`` and ``keyCredentials`` expect."""
        cert = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def generate_client_certificate(
    common_name: str,
    *,
    not_before: float | None = None,
    lifetime_days: float = 365.0,
) -> ClientCertificate:
    """An RSA-2048 self-signed certificate valid from ``not_before`` (epoch seconds)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = (
        dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        if not_before is None
        else dt.datetime.fromtimestamp(not_before, dt.UTC)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=lifetime_days))
        .sign(key, hashes.SHA256())
    )
    return ClientCertificate(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=_pem_key(key).decode(),
        thumbprint_sha1=cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )
