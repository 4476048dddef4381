"""The mount's own storage, served by OpenBao over the broker (``pb.Storage``).

OpenBao encrypts it with its barrier and removes it when the mount is
disabled, so the plugin's configuration lives here, never on disk.
"""

from __future__ import annotations

from grpclib.client import Channel

from sidecar.errors import SidecarError
from sidecar.plugin.proto import backend_grpc, backend_pb2


class StorageError(SidecarError):
    """OpenBao's storage refused or failed an operation."""


class Storage:
    """Async key/value access to the mount's storage."""

    def __init__(self, channel: Channel) -> None:
        self._stub = backend_grpc.StorageStub(channel)

    async def get(self, key: str) -> bytes | None:
        reply = await self._stub.Get(backend_pb2.StorageGetArgs(key=key))
        _check(reply.err, "get", key)
        return reply.entry.value if reply.HasField("entry") else None

    async def put(self, key: str, value: bytes, *, seal_wrap: bool = False) -> None:
        entry = backend_pb2.StorageEntry(key=key, value=value, seal_wrap=seal_wrap)
        reply = await self._stub.Put(backend_pb2.StoragePutArgs(entry=entry))
        _check(reply.err, "put", key)

    async def delete(self, key: str) -> None:
        reply = await self._stub.Delete(backend_pb2.StorageDeleteArgs(key=key))
        _check(reply.err, "delete", key)

    async def list(self, prefix: str = "") -> list[str]:
        reply = await self._stub.List(backend_pb2.StorageListArgs(prefix=prefix))
        _check(reply.err, "list", prefix)
        return list(reply.keys)


def _check(err: str, operation: str, key: str) -> None:
    if err:
        raise StorageError(f"plugin storage {operation} {key!r} failed: {err[:200]}")
