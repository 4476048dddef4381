"""docker-compose.yml run for real: build, up, a runner signs in through ARM, down -v.

Needs a Docker engine and compose (v2 `docker compose`, else v1.29
`docker-compose`); `.ci/run` installs and starts both. Without them this test
FAILS rather than skips: the README promises that the compose stack works.
When the official base images are not in the engine and no registry can be
reached, ``standins.prepare`` builds stand-ins under the official names.

Traffic: the test talks only to the ports the stack publishes on 127.0.0.1;
the containers talk to each other on the project's own bridge network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import hvac
import pytest

from sidecar.durations import parse_duration
from sidecar.model import DEFAULT_CREDS_MOUNT
from tests.compose import standins

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "azsidecar-compose-test"
LOG = Path(os.environ.get("AZSIDECAR_COMPOSE_LOG", "/tmp/azsidecar-compose-test.log"))
RUN_OK = "run ok: signed in as "

pytestmark = pytest.mark.timeout(1800)


def log(line: str) -> None:
    with LOG.open("a") as handle:
        handle.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def docker_works() -> str | None:
    """None when the engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    done = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        return f"the Docker engine does not answer: {done.stderr.strip()[-300:]}"
    return None


def compose_command() -> list[str]:
    v2 = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False, timeout=60
    )
    if v2.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (see .ci/run)")


@dataclass
class Stack:
    """One compose project; the root token lives in this process's memory and the env."""

    compose: list[str]
    token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    def env(self, with_token: bool = True) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "BAO_ROOT_TOKEN"}
        env["COMPOSE_PROJECT_NAME"] = PROJECT
        if with_token:
            env["BAO_ROOT_TOKEN"] = self.token
        return env

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, with_token: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.compose, "-f", str(ROOT / "docker-compose.yml"), *args]
        log("$ " + " ".join(argv))
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=self.env(with_token),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        output = (done.stdout + done.stderr).replace(self.token, "<root token>")
        log(output[-20000:])
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args[:2])} exited {done.returncode}:\n{output[-3000:]}"
            )
        return done

    def container(self, service: str) -> str:
        ids = self.run("ps", "-a", "-q", service).stdout.split()  # v2 hides exited ones
        assert ids, f"no container for {service}"
        return ids[0]


def inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return dict(json.loads(out)[0])


def seconds_between(start: str, end: str) -> float:
    def parse(stamp: str) -> float:
        whole, _, frac = stamp.rstrip("Z").partition(".")
        return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or 0}")

    return parse(end) - parse(start)


