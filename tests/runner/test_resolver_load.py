"""The resolver under load: 50 concurrent clients for 60 s, no errors, memory flat.

The resolver runs as its own process (``azsidecar resolver``) on the runner
world's OpenBao, reading KV with the plugin's read-only token. Each client
has its own JWT login (so 50 distinct tokens are authorised) and its own
gRPC channel, and checks every answer against the secret its stack and
phase must get. Halfway through, a newer secret of one integration becomes
ready: every client must switch to it within the resolver's index cache
time. The resolver's resident memory is sampled every second.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.devstack.openbao import free_port
from sidecar.model import Phase
from sidecar.resolver.client import ResolverClient
from tests.runner.conftest import RunnerWorld, secret, seed

CLIENTS = 50
DURATION = 60.0
SWITCH_AT = 30.0
EXPECTED = {("A", "plan"): "I1", ("A", "apply"): "I2", ("B", "plan"): "I3", ("B", "apply"): "I3"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def resolver_process(world: RunnerWorld, tmp_path: Path) -> Iterator[tuple[str, int]]:
    addr = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AZSIDECAR_"))}
    env |= {
        "AZSIDECAR_VAULT_ADDR": world.addr,
        "AZSIDECAR_VAULT_PREFIX": world.prefix,
        "VAULT_TOKEN": world.plugin_token,
        "AZSIDECAR_DAEMON_CONCURRENCY": "16",
    }
    with (tmp_path / "resolver.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sidecar.cli.main",
                "resolver",
                "--addr",
                addr,
                "--mount",
                "azure",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield addr, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_fifty_clients_for_a_minute(world: RunnerWorld, resolver_process: tuple[str, int]) -> None:
    addr, pid = resolver_process
    now = datetime.now(UTC)
    seed(world.store, now)
    keys = list(EXPECTED)
    tokens = [str(world.login(*keys[i % len(keys)]).token) for i in range(CLIENTS)]
    probe = ResolverClient(addr, timeout=2.0)
    deadline = time.monotonic() + 30
    while True:
        try:
            probe.resolve(tokens[0], "A", Phase.PLAN)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    probe.close()

    stop = threading.Event()
    switched = threading.Event()
    switched_at: list[float] = []
    errors: list[str] = []
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    last_old_after_switch: list[float] = [0.0] * CLIENTS

    def client(i: int) -> None:
        stack, phase = keys[i % len(keys)]
        integration = EXPECTED[(stack, phase)]
        resolver = ResolverClient(addr, timeout=10.0)
        try:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    cred = resolver.resolve(tokens[i], stack, Phase(phase))
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                latencies[i].append(time.perf_counter() - began)
                text = cred.client_secret.reveal()
                if text == f"secret-of-{integration}":
                    if switched.is_set() and integration == "I1":
                        last_old_after_switch[i] = time.monotonic() - switched_at[0]
                elif not (integration == "I1" and text == "newer-I1" and switched.is_set()):
                    errors.append(f"client {i} got the wrong secret for {stack}/{phase}")
        finally:
            resolver.close()

    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(client, i) for i in range(CLIENTS)]
        while (elapsed := time.monotonic() - started) < DURATION:
            samples.append((elapsed, rss_kib(pid)))
            if elapsed >= SWITCH_AT and not switched.is_set():
                newer = secret("I1", "newer-I1", datetime.now(UTC) - timedelta(minutes=50))
                world.store.store_secret("I1", newer)
                switched_at.append(time.monotonic())
                switched.set()
            time.sleep(1.0)
        stop.set()
        for future in futures:
            future.result(timeout=60)

    all_latencies = sorted(s for per in latencies for s in per)
    requests = len(all_latencies)
    warm = [kib for t, kib in samples if 10 <= t < 20]
    late = [kib for t, kib in samples if t >= DURATION - 10]
    growth_mib = (statistics.mean(late) - statistics.mean(warm)) / 1024
    print(
        f"\n{CLIENTS} clients, {DURATION:.0f}s: {requests} requests"
        f" ({requests / DURATION:.0f}/s), {len(errors)} errors,"
        f" p50 {1000 * all_latencies[requests // 2]:.1f} ms,"
        f" p99 {1000 * all_latencies[int(requests * 0.99)]:.1f} ms;"
        f" resolver RSS {samples[0][1] / 1024:.1f} MiB at start,"
        f" {statistics.mean(warm) / 1024:.1f} MiB at 10-20 s,"
        f" {statistics.mean(late) / 1024:.1f} MiB in the last 10 s"
        f" (growth {growth_mib:+.1f} MiB), max {max(k for _, k in samples) / 1024:.1f} MiB;"
        f" last old I1 answer {max(last_old_after_switch):.2f} s after the switch"
    )
    assert errors == [], errors[:5]
    assert all(per for per in latencies), "every client was served"
    assert growth_mib < 5, "resident memory grows under steady load"
    # The newer secret is picked up within the index cache time (2 s) plus scheduling.
    assert max(last_old_after_switch) < 5
