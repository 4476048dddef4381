"""The plugin's gRPC server talks only to the OpenBao that started it.

The test plays OpenBao: it starts the plugin with its own P-521 certificate in
``PLUGIN_CLIENT_CERT``, then calls the plugin with that certificate, with
none, and with a stranger's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from grpclib.client import Channel
from grpclib.config import Configuration

from sidecar.plugin.proto import (
    backend_grpc,
    backend_pb2,
    goplugin_grpc,
    goplugin_pb2,
    multiplexing_grpc,
    multiplexing_pb2,
    version_grpc,
    version_pb2,
)
from tests.plugin.hosting import (
    Handshake,
    HostCert,
    client_ssl,
    host_cert,
    plugin_env,
    read_handshake,
    start_plugin,
)

HOST = host_cert()
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture
def hosted() -> Iterator[tuple[subprocess.Popen[str], Handshake]]:
    process = start_plugin(plugin_env(HOST))
    try:
        yield process, read_handshake(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def _first_bytes(handshake: Handshake, cert: HostCert | None) -> bytes:
    """What the server sends after the TLS handshake and the HTTP/2 preface."""
    context = client_ssl(handshake, cert)
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(5)
        raw.connect(handshake.socket_path)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            return tls.recv(64)


def test_openbao_certificate_is_served(hosted: tuple[subprocess.Popen[str], Handshake]) -> None:
    _, handshake = hosted
    assert _first_bytes(handshake, HOST)  # HTTP/2 SETTINGS from the server


@pytest.mark.parametrize(
    "cert",
    [None, host_cert(ec.SECP256R1()), host_cert()],
    ids=["no-client-cert", "stranger-p256", "stranger-p521"],
)
def test_other_callers_are_refused(
    hosted: tuple[subprocess.Popen[str], Handshake], cert: HostCert | None
) -> None:
    _, handshake = hosted
    try:
        received = _first_bytes(handshake, cert)
    except (ssl.SSLError, ConnectionError):
        return
    assert received == b"", "the plugin answered a caller without OpenBao's certificate"


async def _call_services(handshake: Handshake) -> None:
    channel = Channel(
        path=handshake.socket_path,
        ssl=client_ssl(handshake, HOST),
        config=Configuration(ssl_target_name_override="localhost"),
    )
    try:
        backend = backend_grpc.BackendStub(channel)
        assert (await backend.Type(backend_pb2.Empty())).type == 1
        version = await version_grpc.PluginVersionStub(channel).Version(version_pb2.Empty())
        assert version.plugin_version.startswith("v")
        plex = multiplexing_grpc.PluginMultiplexingStub(channel)
        reply = await plex.MultiplexingSupport(multiplexing_pb2.MultiplexingSupportRequest())
        assert reply.supported is False
        # Before Setup there is no backend: an error, not a crash.
        request = backend_pb2.Request(operation="read", path="config", data="{}")
        handled = await backend.HandleRequest(backend_pb2.HandleRequestArgs(request=request))
        assert handled.err.err_type == 2
        declined = backend_pb2.Request(operation="resolve-path", path="creds/A/plan")
        handled = await backend.HandleRequest(backend_pb2.HandleRequestArgs(request=declined))
        assert handled.err.err_type == 5  # unsupported operation
        await goplugin_grpc.GRPCControllerStub(channel).Shutdown(goplugin_pb2.Empty())
    finally:
        channel.close()


def test_services_answer_and_shutdown_stops_the_process(
    hosted: tuple[subprocess.Popen[str], Handshake],
) -> None:
    process, handshake = hosted
    asyncio.run(_call_services(handshake))
    assert process.wait(timeout=10) == 0
