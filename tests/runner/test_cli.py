"""The stack commands and the runner helper (`creds`, `exec`) against a real OpenBao."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar.cli.creds import creds, exec_
from sidecar.cli.stack import stack
from sidecar.store import StackRecord
from tests.runner.conftest import RunnerWorld, guid, integration, secret, seed, write_file


@pytest.fixture
def seeded(world: RunnerWorld) -> RunnerWorld:
    seed(world.store, datetime.now(UTC))
    return world


SUB = "5d3c7f0e-2b1a-4c9d-8e7f-6a5b4c3d2e1f"


def _stack(world: RunnerWorld, *args: str) -> tuple[int, str]:
    env = world.env(VAULT_TOKEN=str(world.root.token))
    result = CliRunner().invoke(stack, list(args), env=env)
    return result.exit_code, result.output


def test_stack_attach_detach_show_list(seeded: RunnerWorld) -> None:
    code, out = _stack(seeded, "attach", "S", "--read", "nope")
    assert code == 1 and "no integration named 'nope'" in out
    assert _stack(seeded, "attach", "S", "--read", "I1", "--write", "I1")[0] == 0
    assert _stack(seeded, "attach", "S", "--write", "I2", "--subscription", SUB)[0] == 0
    assert seeded.store.stack("S")[0] == StackRecord("S", "I1", "I2", SUB)
    code, out = _stack(seeded, "show", "S", "--json")
    assert json.loads(out) == {"name": "S", "read": "I1", "write": "I2", "subscription_id": SUB}
    code, out = _stack(seeded, "detach", "S", "--read", "I3")
    assert code == 1 and "does not use 'I3' as its read integration" in out
    assert _stack(seeded, "detach", "S", "--read")[0] == 0
    code, out = _stack(seeded, "detach", "S", "--read")
    assert code == 1 and "has no read integration attached" in out
    code, out = _stack(seeded, "list")
    assert [line.split()[0] for line in out.splitlines()] == ["A", "B", "S"]
    code, out = _stack(seeded, "detach", "S")
    assert code == 0 and "removed" in out
    code, out = _stack(seeded, "show", "S")
    assert code == 1 and "no stack named 'S'" in out


def _runner_args(world: RunnerWorld, tmp_path: Path, stack_name: str, phase: str) -> list[str]:
    token = write_file(tmp_path / f"{stack_name}-{phase}.jwt", world.jwt(stack_name, phase))
    return [
        "--stack",
        stack_name,
        "--phase",
        phase,
        "--jwt-file",
        str(token),
        "--role",
        "azsidecar-runner",
        "--mount",
        "azure",
    ]


def test_creds_prints_arm_variables_in_each_format(seeded: RunnerWorld, tmp_path: Path) -> None:
    args = _runner_args(seeded, tmp_path, "A", "apply")
    runner = CliRunner()
    env = seeded.env(VAULT_TOKEN=None)
    dotenv = runner.invoke(creds, [*args, "--format", "dotenv"], env=env)
    assert dotenv.exit_code == 0, dotenv.output
    assert dotenv.stdout.splitlines() == [
        f"ARM_CLIENT_ID={guid('app-I2')}",
        "ARM_CLIENT_SECRET=secret-of-I2",
        f"ARM_TENANT_ID={guid('tenant-I2')}",
        f"ARM_SUBSCRIPTION_ID={guid('sub-I2')}",
    ]
    shell = runner.invoke(creds, args, env=env)
    assert "export ARM_CLIENT_SECRET=secret-of-I2" in shell.stdout
    data = json.loads(runner.invoke(creds, [*args, "--format", "json"], env=env).stdout)
    assert data["integration"] == "I2" and data["client_secret"] == "secret-of-I2"
    denied = runner.invoke(creds, ["--stack", "B", *args[2:]], env=env)
    assert denied.exit_code == 1 and "secret-of" not in denied.output


def test_exec_passes_the_credential_in_the_environment_only(
    seeded: RunnerWorld, tmp_path: Path
) -> None:
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys; from pathlib import Path;"
        "p = Path('/proc/self');"
        "Path(sys.argv[1]).write_text(json.dumps({"
        "'cmdline': p.joinpath('cmdline').read_bytes().decode(errors='replace'),"
        "'environ': p.joinpath('environ').read_bytes().decode(errors='replace')}));"
        "sys.exit(7)"
    )
    args = [
        *_runner_args(seeded, tmp_path, "A", "plan"),
        "--",
        sys.executable,
        "-c",
        script,
        str(out),
    ]
    result = CliRunner().invoke(exec_, args, env=seeded.env(VAULT_TOKEN=None))
    assert result.exit_code == 7, result.output
    seen = json.loads(out.read_text())
    assert "secret-of-I1" not in seen["cmdline"]
    environ = seen["environ"].split("\0")
    assert "ARM_CLIENT_SECRET=secret-of-I1" in environ
    assert f"ARM_CLIENT_ID={guid('app-I1')}" in environ
    assert "secret-of" not in result.output


def test_exec_exit_status_is_128_plus_the_signal(seeded: RunnerWorld, tmp_path: Path) -> None:
    args = [
        *_runner_args(seeded, tmp_path, "A", "plan"),
        "--",
        sys.executable,
        "-c",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    ]
    result = CliRunner().invoke(exec_, args, env=seeded.env(VAULT_TOKEN=None))
    assert result.exit_code == 128 + signal.SIGKILL


def test_exec_forwards_sigterm_to_the_child(seeded: RunnerWorld, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        "import signal, sys, time; from pathlib import Path;"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3));"
        f"Path({str(ready)!r}).write_text('up'); time.sleep(60)"
    )
    helper = [
        sys.executable,
        "-c",
        "from sidecar.cli.creds import exec_; exec_()",
        *_runner_args(seeded, tmp_path, "A", "plan"),
        "--",
        sys.executable,
        "-c",
        child,
    ]
    env = {k: v for k, v in os.environ.items() if k != "VAULT_TOKEN"}
    env |= {k: v for k, v in seeded.env().items() if v is not None}
    process = subprocess.Popen(helper, env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("via", ["plugin", "resolver"])
def test_wait_returns_once_a_new_integrations_first_secret_is_ready(
    world: RunnerWorld, tmp_path: Path, via: str
) -> None:
    now = datetime.now(UTC)
    world.store.save_integration(integration("I9", now), cas=0)
    world.store.store_secret("I9", secret("I9", "fresh-I9", now))
    world.store.save_stack(StackRecord("N", "I9", "I9"), cas=0)
    delay = timedelta(seconds=3)
    world.root.write_data("azure/config", data={"propagation_delay": "3s"})
    handle = world.resolver(propagation=delay)
    try:
        args = [
            *_runner_args(world, tmp_path, "N", "plan"),
            "--format",
            "dotenv",
            "--via",
            via,
            "--resolver",
            f"127.0.0.1:{handle.port}",
        ]
        env = world.env(VAULT_TOKEN=None)
        quick = CliRunner().invoke(creds, args, env=env)
        assert quick.exit_code == 1 and "retry" in quick.output.lower()
        started = time.monotonic()
        result = CliRunner().invoke(creds, [*args, "--wait", "20s"], env=env)
        took = time.monotonic() - started
    finally:
        handle.stop(grace=0)
    assert result.exit_code == 0, result.output
    assert "ARM_CLIENT_SECRET=fresh-I9" in result.stdout
    assert "waiting for a ready credential" in result.stderr
    assert took < 8
