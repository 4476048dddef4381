"""The resolver over TLS with a server certificate, and the runner helper trusting its CA."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.cli.creds import creds
from sidecar.clock import SystemClock
from sidecar.config import Config, DaemonConfig, VaultConfig
from sidecar.resolver.server import start_resolver
from sidecar.vault import VaultKV, connect
from tests.runner.conftest import RunnerWorld, seed, write_file
from tests.runner.test_cli import _runner_args


def server_certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azsidecar resolver")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = write_file(
        tmp_path / "resolver.pem", cert.public_bytes(serialization.Encoding.PEM).decode()
    )
    key_path = write_file(
        tmp_path / "resolver-key.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    return cert_path, key_path


def test_resolver_serves_tls_and_the_helper_verifies_it(world: RunnerWorld, tmp_path: Path) -> None:
    seed(world.store, datetime.now(UTC))
    cert, key = server_certificate(tmp_path)
    config = Config(
        vault=VaultConfig(addr=world.addr, prefix=world.prefix),
        daemon=DaemonConfig(tls_cert=str(cert), tls_key=str(key)),
    )
    kv = VaultKV(connect(world.addr, token=world.plugin_token), "secret", world.prefix)
    handle = start_resolver(config, kv, SystemClock(), mount="azure", addr="127.0.0.1:0")
    try:
        trusted = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"localhost:{handle.port}", trusted) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        # A plaintext client cannot talk to it.
        with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
                raise AssertionError("a plaintext call succeeded against a TLS resolver")
            except grpc.RpcError as exc:
                assert exc.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
        args = [
            *_runner_args(world, tmp_path, "A", "apply"),
            "--via",
            "resolver",
            "--resolver",
            f"localhost:{handle.port}",
            "--resolver-ca",
            str(cert),
            "--format",
            "json",
        ]
        result = CliRunner().invoke(creds, args, env=world.env(VAULT_TOKEN=None))
        assert result.exit_code == 0, result.output
        assert "secret-of-I2" in result.stdout
    finally:
        handle.stop(grace=0)
