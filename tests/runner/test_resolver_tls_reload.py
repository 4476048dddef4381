"""The resolver's TLS pair is reloaded when its files change; a bad pair is refused.

As cert-manager or Vault PKI would: the files are replaced in place, the CA changes
with them. A connection already open keeps working, a client pinned to the new CA
connects after the switch, one pinned to the old CA no longer can, and a pair whose
key does not match is refused with a log line while the old pair keeps serving.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.clock import SystemClock
from sidecar.config import Config, DaemonConfig, VaultConfig
from sidecar.model import Phase
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.server import start_resolver
from sidecar.vault import VaultKV, connect
from tests.runner.conftest import RunnerWorld, seed
from tests.runner.test_resolver_tls import server_certificate


def serving(port: int, ca: bytes) -> bool:
    """A new connection trusting only ``ca`` can complete a health check."""
    trusted = grpc.ssl_channel_credentials(root_certificates=ca)
    with grpc.secure_channel(f"localhost:{port}", trusted) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError:
            return False
    return True


def install(pair: tuple[Path, Path], cert: Path, key: Path) -> None:
    """Replace the served files (each by rename, as a rotation tool does)."""
    for source, target in ((pair[1], key), (pair[0], cert)):
        temp = target.with_suffix(".tmp")
        shutil.copyfile(source, temp)
        temp.replace(target)


def test_rotation_keeps_serving_and_a_bad_pair_is_refused(
    world: RunnerWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed(world.store, datetime.now(UTC))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = server_certificate(tmp_path / "a")
    second = server_certificate(tmp_path / "b")
    cert, key = tmp_path / "tls.pem", tmp_path / "tls-key.pem"
    install(first, cert, key)
    config = Config(
        vault=VaultConfig(addr=world.addr, prefix=world.prefix),
        daemon=DaemonConfig(tls_cert=str(cert), tls_key=str(key)),
    )
    kv = VaultKV(connect(world.addr, token=world.plugin_token), "secret", world.prefix)
    handle = start_resolver(config, kv, SystemClock(), addr="127.0.0.1:0")
    token = world.bao.pb.server.root_token
    old_ca, new_ca = first[0].read_bytes(), second[0].read_bytes()
    kept = ResolverClient(f"localhost:{handle.port}", ca_file=str(first[0]))
    caplog.set_level(logging.INFO, logger="sidecar.resolver.tls")
    caplog.set_level(logging.INFO, logger="sidecar.tls_files")
    try:
        assert kept.resolve(token, "A", Phase.PLAN).client_secret.reveal() == "secret-of-I1"
        assert serving(handle.port, old_ca) and not serving(handle.port, new_ca)

        # A half-done rotation: the new certificate with the old key. Refused, old kept.
        shutil.copyfile(second[0], cert)
        assert serving(handle.port, old_ca)
        assert not serving(handle.port, new_ca)
        refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(refusals) == 1, refusals
        assert "refusing the new certificate/key" in refusals[0]
        assert "the key does not belong to the certificate" in refusals[0]
        assert "still serving the previous certificate" in refusals[0]
        assert handle.certificate is not None and handle.certificate.refusals == 1

        # The full rotation: the next connection gets the new pair.
        install(second, cert, key)
        assert serving(handle.port, new_ca)
        assert not serving(handle.port, old_ca)
        assert handle.certificate.reloads == 1
        assert any("serving the new certificate" in r.getMessage() for r in caplog.records)
        fresh = ResolverClient(f"localhost:{handle.port}", ca_file=str(second[0]))
        try:
            got = fresh.resolve(token, "A", Phase.APPLY)
            assert got.client_secret.reveal() == "secret-of-I2"
        finally:
            fresh.close()
        # The connection opened before the switch still serves.
        assert kept.resolve(token, "A", Phase.PLAN).client_secret.reveal() == "secret-of-I1"
    finally:
        kept.close()
        handle.stop(grace=0)
