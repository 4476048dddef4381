"""The mount's cached configuration, and the login built from it, never outlive a change.

A load that awaits the storage read while a save, a delete or OpenBao's
invalidation of ``config`` (a performance standby or replica hearing of a
write on the active node) lands must not cache what it read before; nor may a
login made from the old configuration be kept once the new one is stored.

The storage is the mount's own, reached over the plugin's real ``pb.Storage``
gRPC protocol: the test serves it in-process, as OpenBao does over the broker,
and decides when each read is answered. The Vault the plugin logs in to is a
real OpenBao.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import hvac
import pytest
from grpclib.client import Channel
from grpclib.server import Server, Stream

from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.errors import InputError, VaultError
from sidecar.plugin.backend import AzureBackend
from sidecar.plugin.path_config import STORAGE_KEY, PluginConfig
from sidecar.plugin.proto import backend_grpc, backend_pb2
from sidecar.plugin.storage import Storage
from sidecar.vault import VaultKV
from sidecar.vault_login import VaultLogin

T = TypeVar("T")
OLD = PluginConfig(vault_addr="https://old.example.com:8200", prefix="old", token="old-token")
NEW = PluginConfig(vault_addr="https://new.example.com:8200", prefix="new", token="new-token")
WAIT = 10.0  # seconds; only a broken test waits this long


@dataclass
class MountStorage(backend_grpc.StorageBase):
    """The mount's storage as OpenBao serves it; reads are answered when the test says.

    A read takes the stored value when it arrives (as the storage does) and,
    while ``held``, answers only once ``release`` is set.
    """

    entries: dict[str, bytes] = field(default_factory=dict, repr=False)  # holds credentials
    held: bool = False
    reads: int = 0
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def Get(
        self, stream: Stream[backend_pb2.StorageGetArgs, backend_pb2.StorageGetReply]
    ) -> None:
        args = await stream.recv_message()
        assert args is not None
        self.reads += 1
        value = self.entries.get(args.key)
        self.reading.set()
        if self.held:
            await self.release.wait()
        entry = None if value is None else backend_pb2.StorageEntry(key=args.key, value=value)
        await stream.send_message(backend_pb2.StorageGetReply(entry=entry))

    async def Put(
        self, stream: Stream[backend_pb2.StoragePutArgs, backend_pb2.StoragePutReply]
    ) -> None:
        args = await stream.recv_message()
        assert args is not None
        self.entries[args.entry.key] = args.entry.value
        await stream.send_message(backend_pb2.StoragePutReply())

    async def Delete(
        self, stream: Stream[backend_pb2.StorageDeleteArgs, backend_pb2.StorageDeleteReply]
    ) -> None:
        args = await stream.recv_message()
        assert args is not None
        self.entries.pop(args.key, None)
        await stream.send_message(backend_pb2.StorageDeleteReply())

    async def List(
        self, stream: Stream[backend_pb2.StorageListArgs, backend_pb2.StorageListReply]
    ) -> None:
        args = await stream.recv_message()
        assert args is not None
        keys = [key for key in self.entries if key.startswith(args.prefix)]
        await stream.send_message(backend_pb2.StorageListReply(keys=keys))

    def hold(self) -> None:
        """Keep the next reads waiting until :meth:`answer`."""
        self.held = True
        self.reading.clear()
        self.release.clear()

    def answer(self) -> None:
        self.held = False
        self.release.set()


@asynccontextmanager
async def served(storage: MountStorage) -> AsyncIterator[Storage]:
    """The plugin's :class:`Storage` client talking to ``storage`` over a Unix socket."""
    workdir = tempfile.mkdtemp(prefix="azt-")  # short: socket paths have 108 bytes
    socket_path = str(Path(workdir) / "storage.sock")
    server = Server([storage])
    await server.start(path=socket_path)
    channel = Channel(path=socket_path)
    try:
        yield Storage(channel)
    finally:
        channel.close()
        server.close()
        await server.wait_closed()
        shutil.rmtree(workdir, ignore_errors=True)


def run(scenario: Callable[[MountStorage, AzureBackend], Awaitable[T]]) -> T:
    """Run ``scenario`` against a backend whose storage holds the ``OLD`` configuration."""

    async def main() -> T:
        storage = MountStorage(entries={STORAGE_KEY: OLD.to_json()})
        async with served(storage) as client:
            backend = AzureBackend(client)
            try:
                return await asyncio.wait_for(scenario(storage, backend), WAIT)
            finally:
                backend.close()

    return asyncio.run(main())


async def _load_overtaken_by(
    storage: MountStorage, backend: AzureBackend, change: Callable[[], Awaitable[None]]
) -> tuple[PluginConfig | None, PluginConfig | None]:
    """A load starts and awaits its read; ``change`` lands; the read answers."""
    storage.hold()
    load = asyncio.create_task(backend.load_config())
    await storage.reading.wait()  # the load awaits the storage read of the old value
    await change()
    storage.answer()
    overtaken = await load
    return overtaken, await backend.load_config()


