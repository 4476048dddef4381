"""Issue 8.1: how long a runner waits for its credential, by way of reaching it.

One OpenBao dev server serves every method, measured from the same client
machine in the same run:

* ``kv``: a raw KV v2 read of the credential (``GET secret/data/<prefix>/credentials/<name>``)
  with a token that may read it: the floor;
* ``plugin``: ``GET azsidecar/creds/<stack>/<phase>`` through the product's plugin,
  mounted and configured with the read-only plugin token, read with a runner's token;
* ``resolver``: ``Resolve`` on the gRPC resolver (``azsidecar resolver``, its own
  process, reading KV with the plugin token), with the same runner token;
* ``creds``: ``azsidecar creds --via plugin`` end to end, a process per call
  that logs in with the CI platform's JWT and reads the plugin's path;
* ``creds wheel`` (full runs only): the same command from a wheel of the
  sources installed into a virtualenv outside the repository, as a runner host
  has it (no editable install's import hooks; the bytecode pip compiled);
* ``bao``: ``bao read`` of the same plugin path with the runner token, the real
  binary, a process per call: the floor for a runner that has a token already
  and does without the helper (``creds`` also logs in, one more round trip);

and diagnostics that say where the plugin's and the resolver's time goes:
``resolver cold`` (a second resolver with ``daemon.resolver_cache_ttl = 0s``,
so it reads the secret index from Vault on every call, as a fleet of many
stacks each asking once would see), ``kv x4`` (the product's own
:func:`sidecar.resolve.resolve_credential`, run in the client with no cache:
stack, integration, index and version reads), ``capabilities`` and
``authorise`` (the resolver's ``sys/capabilities-self`` check of the runner
token, raw and as the resolver caches it) and ``plugin hop`` (a plugin read
that touches no KV).

The runner token comes from a JWT login with the shipped role and the shipped
policies, rendered for the JWT accessor, so the plugin and the resolver refuse
every other stack and phase. HTTP clients keep their connections (one hvac
client, i.e. one ``requests.Session``, per token and client) and the resolver's
gRPC channel is reused.

Methods are interleaved in rounds (each round runs a block of every method, in
an order that rotates), so the machine's noise falls on all alike. Each client
is a process of its own, not a thread: client-side Python work (hvac, requests,
gRPC stubs) would otherwise queue on one GIL and add to the fast methods'
latency most. With 8 clients, all 8 start each block together (a barrier) and
the block's throughput is its requests over the time from the first start to
the last finish.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import queue
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import hvac
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.answers import creds_path
from sidecar.devstack.openbao import OpenBaoDevServer, find_bao, free_port
from sidecar.model import DEFAULT_CREDS_MOUNT, ConsentState, Phase
from sidecar.plugin.install import install_wrapper, registration_commands
from sidecar.policies import render_all, runner_role
from sidecar.resolve import resolve_credential
from sidecar.resolver.auth import Access, VaultAuthorizer
from sidecar.resolver.client import ResolverClient
from sidecar.runner.source import read_plugin
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, SecretVersion, StackRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV, capabilities_self, connect

REPO = Path(__file__).resolve().parents[1]
METHODS = ("kv", "plugin", "resolver", "creds", "creds wheel", "bao")
#: Methods that start a process per call, measured ``plan.creds`` times per block.
PROCESS_METHODS = ("creds", "creds wheel", "bao")
DIAGNOSTICS = ("resolver cold", "kv x4", "capabilities", "authorise", "plugin hop")
FLOOR = "kv"
GOALS = {"plugin": 2.5, "resolver": 1.5}  # p50 at most this many times the raw KV read's
#: Issue 17: ``azsidecar creds`` p50 at most this many ms, per mode.
CREDS_GOALS_MS = {"sequential": 150.0, "concurrent": 600.0}
CLIENTS = 8
PREFIX = "bench"
STACK, PHASE, INTEGRATION = "bench-stack", Phase.PLAN, "bench-int"
MOUNT = DEFAULT_CREDS_MOUNT
ROLE = "azsidecar-runner"
AUDIENCE = "azsidecar"
SECRET_TEXT = "bench-secret-value"
# Records hold GUIDs (checked whenever they are read).
BENCH_TENANT = "3c1b0a9f-8e7d-4c6b-a5f4-e3d2c1b0a9f8"
BENCH_CLIENT = "4d2c1b0a-9f8e-4d7c-b6a5-f4e3d2c1b0a9"


@dataclass(frozen=True)
class Plan:
    """How many requests each client makes of each method per round."""

    clients: int
    rounds: int
    fast: int  # kv, plugin, resolver and the diagnostics, per client per round
    creds: int  # azsidecar creds and bao read, per client per round ...
    creds_rounds: int  # ... in the first creds_rounds rounds only
    warmup: int = 5


FULL = {
    "sequential": Plan(clients=1, rounds=25, fast=80, creds=8, creds_rounds=25),
    "concurrent": Plan(clients=CLIENTS, rounds=25, fast=10, creds=1, creds_rounds=25),
}
QUICK = {
    "sequential": Plan(clients=1, rounds=4, fast=25, creds=1, creds_rounds=2),
    "concurrent": Plan(clients=CLIENTS, rounds=4, fast=4, creds=1, creds_rounds=1),
}


@dataclass(frozen=True)
class Target:
    """What a client process needs to reach every method (tokens included)."""

    addr: str
    kv_token: str
    runner_token: str
    root_token: str
    resolver: str
    resolver_cold: str
    creds_command: tuple[str, ...]
    bao_command: tuple[str, ...]
    pycache: str  # where the process methods keep their compiled bytecode
    wheel_command: tuple[str, ...] | None = None  # creds from an installed wheel


# -- the numbers ---------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarise(blocks: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Per method: count, p50/p99/mean in ms, errors, throughput, ratios to the raw KV read."""
    out: dict[str, Any] = {}
    for method in (*METHODS, *DIAGNOSTICS):
        mine = [b for b in blocks if b["method"] == method]
        samples = [s for b in mine for s in b["latencies"]]
        if not samples:
            continue
        spans: dict[int, tuple[float, float]] = {}
        for b in mine:
            start, end = spans.get(b["round"], (b["start"], b["end"]))
            spans[b["round"]] = (min(start, b["start"]), max(end, b["end"]))
        busy = sum(end - start for start, end in spans.values())
        out[method] = {
            "requests": len(samples),
            "errors": sum(b["errors"] for b in mine),
            "p50_ms": 1000 * percentile(samples, 0.50),
            "p99_ms": 1000 * percentile(samples, 0.99),
            "mean_ms": 1000 * sum(samples) / len(samples),
            "throughput_rps": len(samples) / busy if busy > 0 else None,
        }
    floor = out.get(FLOOR)
    for figures in out.values():
        for key in ("p50", "p99"):
            figures[f"{key}_ratio"] = figures[f"{key}_ms"] / floor[f"{key}_ms"] if floor else None
    return {"plan": asdict(plan), "methods": out}


