"""go-plugin's connection broker, plugin side.

OpenBao opens ``plugin.GRPCBroker/StartStream`` and, for each service it
serves to the plugin (Storage, SystemView), streams a ``ConnInfo`` naming a
broker id and a socket. ``Backend.Setup`` then tells us which id is ours; we
dial that socket with mutual TLS. OpenBao waits on this stream when it
unmounts, so it must be served and must end when OpenBao closes it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.server import Stream

from sidecar.plugin.proto import goplugin_grpc, goplugin_pb2
from sidecar.plugin.tls import HOSTNAME

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 5.0


class BrokerError(Exception):
    """A brokered connection could not be set up."""


class Broker(goplugin_grpc.GRPCBrokerBase):
    """Collects the addresses OpenBao announces and dials them on request."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self._tls = tls
        self._announced: dict[int, asyncio.Future[goplugin_pb2.ConnInfo]] = {}

    def _slot(self, service_id: int) -> asyncio.Future[goplugin_pb2.ConnInfo]:
        if service_id not in self._announced:
            self._announced[service_id] = asyncio.get_running_loop().create_future()
        return self._announced[service_id]

    async def StartStream(
        self, stream: Stream[goplugin_pb2.ConnInfo, goplugin_pb2.ConnInfo]
    ) -> None:
        async for info in stream:
            if info.HasField("knock"):
                log.warning("ignoring a broker knock: gRPC broker multiplexing is not enabled")
                continue
            slot = self._slot(info.service_id)
            if slot.done():
                self._announced[info.service_id] = slot = asyncio.get_running_loop().create_future()
            slot.set_result(info)
        log.debug("broker stream closed by the server")

    async def dial(self, service_id: int, timeout: float = DIAL_TIMEOUT) -> Channel:
        """A TLS channel to the service OpenBao announced under ``service_id``."""
        try:
            info = await asyncio.wait_for(asyncio.shield(self._slot(service_id)), timeout)
        except TimeoutError as exc:
            raise BrokerError(f"OpenBao announced no broker connection {service_id}") from exc
        self._announced.pop(service_id, None)
        if info.network != "unix":
            raise BrokerError(f"unsupported broker network {info.network!r}")
        return Channel(
            path=info.address,
            ssl=self._tls,
            config=Configuration(ssl_target_name_override=HOSTNAME),
        )
