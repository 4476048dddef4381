"""Vault logins in real time: every long-running part outlives many short tokens.

For each login method (a renewable token from a rotated token file, AppRole, JWT)
the daemon (a process), the resolver (as ``azsidecar resolver`` builds it) and the
plugin (inside the real OpenBao) run side by side for more than three maximum
TTLs (``token_ttl`` 5 s, ``token_max_ttl`` 12 s) while requests go to each of
them four times a second. Not one request may fail; the token is renewed at two
thirds of its TTL and replaced by a new login (or a new token file) at each
maximum TTL, which the counts show. The credential files rotate meanwhile and
what was first read in them expires: secret ids and JWTs live 15 s.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.cli.creds import creds
from sidecar.clock import SystemClock
from sidecar.config import load_config
from sidecar.devstack.openbao import free_port
from sidecar.doctor import daemon_health
from sidecar.emulator import EmulatorServer
from sidecar.errors import SidecarError
from sidecar.model import Phase
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.server import start_resolver
from sidecar.runtime import make_login
from sidecar.store import StackRecord, Store
from sidecar.vault import VaultKV
from tests.hvac_read import read_json
from tests.processes import azsidecar, azsidecar_env, write_config
from tests.runner.conftest import RunnerWorld, integration, secret, seed, write_file
from tests.runner.lifecycle import Credentials, LoginFiles
from tests.world import World, make_world

TTL, MAX_TTL = 5, 12
PERIODS = 3
DURATION = PERIODS * MAX_TTL + 2.0
EVERY = 0.25


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    return response.status_code, dict(response.json())


def metric(port: int, name: str, **labels: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.M)
    return float(found.group(1)) if found else 0.0


def grpc_health(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
        except grpc.RpcError:
            return "unreachable"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def daemon_world(emulator: EmulatorServer, world: RunnerWorld) -> World:
    """The emulator and the management identity, in the runner world's Vault and prefix."""
    return make_world(emulator, Store(world.store.kv), world.addr, world.bao.pb.server.root_token)


def daemon_config(emu_world: World, tmp: Path, files: LoginFiles, port: int) -> Path:
    path = write_config(
        emu_world,
        tmp / "daemon.toml",
        timing={"lease_ttl": "3s", "tick": "10s"},
        metrics_addr=f"127.0.0.1:{port}",
        resolver_enabled=False,
        log_format="json",
    )
    lines = path.read_text().splitlines()
    at = lines.index("[vault]") + 1
    path.write_text("\n".join([*lines[:at], *files.vault_toml(), *lines[at:]]) + "\n")
    return path


