"""The test plays OpenBao: start the plugin process the way go-plugin does."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sidecar.plugin.handshake import COOKIE_KEY, COOKIE_VALUE


@dataclass(frozen=True)
class HostCert:
    cert_pem: bytes
    key_pem: bytes


def host_cert(curve: ec.EllipticCurve | None = None) -> HostCert:
    """A one-time certificate shaped like go-plugin's AutoMTLS one (P-521, CA, localhost)."""
    key = ec.generate_private_key(curve or ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=30))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return HostCert(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


def plugin_env(cert: HostCert | None, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGIN_", "VAULT_", "BAO_"))}
    env[COOKIE_KEY] = COOKIE_VALUE
    env["PLUGIN_PROTOCOL_VERSIONS"] = "5"
    if cert is not None:
        env["PLUGIN_CLIENT_CERT"] = cert.cert_pem.decode()
    env.update(overrides)
    return env


def start_plugin(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-I", "-m", "sidecar.plugin"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Handshake:
    socket_path: str
    server_cert_pem: str


def read_handshake(process: subprocess.Popen[str]) -> Handshake:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    core, version, network, address, protocol, cert = line.split("|")
    assert (core, version, network, protocol) == ("1", "5", "unix", "grpc"), line
    der = base64.b64decode(cert + "=" * (-len(cert) % 4))
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    return Handshake(address, pem.decode())


def client_ssl(handshake: Handshake, cert: HostCert | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=handshake.server_cert_pem)
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        with tempfile.NamedTemporaryFile("wb", suffix=".pem") as handle:
            handle.write(cert.cert_pem + cert.key_pem)
            handle.flush()
            context.load_cert_chain(handle.name)
    return context
