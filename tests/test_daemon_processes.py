"""Daemon processes: leader lease between two replicas, metrics and health, clean logs."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import grpc
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.devstack.openbao import free_port
from tests.processes import azsidecar, azsidecar_env, write_config
from tests.test_rotation_e2e import create_integrations
from tests.world import World

LEASE_TTL = 3.0


def add_password_calls(world: World, since: int) -> int:
    calls = world.emu.state.calls.query(since=since, kind="graph")
    return sum(1 for c in calls if c.method == "POST" and c.path.endswith("/addPassword"))


def healthz(port: int) -> dict[str, object] | None:
    try:
        return dict(requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json())
    except (requests.RequestException, ValueError):
        return None


def wait_for(condition: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_two_daemons_one_leader_and_takeover(world: World, tmp_path: Path) -> None:
    integrations = create_integrations(world, count=2, tenants=1)
    world.time.advance(timedelta(hours=22, minutes=30))  # renewals are due
    since = len(world.emu.state.calls.query())
    ports = [free_port(), free_port()]
    resolver_ports = [free_port(), free_port()]
    env = azsidecar_env(world.config.vault.token or "")
    procs = []
    logs = []
    for i, port in enumerate(ports):
        config = write_config(
            world,
            tmp_path / f"d{i}.toml",
            timing={"lease_ttl": f"{LEASE_TTL}s"},
            metrics_addr=f"127.0.0.1:{port}",
            log_format="json",
            resolver_addr=f"127.0.0.1:{resolver_ports[i]}",
        )
        log = open(tmp_path / f"d{i}.log", "w")  # noqa: SIM115
        logs.append(log)
        procs.append(
            subprocess.Popen(
                azsidecar("daemon", "--config", str(config)), env=env, stderr=log, text=True
            )
        )
    try:
        wait_for(lambda: all(healthz(p) is not None for p in ports), 30, "both daemons to serve")
        wait_for(lambda: add_password_calls(world, since) >= 2, 30, "the renewals")
        time.sleep(LEASE_TTL)
        states = [healthz(p) for p in ports]
        leaders = [i for i, s in enumerate(states) if s and s["leader"]]
        assert len(leaders) == 1, states
        # Exactly one secret per integration: only the leader rotated.
        assert add_password_calls(world, since) == len(integrations)
        for name, _ in integrations:
            assert len(world.store.credentials(name)) == 2

        leader = leaders[0]
        other = 1 - leader
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(timeout=10)
        took = wait_for(
            lambda: (healthz(ports[other]) or {}).get("leader") is True,
            LEASE_TTL * 3,
            "the other daemon to take over",
        )
        print(f"\ntakeover after the leader's death: {took:.1f}s (lease {LEASE_TTL}s)")
        url = f"http://127.0.0.1:{ports[other]}/metrics"
        wait_for(
            lambda: (
                "azsidecar_ready_secret_remaining_seconds{" in requests.get(url, timeout=5).text
            ),
            30,
            "the new leader's first tick",
        )
        metrics = requests.get(url, timeout=5).text
        assert add_password_calls(world, since) == len(integrations), "no double rotation"
        assert "azsidecar_leader 1.0" in metrics
        assert "azsidecar_graph_requests_total" in metrics
        assert 'azsidecar_ready_secret_remaining_seconds{integration="int-0"}' in metrics
        # The daemon also serves the gRPC resolver, with the standard health service.
        with grpc.insecure_channel(f"127.0.0.1:{resolver_ports[other]}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert status.status == health_pb2.HealthCheckResponse.SERVING
        procs[other].send_signal(signal.SIGTERM)
        assert procs[other].wait(timeout=20) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    # Nothing secret reached the logs or the metrics.
    text = "".join((tmp_path / f"d{i}.log").read_text() for i in range(2)) + metrics
    for name, _ in integrations:
        for stored in world.store.credentials(name):
            secret = world.store.secret(name, stored.version).secret.reveal()
            assert secret not in text
    assert "PRIVATE KEY" not in text
    assert '"level": "info"' in text