def start_daemon(config: Path, log: Path) -> subprocess.Popen[str]:
    env = azsidecar_env("")  # no VAULT_TOKEN: the daemon logs in as configured
    return subprocess.Popen(
        azsidecar("daemon", "--config", str(config)),
        env=env,
        stderr=log.open("w"),
        text=True,
    )


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def resolver_config(world: RunnerWorld, tmp: Path, files: LoginFiles) -> Path:
    return write_file(
        tmp / "resolver.toml",
        "\n".join(
            [
                "[vault]",
                f'addr = "{world.addr}"',
                f'prefix = "{world.prefix}"',
                *files.vault_toml(),
            ]
        )
        + "\n",
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ["token", "approle", "jwt"])
def test_each_part_outlives_three_max_ttls(
    method: str, world: RunnerWorld, emulator: EmulatorServer, tmp_path: Path
) -> None:
    seed(world.store, datetime.now(UTC))
    creds_ = Credentials(
        world,
        tmp_path,
        method,
        TTL,
        MAX_TTL,
        secret_id_ttl=15,
        jwt_ttl=15,
        # A plain token cannot outlive its maximum TTL: the agent writes a new one.
        file_every=5.0 if method == "token" else 6.0,
    )
    daemon_files = creds_.add("daemon", "sidecar")
    resolver_files = creds_.add("resolver", "plugin")
    plugin_files = creds_.add("plugin", "plugin")

    emu_world = daemon_world(emulator, world)
    port = free_port()
    daemon = start_daemon(
        daemon_config(emu_world, tmp_path, daemon_files, port), tmp_path / "d.log"
    )

    config = load_config(resolver_config(world, tmp_path, resolver_files), env={})
    login = make_login(config).start()
    kv = VaultKV(login.client, "secret", world.prefix)
    handle = start_resolver(config, kv, SystemClock(), addr="127.0.0.1:0")
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    root_token = world.bao.pb.server.root_token

    world.root.write_data(
        "azure/config",
        data={
            "vault_addr": world.addr,
            "prefix": world.prefix,
            "propagation_delay": "0",
            **plugin_files.plugin_config(),
        },
    )
    creds_.start()
    failures: list[str] = []
    requests_made = 0
    try:
        # Measured from the first completed tick on (the first one may wait for Graph).
        wait_until(
            lambda: healthz(port)[0] == 200 and healthz(port)[1]["last_tick"], 60, "a first tick"
        )
        started = time.monotonic()
        while time.monotonic() - started < DURATION:
            requests_made += 1
            try:
                got = client.resolve(root_token, "A", Phase.PLAN)
                assert got.client_secret.reveal() == "secret-of-I1"
            except (SidecarError, AssertionError) as exc:
                failures.append(f"resolver at {time.monotonic() - started:.1f}s: {exc}")
            try:
                data = read_json(world.root, "azure/creds/A/apply")["data"]
                assert data["client_secret"] == "secret-of-I2"
            except Exception as exc:
                failures.append(f"plugin at {time.monotonic() - started:.1f}s: {exc}")
            status, body = healthz(port)
            if status != 200:
                failures.append(f"daemon at {time.monotonic() - started:.1f}s: {body}")
            time.sleep(EVERY)
        elapsed = time.monotonic() - started

        plugin_health = read_json(world.root, "azure/health")["data"]["vault_token"]
        daemon_health = healthz(port)[1]["vault_token"]
        counts = {
            "daemon": (
                metric(port, "azsidecar_vault_token_events_total", event="renewed"),
                metric(port, "azsidecar_vault_token_events_total", event="login"),
                metric(port, "azsidecar_vault_token_events_total", event="token_reloaded"),
            ),
            "resolver": (login.renewals, login.logins, login.reloads),
            "plugin": (
                plugin_health["renewals"],
                plugin_health["logins"],
                plugin_health["token_file_reloads"],
            ),
        }
        vault_errors = metric(port, "azsidecar_vault_errors_total")
    finally:
        creds_.stop()
        client.close()
        handle.stop(grace=0)
        login.stop()
        daemon.terminate()
        daemon.wait(timeout=20)
    log_text = (tmp_path / "d.log").read_text()
    print(
        f"\n{method}: {elapsed:.0f}s (> {PERIODS} x max TTL {MAX_TTL}s), {requests_made} rounds"
        f" of requests, file rewrites {creds_.rewrites}; (renewals, logins, token-file reloads):"
        f" {counts}"
    )
    assert failures == [], failures[:5]
    assert vault_errors == 0
    assert "denied" not in log_text and "Traceback" not in log_text
    for files in creds_.parts.values():  # the last token, secret id or JWT never logged
        assert files.path.read_text() not in log_text
    assert daemon_health["problem"] == "" and daemon_health["method"] == method
    assert plugin_health["problem"] == ""
    for part, (renewals, logins, reloads) in counts.items():
        # Renewed at two thirds of each TTL: at least twice per maximum TTL.
        assert renewals >= 2 * PERIODS, (part, counts)
        if method == "token":
            # A new token every 5 s from the file, none of them logged in for.
            assert logins == 0 and reloads >= PERIODS * MAX_TTL / 5 - 2, (part, counts)
        else:
            # The first login plus one per maximum TTL at least.
            assert logins >= 1 + PERIODS and reloads == 0, (part, counts)


@pytest.mark.slow
def test_an_expired_secret_id_is_named_in_health_and_logs_then_a_new_one_is_used(
    world: RunnerWorld, emulator: EmulatorServer, tmp_path: Path
) -> None:
    creds_ = Credentials(world, tmp_path, "approle", 3, 6, secret_id_ttl=5)
    files = creds_.add("daemon", "sidecar")
    resolver_files = creds_.add("resolver", "plugin")
    first_ids = [files.path.read_text(), resolver_files.path.read_text()]
    port, grpc_port = free_port(), free_port()
    emu_world = daemon_world(emulator, world)
    daemon = start_daemon(daemon_config(emu_world, tmp_path, files, port), tmp_path / "d.log")
    resolver = subprocess.Popen(
        azsidecar(
            "resolver",
            "--config",
            str(resolver_config(world, tmp_path, resolver_files)),
            "--addr",
            f"127.0.0.1:{grpc_port}",
        ),
        env=azsidecar_env(""),
        stderr=(tmp_path / "r.log").open("w"),
        text=True,
    )
    try:
        wait_until(lambda: healthz(port)[0] == 200, 30, "the daemon to be healthy")
        wait_until(lambda: grpc_health(grpc_port) == "SERVING", 30, "the resolver to serve")
        assert 0 < metric(port, "azsidecar_vault_token_remaining_seconds") <= 3
        # The secret id expires at 5 s; the login needed at the 6 s maximum TTL fails.
        wait_until(
            lambda: healthz(port)[1]["vault_token"]["problem"], 20, "the daemon to report it"
        )
        status, body = healthz(port)
        assert status == 503, body
        problem = body["vault_token"]["problem"]
        assert "AppRole login refused" in problem
        assert "write a new secret id to vault.secret_id_file" in problem
        assert metric(port, "azsidecar_vault_token_problem") == 1
        assert metric(port, "azsidecar_vault_token_events_total", event="login_failed") >= 1
        doctor = daemon_health(f"http://127.0.0.1:{port}")
        assert doctor.status == "fail" and "Vault token: AppRole login refused" in doctor.line
        # The stand-alone resolver tells load balancers through its gRPC health service.
        wait_until(lambda: grpc_health(grpc_port) == "NOT_SERVING", 10, "the resolver to say")
        # A new secret id in the file: picked up at once, healthy again.
        creds_.rewrite_all()
        wait_until(lambda: healthz(port)[0] == 200, 10, "the new secret id to be used")
        assert metric(port, "azsidecar_vault_token_problem") == 0
        wait_until(lambda: grpc_health(grpc_port) == "SERVING", 10, "the resolver to recover")
    finally:
        for process in (daemon, resolver):
            process.terminate()
            process.wait(timeout=20)
    for log_file in ("d.log", "r.log"):
        log_text = (tmp_path / log_file).read_text()
        assert "AppRole login refused" in log_text and "vault.secret_id_file" in log_text
        secret_ids = [*first_ids, files.path.read_text(), resolver_files.path.read_text()]
        assert not any(s in log_text for s in secret_ids)


