"""A real OpenBao, the emulator in its own process and the daemon as a subprocess.

The scale and cost benchmarks share this harness. Integrations are seeded in
bulk, straight into the emulator's state and through the product's own
:class:`sidecar.store.Store` into Vault, with secrets whose age the caller
chooses (so that every integration is due for renewal at once, or renewals
are spread over the day). The daemon is then started as
``python -m sidecar.cli.main daemon`` with the emulator's clock mirrored
through ``[clock]``, and measured from ``/proc``: CPU time, resident and
peak memory. Vault writes are counted from an OpenBao file audit device.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sidecar.devstack.openbao import OpenBaoDevServer, find_bao, free_port
from sidecar.management import (
    ManagementIdentity,
    generate_key_pair,
    save_identity,
    store_certificate,
)
from sidecar.model import ConsentState, credential_display_name
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, SecretVersion, Store
from sidecar.vault import VaultKV, connect

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PREFIX = "bench"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process from ``/proc``: CPU seconds and memory in MiB."""

    cpu_user: float
    cpu_system: float
    rss_mib: float
    peak_rss_mib: float

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_system


def read_proc(pid: int) -> ProcSample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()

    def mib(key: str) -> float:
        return int(status.get(key, "0 kB").split()[0]) / 1024

    return ProcSample(utime / CLOCK_TICK, stime / CLOCK_TICK, mib("VmRSS"), mib("VmHWM"))


@dataclass(frozen=True)
class SeededIntegration:
    name: str
    object_id: str
    app_id: str
    key_id: str
    intent_id: str
    created: datetime
    expires: datetime


@dataclass
class AuditCounts:
    """Vault requests by kind, from the audit log (``request`` entries)."""

    writes: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)

    @property
    def total_writes(self) -> int:
        return sum(self.writes.values())

    @property
    def total_reads(self) -> int:
        return sum(self.reads.values())


def _path_kind(path: str) -> str:
    """``secret/data/bench/credentials/x`` -> ``data:credentials``."""
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != "secret":
        return path.split("/", maxsplit=1)[0] or "other"
    api, area = parts[1], parts[3]
    if area == "state" and len(parts) > 4:
        area = f"state/{parts[4]}"
    return f"{api}:{area}"


def count_audit(path: Path) -> AuditCounts:
    counts = AuditCounts()
    if not path.exists():
        return counts
    with path.open() as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("type") != "request":
                continue
            request = entry.get("request") or {}
            path_ = str(request.get("path", ""))
            if not path_.startswith("secret/"):
                continue
            kind = _path_kind(path_)
            if request.get("operation") in ("create", "update", "delete"):
                counts.writes[kind] += 1
            else:
                counts.reads[kind] += 1
    return counts


class AuditedOpenBao(OpenBaoDevServer):
    """``bao server -dev`` that allows a file audit device (OpenBao 2 refuses it by default)."""

    def __init__(self) -> None:
        super().__init__()
        config = self.workdir / "audit.hcl"
        config.write_text("unsafe_allow_api_audit_creation = true\n")
        self.extra_args = (f"-config={config}",)

    def version(self) -> str:
        out = subprocess.run(
            [find_bao(), "version"], capture_output=True, text=True, check=False, timeout=30
        )
        return out.stdout.strip()


