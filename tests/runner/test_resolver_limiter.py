"""Bogus tokens cannot make the resolver flood Vault (issue 16, point 11).

Each unknown token cost a `capabilities-self` call (480 bogus tokens raised a
legitimate caller's p50 from 0.7 to 9.7 ms). A refused token is now remembered
(no second call), and a peer whose tokens Vault refused `limit` times within
`window` seconds is answered RESOURCE_EXHAUSTED without asking Vault.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import grpc
import pytest

from sidecar.errors import VaultForbidden, VaultUnavailable
from sidecar.model import Phase
from sidecar.resolver import rpc
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.limiter import FailureLimiter
from sidecar.resolver.proto.resolver_pb2 import ResolveRequest
from tests.runner.conftest import RunnerWorld, seed


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_opens_again_once_the_window_moves_on() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=10.0, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("ipv4:10.0.0.1") == 0
        limiter.refused("ipv4:10.0.0.1")
        clock.now += 1
    assert limiter.retry_after("ipv4:10.0.0.1") == 7  # the first refusal leaves at 110
    assert limiter.retry_after("ipv4:10.0.0.2") == 0  # other peers are not affected
    clock.now = 110.5
    assert limiter.retry_after("ipv4:10.0.0.1") == 0


def test_a_flood_of_bogus_tokens_is_cut_off_without_asking_vault(world: RunnerWorld) -> None:
    seed(world.store, datetime.now(UTC))
    handle = world.resolver()
    channel = grpc.insecure_channel(f"127.0.0.1:{handle.port}")
    stub = rpc.ResolverStub(channel)
    codes = []
    started = time.monotonic()
    try:
        for i in range(480):
            with pytest.raises(grpc.RpcError) as info:
                stub.resolve(
                    ResolveRequest(stack="A", phase="plan"),
                    metadata=((rpc.TOKEN_METADATA, f"s.bogus-{i}"),),
                    timeout=10,
                )
            codes.append(info.value.code())
        took = time.monotonic() - started
        limit = FailureLimiter().limit
        print(
            f"\n480 bogus tokens: {codes.count(grpc.StatusCode.UNAUTHENTICATED)} asked Vault,"
            f" {codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)} cut off, {took:.2f} s"
        )
        assert codes[:limit] == [grpc.StatusCode.UNAUTHENTICATED] * limit
        assert set(codes[limit:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        # The caller is told to retry later (a --wait runner waits).
        client = ResolverClient(f"127.0.0.1:{handle.port}", timeout=10)
        run = world.login("A", "plan")
        with pytest.raises(VaultUnavailable, match="too many invalid tokens"):
            client.resolve(str(run.token), "A", Phase.PLAN)
        client.close()
    finally:
        channel.close()
        handle.stop(grace=0)


def test_a_repeated_bogus_token_counts_once(world: RunnerWorld) -> None:
    handle = world.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}", timeout=10)
    try:
        for _ in range(100):
            with pytest.raises(VaultForbidden):
                client.resolve("s.the-same-bogus-token", "A", Phase.PLAN)
    finally:
        client.close()
        handle.stop(grace=0)