def test_a_save_during_a_load_is_what_the_next_load_returns() -> None:
    async def scenario(storage: MountStorage, backend: AzureBackend) -> None:
        overtaken, after = await _load_overtaken_by(
            storage, backend, lambda: backend.save_config(NEW)
        )
        assert after == NEW
        assert overtaken == NEW  # the overtaken load read again rather than answer the old value

    run(scenario)


def test_an_invalidation_during_a_load_is_what_the_next_load_returns() -> None:
    async def replica_hears_of_a_write(storage: MountStorage, backend: AzureBackend) -> None:
        # The active node wrote the new configuration; OpenBao tells this one to forget it.
        storage.entries[STORAGE_KEY] = NEW.to_json()
        backend.invalidate(STORAGE_KEY)

    async def scenario(storage: MountStorage, backend: AzureBackend) -> None:
        overtaken, after = await _load_overtaken_by(
            storage, backend, lambda: replica_hears_of_a_write(storage, backend)
        )
        assert after == NEW
        assert overtaken == NEW

    run(scenario)


def test_a_delete_during_a_load_leaves_the_engine_unconfigured() -> None:
    async def scenario(storage: MountStorage, backend: AzureBackend) -> None:
        overtaken, after = await _load_overtaken_by(storage, backend, backend.delete_config)
        assert after is None
        assert overtaken is None

    run(scenario)


def test_a_load_after_the_read_cached_it_still_sees_a_later_save() -> None:
    async def scenario(storage: MountStorage, backend: AzureBackend) -> None:
        assert await backend.load_config() == OLD
        await backend.save_config(NEW)
        assert await backend.load_config() == NEW

    run(scenario)


def test_concurrent_loads_share_one_storage_read() -> None:
    async def scenario(storage: MountStorage, backend: AzureBackend) -> None:
        storage.hold()
        loads = [asyncio.create_task(backend.load_config()) for _ in range(5)]
        await storage.reading.wait()
        await asyncio.sleep(0.05)  # let the other loads reach storage, if they would
        storage.answer()
        assert await asyncio.gather(*loads) == [OLD] * 5
        assert storage.reads == 1
        assert await backend.load_config() == OLD
        assert storage.reads == 1

    run(scenario)


class GatedBackend(AzureBackend):
    """The real backend, whose login to Vault waits until the test lets it go on."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self.connecting = threading.Event()
        self.proceed = threading.Event()
        self.connected: list[PluginConfig] = []

    def _connect(self, config: PluginConfig) -> tuple[VaultKV, VaultLogin]:
        self.connected.append(config)
        self.connecting.set()
        assert self.proceed.wait(WAIT)
        return super()._connect(config)


@pytest.mark.parametrize("how", ["save", "invalidate", "delete", "close"])
def test_a_login_made_from_the_old_configuration_is_not_kept(
    openbao: OpenBaoDevServer, root_client: hvac.Client, how: str
) -> None:
    created = root_client.auth.token.create(policies=["root"], ttl="10m")
    new_token = created["auth"]["client_token"]
    old = PluginConfig(vault_addr=openbao.addr, prefix="old", token=openbao.root_token)
    new = PluginConfig(vault_addr=openbao.addr, prefix="new", token=new_token)

    async def main() -> None:
        storage = MountStorage(entries={STORAGE_KEY: old.to_json()})
        async with served(storage) as client:
            backend = GatedBackend(client)
            try:
                connect = asyncio.create_task(backend.with_kv(lambda kv: kv))
                # The login from the old configuration is under way (in its thread) ...
                assert await asyncio.to_thread(backend.connecting.wait, WAIT)
                # ... when the configuration changes.
                if how == "save":
                    await backend.save_config(new)
                elif how == "invalidate":
                    storage.entries[STORAGE_KEY] = new.to_json()
                    backend.invalidate(STORAGE_KEY)
                elif how == "delete":
                    await backend.delete_config()
                else:  # OpenBao's Cleanup: the mount is going away
                    backend.close()
                backend.proceed.set()
                if how in ("delete", "close"):
                    error = InputError if how == "delete" else VaultError
                    reason = "not configured" if how == "delete" else "shutting down"
                    with pytest.raises(error, match=reason):
                        await connect
                    assert backend.connected == [old]
                    assert backend.login is None
                    return
                kv = await connect
                assert backend.connected == [old, new]
                assert kv.prefix == "new"
                assert backend.login is not None
                assert backend.login.client is kv.client
                assert kv.client.token == new_token
                assert (await backend.with_kv(lambda kv: kv)) is kv  # kept, not made again
                assert backend.connected == [old, new]
            finally:
                backend.close()

    asyncio.run(asyncio.wait_for(main(), 3 * WAIT))