def engine_objects() -> dict[str, set[str]]:
    def listing(*argv: str) -> set[str]:
        out = subprocess.run(
            ["docker", *argv], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        return set(out.split())

    return {
        "containers": listing("ps", "-aq"),
        "volumes": listing("volume", "ls", "-q"),
        "networks": listing("network", "ls", "-q"),
    }


def wait_exit(container: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = inspect(container)
        if info["State"]["Status"] == "exited":
            return info
        time.sleep(3)
    raise AssertionError(f"{container} still running after {timeout:.0f} s")


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    LOG.unlink(missing_ok=True)
    LOG.touch(mode=0o600)
    why = docker_works()
    if why is not None:
        pytest.fail(f"{why}: start dockerd as root (bash .ci/run does) or run on a Docker host")
    compose = compose_command()
    started = time.monotonic()
    prepared = standins.prepare(log)
    log(f"base images {prepared.images}, seconds {prepared.seconds}")
    print(f"compose: {compose}; base images {prepared.images} ({time.monotonic() - started:.0f} s)")
    created = Stack(compose)
    created.run("down", "-v", "--remove-orphans", with_token=False)  # a killed earlier run
    try:
        yield created
    finally:
        created.run("logs", "--no-color", check=False, with_token=False)
        created.run("down", "-v", "--remove-orphans", check=False, with_token=False)


def test_compose_stack_end_to_end(stack: Stack) -> None:
    timings: dict[str, float] = {}
    before = engine_objects()

    started = time.monotonic()
    stack.run("build", timeout=1200)
    timings["build"] = time.monotonic() - started

    started = time.monotonic()
    stack.run("up", "-d", timeout=600)
    timings["up -d"] = time.monotonic() - started

    # The runner from `up`: Vault Agent logs in with its JWT, renders ARM_*
    # once the first secret is ready (2 minutes), signs in and reads ARM.
    runner = stack.container("runner")
    info = wait_exit(runner, timeout=600)
    logs = stack.run("logs", "--no-color", "runner").stdout
    assert info["State"]["ExitCode"] == 0, logs[-3000:]
    assert RUN_OK in logs and "subscription Example Corp" in logs, logs[-3000:]
    timings["runner"] = seconds_between(info["State"]["StartedAt"], info["State"]["FinishedAt"])
    boot = inspect(stack.container("bootstrap"))["State"]
    assert boot["ExitCode"] == 0
    timings["bootstrap"] = seconds_between(boot["StartedAt"], boot["FinishedAt"])
    daemon = inspect(stack.container("daemon"))
    assert daemon["State"]["Health"]["Status"] == "healthy"
    # The runner is created once the daemon's healthcheck passed (depends_on).
    timings["daemon start to healthy (<=)"] = seconds_between(
        daemon["State"]["StartedAt"], info["State"]["StartedAt"]
    )

    # /healthz on the published loopback port.
    with urllib.request.urlopen("http://127.0.0.1:9464/healthz", timeout=10) as response:
        assert response.status == 200
        health = json.loads(response.read())
    assert health["status"] == "ok", health

    # azsidecar doctor inside the stack, with the daemon's own configuration.
    doctor = stack.run(
        "exec", "-T", "daemon", "azsidecar", "doctor", "--config", "/etc/azsidecar/daemon.toml"
    )
    assert "everything checked is working" in doctor.stdout, doctor.stdout

    # The plugin: only the wrapper in the dev plugin directory, registered by the
    # SHA-256 of that file, configured with the daemon's propagation delay.
    listed = stack.run("exec", "-T", "openbao", "ls", "-A", "/openbao/plugins").stdout.split()
    assert listed == ["azsidecar"]
    wrapper = stack.run("exec", "-T", "openbao", "cat", "/openbao/plugins/azsidecar").stdout
    root = hvac.Client(url="http://127.0.0.1:8200", token=stack.token)
    wrapper_sha = hashlib.sha256(wrapper.encode()).hexdigest()
    catalog: Any = root.adapter.get("/v1/sys/plugins/catalog")
    entries = [e for e in catalog["data"]["detailed"] if e["name"] == "azsidecar"]
    assert entries and {e["sha256"] for e in entries} == {wrapper_sha}, entries
    mounts: Any = root.adapter.get("/v1/sys/mounts")
    mount = f"{DEFAULT_CREDS_MOUNT}/"
    assert mounts["data"][mount]["running_sha256"] == wrapper_sha, mounts["data"][mount]
    config: Any = root.read(f"{DEFAULT_CREDS_MOUNT}/config")
    delay = parse_duration(config["data"]["propagation_delay"])
    assert delay == timedelta(minutes=2), config["data"]

    # A second run: the CI platform signs a new JWT, another runner container.
    first_jwt = job_jwt(stack)
    time.sleep(1.1)  # iat has a resolution of one second
    started = time.monotonic()
    second = stack.run("run", "--rm", "runner", timeout=600)
    timings["second runner (run --rm)"] = time.monotonic() - started
    assert RUN_OK in second.stdout, second.stdout[-3000:]
    assert job_jwt(stack)["iat"] > first_jwt["iat"], "`run runner` did not re-run ci"

    check_runner_holds_only_its_jwt(stack)

    # The dev server's banner puts the root token in Docker's log (the README says so).
    openbao_log = stack.run("logs", "--no-color", "openbao", with_token=False).stdout
    assert stack.token in openbao_log

    started = time.monotonic()
    stack.run("down", "-v", "--remove-orphans", with_token=False)
    timings["down -v"] = time.monotonic() - started
    after = engine_objects()
    for kind in ("containers", "volumes", "networks"):
        assert after[kind] <= before[kind], f"{kind} left behind: {after[kind] - before[kind]}"
    print("compose timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    log(f"timings {timings}")


def job_jwt(stack: Stack) -> dict[str, Any]:
    """The claims of the JWT on the runner's volume, read as the runner reads it."""
    text = stack.run(
        "run", "--rm", "--no-deps", "--entrypoint", "cat", "runner", "/run/ci-jwt/ci.jwt"
    ).stdout.strip()
    return jwt_claims(text)


def check_runner_holds_only_its_jwt(stack: Stack) -> None:
    """Issue #16.3: no daemon token, no signing key, no root token in a runner."""
    secret_names = ("sidecar-token", "ci-issuer.pem")
    find = (
        "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f"
        " \\( -name sidecar-token -o -name ci-issuer.pem -o -name ci.jwt \\) -print 2>/dev/null;"
        " id -u"
    )
    seen = stack.run(
        "run", "--rm", "--no-deps", "--entrypoint", "sh", "runner", "-c", find
    ).stdout.split()
    assert not [path for path in seen if path.endswith(secret_names)], seen
    assert "/run/ci-jwt/ci.jwt" in seen and seen[-1] != "0", seen
    # The same search finds them where they belong, so it would have found them.
    in_daemon = stack.run("exec", "-T", "daemon", "sh", "-c", find).stdout
    assert "/run/azsidecar/sidecar-token" in in_daemon
    in_ci = stack.run("run", "--rm", "--no-deps", "--entrypoint", "sh", "ci", "-c", find).stdout
    assert "/run/ci-issuer/ci-issuer.pem" in in_ci

    runner = inspect(stack.container("runner"))
    volumes = {
        m["Name"].removeprefix(f"{PROJECT}_") for m in runner["Mounts"] if m["Type"] == "volume"
    }
    assert {"daemon-token", "ci-issuer"}.isdisjoint(volumes), volumes
    assert "runner-jwt" in volumes
    env = "\n".join(runner["Config"]["Env"])
    assert stack.token not in env

    claims = job_jwt(stack)
    assert (claims["stack"], claims["phase"], claims["sub"]) == ("example", "plan", "example:plan")