class EmulatorProcess:
    """``python -m bench.emuproc``: seeded at start, clock frozen until :meth:`start_clock`."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        spec_path = workdir / "emulator-seed.json"
        spec_path.write_text(json.dumps(spec))
        self._log = (workdir / "emulator.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.emuproc", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        hello = self._read()
        self.base_url = str(hello["base_url"])
        self.ca_path = str(hello["ca_path"])
        self.mgmt = dict(hello["mgmt"])
        spec_path.unlink()

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited; see emulator.log")
        result: dict[str, Any] = json.loads(line)
        return result

    def command(self, **command: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        return self._read()

    def sample(self) -> ProcSample:
        return read_proc(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.command(cmd="quit")
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class DaemonProcess:
    """The product's daemon as a subprocess, measured through ``/proc``."""

    def __init__(self, config_path: Path, token: str, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZSIDECAR_", "VAULT_"))}
        env["VAULT_TOKEN"] = token
        self._log = log_path.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sidecar.cli.main",
                "daemon",
                "--no-metrics",
                "--config",
                str(config_path),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def sample(self) -> ProcSample:
        return read_proc(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> ProcSample | None:
        """SIGTERM after a last reading; returns that reading."""
        last = self.sample() if self.alive() else None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return last


def secret_ages_due_at_once(count: int) -> list[timedelta]:
    """Every newest secret 5 minutes past its renewal point (22 h of 24 h)."""
    return [timedelta(hours=22, minutes=5)] * count


def secret_ages_spread(count: int, seed: int = 7) -> list[timedelta]:
    """Renewals spread evenly over one 22 h renewal period (a real population)."""
    rng = random.Random(seed)
    return [timedelta(seconds=rng.uniform(0, 22 * 3600)) for _ in range(count)]


class BenchStack:
    """Everything one scale or cost run needs; a context manager that cleans up."""

    def __init__(
        self,
        ages: list[timedelta],
        *,
        throttle: dict[str, Any] | None = None,
        lag_profile: str = "default",
        seed: int = 20260301,
        audit: bool = True,
        seed_threads: int = 4,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="azsidecar-bench-"))
        self.ages = ages
        self.throttle = throttle
        self.lag_profile = lag_profile
        self.seed = seed
        self.audit = audit
        self.seed_threads = seed_threads
        self.openbao = AuditedOpenBao()
        self.emulator: EmulatorProcess | None = None
        self.daemon: DaemonProcess | None = None
        self.integrations: list[SeededIntegration] = []
        self.audit_path = self.workdir / "audit.log"
        self.clock: dict[str, Any] = {}
        self.seed_seconds = 0.0

    # -- set-up --------------------------------------------------------------------

    def __enter__(self) -> BenchStack:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def store(self) -> Store:
        client = connect(self.openbao.addr, token=self.openbao.root_token)
        return Store(VaultKV(client, mount="secret", prefix=PREFIX))

    def _setup(self) -> None:
        started = time.monotonic()
        self.openbao.start()
        tenant = str(uuid.uuid4())
        pair = generate_key_pair(
            "azsidecar-management", START - timedelta(days=1), timedelta(days=30)
        )
        texts: list[str] = []
        apps: list[list[Any]] = []
        for i, age in enumerate(self.ages):
            created = START - age
            expires = created + timedelta(hours=24)
            intent = uuid.uuid4().hex
            seeded = SeededIntegration(
                name=f"int-{i:05d}",
                object_id=str(uuid.uuid4()),
                app_id=str(uuid.uuid4()),
                key_id=str(uuid.uuid4()),
                intent_id=intent,
                created=created,
                expires=expires,
            )
            text = secrets.token_urlsafe(30)
            texts.append(text)
            self.integrations.append(seeded)
            apps.append(
                [
                    seeded.object_id,
                    seeded.app_id,
                    f"azsidecar-{seeded.name}",
                    seeded.key_id,
                    credential_display_name(intent),
                    created.timestamp(),
                    expires.timestamp(),
                    hashlib.sha256(text.encode()).hexdigest(),
                ]
            )
        spec = {
            "tenant": tenant,
            "clock_start": START.timestamp(),
            "seed": self.seed,
            "lag_profile": self.lag_profile,
            "throttle": self.throttle,
            "mgmt_cert_pem": pair.cert_pem,
            "apps": apps,
        }
        self.emulator = EmulatorProcess(spec, self.workdir)
        store = self.store()
        store.kv.ensure_mount()
        mgmt = self.emulator.mgmt
        save_identity(store, ManagementIdentity(tenant, mgmt["object_id"], mgmt["app_id"]))
        store_certificate(
            store, pair, key_id=mgmt["key_id"] or "", uploaded_at=START - timedelta(days=1)
        )
        self._seed_vault(tenant, texts)
        self.seed_seconds = time.monotonic() - started

    def _seed_vault(self, tenant: str, texts: list[str]) -> None:
        chunks = [
            list(range(i, len(self.integrations), self.seed_threads))
            for i in range(self.seed_threads)
        ]

        def write(indexes: list[int]) -> None:
            store = self.store()
            for i in indexes:
                seeded = self.integrations[i]
                record = IntegrationRecord(
                    name=seeded.name,
                    tenant_id=tenant,
                    subscription_id=None,
                    app_object_id=seeded.object_id,
                    client_id=seeded.app_id,
                    display_name=f"azsidecar-{seeded.name}",
                    consent=ConsentState.GRANTED,
                    created=seeded.created,
                )
                store.save_integration(record, cas=0)
                store.store_secret(
                    seeded.name,
                    SecretVersion(
                        client_id=seeded.app_id,
                        secret=Sensitive(texts[i]),
                        key_id=seeded.key_id,
                        tenant_id=tenant,
                        intent_id=seeded.intent_id,
                        created=seeded.created,
                        expires=seeded.expires,
                    ),
                )

        with ThreadPoolExecutor(self.seed_threads) as pool:
            list(pool.map(write, chunks))

    # -- the run -------------------------------------------------------------------

    def enable_audit(self) -> None:
        client = connect(self.openbao.addr, token=self.openbao.root_token)
        options = {"file_path": str(self.audit_path)}
        client.sys.enable_audit_device("file", options=options)  # type: ignore[no-untyped-call]

    def disable_audit(self) -> None:
        client = connect(self.openbao.addr, token=self.openbao.root_token)
        client.sys.disable_audit_device("file")  # type: ignore[no-untyped-call]

    def start_clock(self, factor: float, *, drain: bool = False) -> dict[str, Any]:
        assert self.emulator is not None
        self.clock = self.emulator.command(cmd="start", factor=factor, drain=drain)
        return self.clock

    def write_config(self, concurrency: int = 8, log_level: str = "info") -> Path:
        assert self.emulator is not None and self.clock
        origin = datetime.fromtimestamp(self.clock["origin_virtual"], UTC).isoformat()
        lines = [
            "[vault]",
            f'addr = "{self.openbao.addr}"',
            f'prefix = "{PREFIX}"',
            "[azure]",
            f'login_url = "{self.emulator.base_url}"',
            f'graph_url = "{self.emulator.base_url}/graph"',
            f'arm_url = "{self.emulator.base_url}/arm"',
            f'ca_bundle = "{self.emulator.ca_path}"',
            "[clock]",
            f"factor = {self.clock['factor']}",
            f'origin = "{origin}"',
            f"origin_real = {self.clock['origin_real']}",
            "[daemon]",
            f"concurrency = {concurrency}",
            f'log_level = "{log_level}"',
            # Never the default port: another stack (compose, a second bench) may hold it.
            f'resolver_addr = "127.0.0.1:{free_port()}"',
        ]
        path = self.workdir / "daemon.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_daemon(self, concurrency: int = 8) -> DaemonProcess:
        config = self.write_config(concurrency)
        self.daemon = DaemonProcess(config, self.openbao.root_token, self.workdir / "daemon.log")
        return self.daemon

    def emulator_stats(self) -> dict[str, Any]:
        assert self.emulator is not None
        return self.emulator.command(cmd="stats")

    def wait(
        self, done: Callable[[dict[str, Any]], bool], timeout: float, poll: float = 1.0
    ) -> Iterator[dict[str, Any]]:
        """Yield emulator stats every ``poll`` seconds until ``done`` or the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.emulator_stats()
            yield stats
            if done(stats) or time.monotonic() > deadline:
                return
            if self.daemon is not None and not self.daemon.alive():
                return
            time.sleep(poll)

    def daemon_log_tail(self, lines: int = 5) -> str:
        path = self.workdir / "daemon.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        if self.emulator is not None:
            self.emulator.stop()
        self.openbao.cleanup()
        if not os.environ.get("AZSIDECAR_BENCH_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