def creds_goals(modes: dict[str, Any], method: str = "creds") -> dict[str, Any]:
    """Whether ``azsidecar creds`` meets its p50 goal in ms, per mode (issue 17)."""
    verdict: dict[str, Any] = {}
    for mode, limit in CREDS_GOALS_MS.items():
        figures = modes.get(mode, {}).get("methods", {}).get(method)
        p50 = None if figures is None else figures["p50_ms"]
        verdict[mode] = {
            "p50_ms_max": limit,
            "p50_ms": p50,
            "met": p50 is not None and p50 <= limit,
        }
    return verdict


def goals(modes: dict[str, Any]) -> dict[str, Any]:
    """Whether each goal (p50 ratio to the raw KV read) holds, per mode."""
    verdict: dict[str, Any] = {}
    for method, limit in GOALS.items():
        verdict[method] = {"p50_ratio_max": limit}
        for mode, summary in modes.items():
            ratio = summary["methods"].get(method, {}).get("p50_ratio")
            verdict[method][mode] = None if ratio is None else ratio <= limit
    return verdict


# -- one client process ----------------------------------------------------------------


def _calls(target: Target) -> dict[str, Callable[[], bool]]:
    """Each method as a call that answers whether the credential came back right."""
    kv_client = connect(target.addr, token=target.kv_token)
    runner = connect(target.addr, token=target.runner_token)
    root = connect(target.addr, token=target.root_token)
    authorizer = VaultAuthorizer(target.addr)
    kv = VaultKV(kv_client, "secret", PREFIX)
    resolver = ResolverClient(target.resolver)
    resolver_cold = ResolverClient(target.resolver_cold)
    kv_path = f"/v1/secret/data/{PREFIX}/credentials/{INTEGRATION}"
    caps_path = creds_path(MOUNT, STACK, PHASE)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "AZSIDECAR_"))
    }
    env |= {"AZSIDECAR_VAULT_ADDR": target.addr, "AZSIDECAR_VAULT_PREFIX": PREFIX}
    # The process methods run as installed programs do, from compiled bytecode (pip
    # compiles a wheel's modules when it installs it). A shell that sets
    # PYTHONDONTWRITEBYTECODE (as a development environment may) would have every call
    # compile the helper's modules again from source; here the warm-up call compiles
    # them once, into the bench's own directory rather than the source tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = target.pycache
    policy = TimingPolicy()

    def raw_kv() -> bool:
        body: Any = kv_client.adapter.get(kv_path)
        return bool(body["data"]["data"]["client_secret"] == SECRET_TEXT)

    def plugin() -> bool:
        return read_plugin(runner, MOUNT, STACK, PHASE).client_secret.reveal() == SECRET_TEXT

    def resolve() -> bool:
        cred = resolver.resolve(target.runner_token, STACK, PHASE)
        return cred.client_secret.reveal() == SECRET_TEXT

    def resolve_cold() -> bool:
        cred = resolver_cold.resolve(target.runner_token, STACK, PHASE)
        return cred.client_secret.reveal() == SECRET_TEXT

    def creds() -> bool:
        done = subprocess.run(
            target.creds_command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return done.returncode == 0 and json.loads(done.stdout)["client_secret"] == SECRET_TEXT

    # As a runner host runs the installed program: the bytecode pip compiled, no
    # interpreter settings of this environment (a PYTHONPATH would shadow the wheel).
    wheel_env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}

    def creds_wheel() -> bool:
        assert target.wheel_command is not None
        done = subprocess.run(
            target.wheel_command,
            env=wheel_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.returncode == 0 and json.loads(done.stdout)["client_secret"] == SECRET_TEXT

    bao_env = env | {"BAO_ADDR": target.addr, "BAO_TOKEN": target.runner_token}

    def bao_read() -> bool:
        done = subprocess.run(
            target.bao_command, env=bao_env, capture_output=True, text=True, timeout=60, check=False
        )
        return done.returncode == 0 and json.loads(done.stdout)["data"]["client_secret"] == (
            SECRET_TEXT
        )

    def in_client() -> bool:
        now = datetime.now(UTC)
        cred = resolve_credential(kv, STACK, PHASE, now, policy)
        return cred.client_secret.reveal() == SECRET_TEXT

    def capabilities() -> bool:
        return "read" in capabilities_self(runner, caps_path)

    def authorise() -> bool:
        return authorizer.check(target.runner_token, STACK, PHASE) is Access.GRANTED

    def plugin_hop() -> bool:
        body: Any = root.adapter.get(f"/v1/{MOUNT}/config")
        return bool(body["data"]["prefix"] == PREFIX)

    calls: dict[str, Callable[[], bool]] = {
        "kv": raw_kv,
        "plugin": plugin,
        "resolver": resolve,
        "creds": creds,
        "bao": bao_read,
        "resolver cold": resolve_cold,
        "kv x4": in_client,
        "capabilities": capabilities,
        "authorise": authorise,
        "plugin hop": plugin_hop,
    }
    if target.wheel_command is not None:
        calls["creds wheel"] = creds_wheel
    return calls


def _order(round_: int) -> list[str]:
    methods = [*METHODS, *DIAGNOSTICS]
    shift = round_ % len(methods)
    return methods[shift:] + methods[:shift]


def client(target: Target, plan: Plan, barrier: Any, results: Any) -> None:
    """One client: warm up, then every round a block of each method, in step with the others."""
    try:
        calls = _calls(target)
        for name, call in calls.items():
            for _ in range(1 if name in PROCESS_METHODS else plan.warmup):
                call()
        blocks = []
        for round_ in range(plan.rounds):
            for method in _order(round_):
                if method not in calls:
                    barrier.wait(timeout=300)  # in step with the others, who skip it too
                    continue
                count = plan.fast
                if method in PROCESS_METHODS:
                    count = plan.creds if round_ < plan.creds_rounds else 0
                barrier.wait(timeout=300)
                if not count:
                    continue
                call, latencies, errors = calls[method], [], 0
                start = time.monotonic()
                for _ in range(count):
                    began = time.perf_counter()
                    try:
                        ok = call()
                    except Exception:
                        ok = False
                    latencies.append(time.perf_counter() - began)
                    errors += not ok
                end = time.monotonic()
                blocks.append(
                    {
                        "method": method,
                        "round": round_,
                        "start": start,
                        "end": end,
                        "latencies": latencies,
                        "errors": errors,
                    }
                )
        results.put({"blocks": blocks})
    except BaseException as exc:
        barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"[:500]})


def run_clients(target: Target, plan: Plan) -> list[dict[str, Any]]:
    """``plan.clients`` client processes; every block they measured."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(plan.clients)
    results = context.Queue()
    processes = [
        context.Process(target=client, args=(target, plan, barrier, results), daemon=True)
        for _ in range(plan.clients)
    ]
    for process in processes:
        process.start()
    blocks: list[dict[str, Any]] = []
    try:
        answers = 0
        while answers < len(processes):
            try:
                answer = results.get(timeout=1.0)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in processes):
                    raise RuntimeError("a latency client exited without an answer") from None
                continue
            answers += 1
            if "error" in answer:
                raise RuntimeError(f"a latency client failed: {answer['error']}")
            blocks += answer["blocks"]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
    return blocks


# -- the server side -----------------------------------------------------------------


class LatencyStack:
    """OpenBao with the plugin at ``azsidecar/`` and JWT auth, the resolver as a process."""

    def __init__(self, wheel: bool = False) -> None:
        self.wheel = wheel
        self.wheel_program: Path | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="azsidecar-latency-"))
        self.openbao = OpenBaoDevServer(plugin_dir=str(self.workdir / "plugins"))
        self.resolvers: list[subprocess.Popen[bytes]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def __enter__(self) -> LatencyStack:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bao(self, *args: str) -> None:
        env = dict(os.environ, BAO_ADDR=self.openbao.addr, BAO_TOKEN=self.openbao.root_token)
        done = subprocess.run(
            [find_bao(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"bao {' '.join(args[:2])} failed: {done.stderr[-500:]}")

    def _install_wheel(self) -> Path:
        """A wheel of the sources in a new virtualenv outside the repository: its program.

        As ``tests/test_wheel.py`` builds it: from a copy of the sources, without
        the network; the dependencies come from this virtualenv by a ``.pth`` line
        (which runs none of its ``.pth`` files, so not the editable install's hook).
        """
        source, dist, venv = (self.workdir / name for name in ("src", "dist", "venv"))
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, source / name)
        shutil.copytree(
            REPO / "sidecar",
            source / "sidecar",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        pip = (sys.executable, "-m", "pip", "--quiet")
        self._step(
            *pip, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w", dist, source
        )
        self._step(sys.executable, "-m", "venv", "--without-pip", venv)
        (wheel,) = dist.glob("azsidecar-*.whl")
        python = venv / "bin" / "python"
        self._step(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel)
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(purelib, "project_dependencies.pth").write_text(
            sysconfig.get_paths()["purelib"] + "\n"
        )
        return venv / "bin" / "azsidecar"

    def _step(self, *argv: str | Path) -> None:
        done = subprocess.run(
            [str(a) for a in argv],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv[:4]))} failed: {done.stderr[-500:]}")

    def _setup(self) -> None:
        (self.workdir / "plugins").mkdir()
        if self.wheel:
            self.wheel_program = self._install_wheel()
        self.openbao.start()
        root = connect(self.openbao.addr, token=self.openbao.root_token)
        for command in registration_commands(
            install_wrapper(str(self.workdir / "plugins"), "azsidecar")
        ):
            self._bao(*shlex.split(command)[1:])
        accessor = self._jwt_auth(root)
        values = {
            "jwt_accessor": accessor,
            "kv_mount": "secret",
            "prefix": PREFIX,
            "creds_mount": MOUNT,
        }
        for name, text in render_all(values).items():
            root.sys.create_or_update_policy(f"azsidecar-{name}", text)
        created = root.auth.token.create(policies=["azsidecar-plugin"], ttl="4h")
        self.plugin_token = str(created["auth"]["client_token"])
        root.adapter.post(
            f"/v1/{MOUNT}/config",
            json={"vault_addr": self.openbao.addr, "token": self.plugin_token, "prefix": PREFIX},
        )
        self._seed(Store(VaultKV(root, "secret", PREFIX)))
        self.jwt_file = self.workdir / "ci.jwt"
        self.jwt_file.write_text(self.jwt())
        self.jwt_file.chmod(0o600)
        runner = connect(self.openbao.addr, jwt=("jwt", ROLE, self.jwt()))
        self.runner_token = str(runner.token)
        self.resolver_addr = self._start_resolver("2s")
        self.resolver_cold_addr = self._start_resolver("0s")

    def _jwt_auth(self, root: hvac.Client) -> str:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        root.sys.enable_auth_method("jwt", path="jwt")
        root.adapter.post("/v1/auth/jwt/config", json={"jwt_validation_pubkeys": [public.decode()]})
        role = runner_role()
        root.adapter.post(f"/v1/auth/jwt/role/{ROLE}", json=role)
        methods: Any = root.adapter.get("/v1/sys/auth")
        return str(methods["data"]["jwt/"]["accessor"])

    def jwt(self) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": "https://ci.example",
            "sub": f"bench:{STACK}:{PHASE}",
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now - timedelta(seconds=5),
            "exp": now + timedelta(hours=2),
            "stack": STACK,
            "phase": str(PHASE),
            "stack_phase": f"{STACK}:{PHASE}",
        }
        return jwt.encode(claims, self.key, algorithm="RS256")

    @staticmethod
    def _seed(store: Store) -> None:
        now = datetime.now(UTC)
        record = IntegrationRecord(
            name=INTEGRATION,
            tenant_id=BENCH_TENANT,
            subscription_id="5e2d1c0b-3a49-4f58-9e67-7d8c9b0a1f2e",
            app_object_id="6f3e2d1c-4b5a-4069-8f78-8e9d0c1b2a3f",
            client_id=BENCH_CLIENT,
            display_name="azsidecar bench",
            consent=ConsentState.GRANTED,
            created=now - timedelta(days=1),
        )
        store.save_integration(record, cas=0)
        created = now - timedelta(hours=1)
        secret = SecretVersion(
            client_id=BENCH_CLIENT,
            secret=Sensitive(SECRET_TEXT),
            key_id="key-bench",
            tenant_id=BENCH_TENANT,
            intent_id="intent-bench",
            created=created,
            expires=created + timedelta(hours=24),
        )
        store.store_secret(INTEGRATION, secret)
        store.save_stack(StackRecord(name=STACK, read=INTEGRATION, write=INTEGRATION), cas=0)

    def _start_resolver(self, cache_ttl: str, timeout: float = 30.0) -> str:
        """A resolver process; ``cache_ttl`` 0s reads the secret index on every call."""
        addr = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AZSIDECAR_"))}
        env |= {
            "AZSIDECAR_VAULT_ADDR": self.openbao.addr,
            "AZSIDECAR_VAULT_PREFIX": PREFIX,
            "VAULT_TOKEN": self.plugin_token,
            "AZSIDECAR_DAEMON_RESOLVER_CACHE_TTL": cache_ttl,
        }
        with (self.workdir / f"resolver-{len(self.resolvers)}.log").open("wb") as log:
            resolver = subprocess.Popen(
                [sys.executable, "-m", "sidecar.cli.main", "resolver", "--addr", addr],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.resolvers.append(resolver)
        probe = ResolverClient(addr, timeout=2.0)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    probe.resolve(self.runner_token, STACK, PHASE)
                    return addr
                except Exception:
                    if resolver.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            probe.close()

    def target(self) -> Target:
        azsidecar = Path(sys.executable).parent / "azsidecar"
        program = (
            [str(azsidecar)] if azsidecar.exists() else [sys.executable, "-m", "sidecar.cli.main"]
        )
        arguments = (
            "creds",
            "--stack",
            STACK,
            "--phase",
            str(PHASE),
            "--via",
            "plugin",
            "--jwt-file",
            str(self.jwt_file),
            "--role",
            ROLE,
            "--format",
            "json",
        )
        command = (*program, *arguments)
        return Target(
            addr=self.openbao.addr,
            kv_token=self.plugin_token,
            runner_token=self.runner_token,
            root_token=self.openbao.root_token,
            resolver=self.resolver_addr,
            resolver_cold=self.resolver_cold_addr,
            creds_command=command,
            bao_command=(
                find_bao(),
                "read",
                "-format=json",
                creds_path(MOUNT, STACK, PHASE),
            ),
            pycache=str(self.workdir / "pycache"),
            wheel_command=(
                None if self.wheel_program is None else (str(self.wheel_program), *arguments)
            ),
        )

    def close(self) -> None:
        for resolver in self.resolvers:
            if resolver.poll() is not None:
                continue
            resolver.terminate()
            try:
                resolver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                resolver.kill()
                resolver.wait()
        self.openbao.cleanup()
        if not os.environ.get("AZSIDECAR_BENCH_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def run(quick: bool = False) -> dict[str, Any]:
    plans = QUICK if quick else FULL
    modes: dict[str, Any] = {}
    # The wheel's build and install take a quarter of a minute: full runs only.
    with LatencyStack(wheel=not quick) as stack:
        target = stack.target()
        for mode, plan in plans.items():
            modes[mode] = summarise(run_clients(target, plan), plan)
    return {
        "parameters": {
            "clients": CLIENTS,
            "client_kind": "processes",
            "floor": FLOOR,
            "creds": "azsidecar creds --via plugin, JWT login, a process per call",
            "creds wheel": "the same, installed from a wheel into a virtualenv (full runs)",
            "bao": "bao read of the plugin's path with the runner token, a process per call",
            "grpc": grpc.__version__,
        },
        "modes": modes,
        "goals": goals(modes),
        "creds_goals": creds_goals(modes),
        "creds_wheel_goals": creds_goals(modes, "creds wheel"),
    }
