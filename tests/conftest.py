"""Shared fixtures: a real OpenBao dev server per test worker, fresh KV prefixes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import hvac
import pytest

from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.store import Store
from sidecar.vault import VaultKV, connect
from tests.world import World, make_world


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoDevServer]:
    """A real ``bao server -dev`` on a free loopback port with a fresh root token."""
    server = OpenBaoDevServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def root_client(openbao: OpenBaoDevServer) -> hvac.Client:
    return connect(openbao.addr, token=openbao.root_token)


@pytest.fixture
def kv(root_client: hvac.Client) -> VaultKV:
    """The product's KV adapter on the dev server's ``secret/`` mount, fresh prefix per test."""
    return VaultKV(root_client, mount="secret", prefix=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """An in-process emulator on a manual clock with the default replication lag."""
    with EmulatorServer(EmulatorConfig(clock_mode="manual", seed=20260301)) as server:
        yield server


@pytest.fixture
def world(emulator: EmulatorServer, openbao: OpenBaoDevServer, kv: VaultKV) -> World:
    """Emulator + OpenBao + the management application set up as `management init` does."""
    return make_world(emulator, Store(kv), openbao.addr, openbao.root_token)