@pytest.mark.slow
def test_a_revoked_token_is_replaced_by_a_new_login_at_once(
    world: RunnerWorld, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A token that lives an hour, revoked by an operator: the daemon does not wait 40 min."""
    files = Credentials(world, tmp_path, "approle", 3600, 7200).add("daemon", "sidecar")
    port = free_port()
    emu_world = daemon_world(emulator, world)
    daemon = start_daemon(daemon_config(emu_world, tmp_path, files, port), tmp_path / "d.log")
    event = "azsidecar_vault_token_events_total"
    try:
        wait_until(lambda: healthz(port)[0] == 200, 30, "the daemon to be healthy")
        assert metric(port, event, event="login") == 1
        world.root.sys.revoke_prefix("auth/approle/login")  # type: ignore[no-untyped-call]
        revoked = time.monotonic()
        wait_until(lambda: metric(port, event, event="login") == 2, 15, "a new login")
        wait_until(lambda: healthz(port)[0] == 200, 15, "the daemon to be healthy again")
        took = time.monotonic() - revoked
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
    print(f"\nrevoked token replaced and healthy again after {took:.1f}s")
    log_text = (tmp_path / "d.log").read_text()
    assert "Vault no longer accepts the token; logging in again" in log_text
    # The first refused request led to the new login, not a renewal 40 minutes later.
    assert log_text.count("cannot renew the leader lease") == 1


def test_the_resolver_logs_in_again_when_its_token_is_revoked(
    world: RunnerWorld, tmp_path: Path
) -> None:
    seed(world.store, datetime.now(UTC))
    files = Credentials(world, tmp_path, "approle", 3600, 7200).add("resolver", "plugin")
    path = resolver_config(world, tmp_path, files)
    path.write_text(path.read_text() + '[daemon]\nresolver_cache_ttl = "0s"\n')
    config = load_config(path, env={})
    login = make_login(config)  # no upkeep thread: the refusal alone must lead to a login
    kv = VaultKV(login.client, "secret", world.prefix)
    handle = start_resolver(config, kv, SystemClock(), addr="127.0.0.1:0", vault_login=login)
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    token = world.bao.pb.server.root_token
    try:
        assert client.resolve(token, "A", Phase.PLAN).client_secret.reveal() == "secret-of-I1"
        world.root.sys.revoke_prefix("auth/approle/login")  # type: ignore[no-untyped-call]
        assert client.resolve(token, "A", Phase.PLAN).client_secret.reveal() == "secret-of-I1"
        assert login.logins == 2
    finally:
        client.close()
        handle.stop(grace=0)


def test_the_runner_waits_longer_than_its_token_lives(
    world: RunnerWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A JWT login's token lives 3 s (6 s at most); the credential is ready only after 14 s."""
    now = datetime.now(UTC)
    world.store.save_integration(integration("I1", now - timedelta(days=1)), cas=0)
    world.store.store_secret("I1", secret("I1", "fresh-secret", now))
    world.store.save_stack(StackRecord(name="A", read="I1", write="I1"), cas=0)
    world.root.write_data("azure/config", data={"propagation_delay": "14s"})
    role = f"lc-runner-{world.prefix}"
    world.root.adapter.post(
        f"/v1/auth/jwt/role/{role}",
        json={
            "role_type": "jwt",
            "bound_audiences": ["azsidecar"],
            "user_claim": "sub",
            "claim_mappings": {"stack": "stack", "phase": "phase"},
            "token_policies": ["azsidecar-runner"],
            "token_ttl": "3s",
            "token_max_ttl": "6s",
        },
    )
    jwt_file = write_file(tmp_path / "ci.jwt", world.jwt("A", "plan"))
    args = ["--stack", "A", "--phase", "plan", "--mount", "azure", "--jwt-file", str(jwt_file)]
    args += ["--role", role]
    caplog.set_level(logging.INFO, logger="sidecar.vault_login")
    started = time.monotonic()
    result = CliRunner().invoke(
        creds, [*args, "--wait", "60s", "--format", "json"], env=world.env(VAULT_TOKEN=None)
    )
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert "fresh-secret" in result.stdout
    logins = [r for r in caplog.records if "logged in to Vault with jwt" in r.getMessage()]
    print(f"\nwaited {took:.1f}s with {len(logins)} JWT logins")
    assert took >= 10
    # The token of the first login was dead long before the credential was ready.
    assert len(logins) >= 2, [r.getMessage() for r in caplog.records]
