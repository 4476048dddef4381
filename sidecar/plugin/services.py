"""The small services every go-plugin / OpenBao plugin server offers."""

from __future__ import annotations

import asyncio

from google.protobuf.empty_pb2 import Empty
from grpclib.server import Stream

from sidecar import __version__
from sidecar.plugin.proto import (
    goplugin_grpc,
    goplugin_pb2,
    multiplexing_grpc,
    multiplexing_pb2,
    version_grpc,
    version_pb2,
)


class Controller(goplugin_grpc.GRPCControllerBase):
    """``Shutdown``: OpenBao is done with us; the serve loop stops the server."""

    def __init__(self, shutdown: asyncio.Event) -> None:
        self._shutdown = shutdown

    async def Shutdown(self, stream: Stream[goplugin_pb2.Empty, goplugin_pb2.Empty]) -> None:
        await stream.recv_message()
        await stream.send_message(goplugin_pb2.Empty())
        self._shutdown.set()


class Stdio(goplugin_grpc.GRPCStdioBase):
    """Our log goes to the real stderr, which OpenBao already reads; the stream
    stays open and empty until shutdown so OpenBao does not see it fail."""

    def __init__(self, shutdown: asyncio.Event) -> None:
        self._shutdown = shutdown

    async def StreamStdio(self, stream: Stream[Empty, goplugin_pb2.StdioData]) -> None:
        await stream.recv_message()
        await stream.send_initial_metadata()
        await self._shutdown.wait()


class Version(version_grpc.PluginVersionBase):
    async def Version(self, stream: Stream[version_pb2.Empty, version_pb2.VersionReply]) -> None:
        await stream.recv_message()
        await stream.send_message(version_pb2.VersionReply(plugin_version=f"v{__version__}"))


class Multiplexing(multiplexing_grpc.PluginMultiplexingBase):
    """One process per mount: simpler, and a crash takes down one mount only."""

    async def MultiplexingSupport(
        self,
        stream: Stream[
            multiplexing_pb2.MultiplexingSupportRequest,
            multiplexing_pb2.MultiplexingSupportResponse,
        ],
    ) -> None:
        await stream.recv_message()
        await stream.send_message(multiplexing_pb2.MultiplexingSupportResponse(supported=False))
