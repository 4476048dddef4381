"""``azsidecar soak``: the demo's whole set-up for many real minutes of short-lived logins.

The demo runs days of *emulated* time; Vault tokens, TLS certificates and
rotated files live in *real* time. The soak runs the demo's set-up (OpenBao with
the plugin, the emulator, the daemon, a stand-alone resolver, CI runs through
both) where every component logs in with AppRole tokens of ``token_ttl`` (30 s)
and ``token_max_ttl`` (90 s), the resolver serves TLS with a certificate that
lives two rotation periods and is replaced every ``cert_every`` (3 min), and each
run signs a new JWT. It counts failed runs and failed daemon operations, the
renewals and logins of every component, and samples memory (RSS) and open file
descriptors of every process, so a leak shows as growth between the first and
the last minute.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.config import Config
from sidecar.demo import vault_setup
from sidecar.demo.orchestration import Demo, DemoOptions, DemoResult, _clean_env, daemon_config
from sidecar.demo.processes import Child, azsidecar_argv, wait_until
from sidecar.demo.report import DaemonCounts
from sidecar.demo.runs import Runner
from sidecar.devstack.openbao import OpenBaoDevServer, free_port
from sidecar.durations import format_duration
from sidecar.policies import runner_role
from sidecar.vault import connect

Out = Callable[[str], None]
ROLES = {
    "daemon": "azsidecar-sidecar",
    "resolver": "azsidecar-plugin",
    "plugin": "azsidecar-plugin",
}


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 10.0
    token_ttl: timedelta = timedelta(seconds=30)
    token_max_ttl: timedelta = timedelta(seconds=90)
    cert_every: timedelta = timedelta(minutes=3)
    sample_every: float = 10.0
    speed: float = 144.0  # emulated seconds per real second: 24 h in 10 minutes
    runs_every: timedelta = timedelta(minutes=10)
    logs: Path | None = None

    @property
    def demo(self) -> DemoOptions:
        hours = self.minutes * 60 * self.speed / 3600
        return DemoOptions(
            hours=hours,
            speed=self.speed,
            runs_every=self.runs_every,
            progress_every=timedelta(hours=hours / 5),
            logs=self.logs,
        )


@dataclass(frozen=True)
class Sample:
    at: float  # real seconds since the runs began
    rss_kib: dict[str, int]
    fds: dict[str, int]
    daemon_healthy: bool


@dataclass
class SoakResult:
    demo: DemoResult = field(default_factory=DemoResult)
    samples: list[Sample] = field(default_factory=list)
    daemon_failures: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)  # renewals, logins
    token_problems: dict[str, str] = field(default_factory=dict)
    cert_rotations: int = 0
    cert_reloads_logged: int = 0
    runs: int = 0
    failed_runs: int = 0
    resolver_runs: int = 0
    real_minutes: float = 0.0

    @property
    def unhealthy_samples(self) -> int:
        return sum(1 for s in self.samples if not s.daemon_healthy)

    def growth(self) -> dict[str, tuple[int, int, int, int]]:
        """Per process: RSS at the first and the last sample (KiB), fds at both."""
        if len(self.samples) < 2:
            return {}
        first, last = self.samples[0], self.samples[-1]
        return {
            name: (first.rss_kib[name], last.rss_kib[name], first.fds[name], last.fds[name])
            for name in first.rss_kib
            if name in last.rss_kib
        }

    @property
    def ok(self) -> bool:
        return (
            self.demo.runs > 0
            and self.demo.failed == 0
            and not any(self.daemon_failures.values())
            and not any(self.token_problems.values())
            and self.unhealthy_samples == 0
        )

    def lines(self) -> list[str]:
        out = [
            f"soak: {self.real_minutes:.1f} real minutes, {self.runs} runs"
            f" ({self.resolver_runs} through the TLS resolver), {self.failed_runs} failed",
            "daemon operations failed: "
            + ", ".join(f"{k} {v:g}" for k, v in self.daemon_failures.items()),
            f"daemon /healthz samples failing: {self.unhealthy_samples} of {len(self.samples)}",
            f"resolver certificate rotations: {self.cert_rotations}"
            f" (reloads logged by the resolver: {self.cert_reloads_logged})",
            "Vault tokens (renewals, logins): "
            + ", ".join(f"{k} {r}/{n}" for k, (r, n) in self.tokens.items()),
        ]
        for name, problem in self.token_problems.items():
            if problem:
                out.append(f"  {name} token problem: {problem}")
        out.append("process      RSS MiB first -> last (max)   open fds first -> last (max)")
        for name, (rss0, rss1, fd0, fd1) in self.growth().items():
            rss_max = max(s.rss_kib.get(name, 0) for s in self.samples)
            fd_max = max(s.fds.get(name, 0) for s in self.samples)
            out.append(
                f"{name:<12} {rss0 / 1024:7.1f} -> {rss1 / 1024:7.1f} ({rss_max / 1024:6.1f})"
                f"       {fd0:4d} -> {fd1:4d} ({fd_max:4d})"
            )
        return out


def _proc(pid: int) -> tuple[int, int] | None:
    """RSS (KiB) and open file descriptors of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return (int(found.group(1)), fds) if found else None


def _plugin_pid(parent: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and b"sidecar.plugin" in cmdline:
            return int(entry.name)
    return None


class CertificateAuthority:
    """The soak's CA (as cert-manager's issuer would be): short-lived leaves for the resolver."""

    def __init__(self, directory: Path, leaf_lifetime: timedelta) -> None:
        self.directory = directory
        self.leaf_lifetime = leaf_lifetime
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azsidecar soak CA")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = directory / "resolver-ca.pem"
        self.cert_path = directory / "resolver.pem"
        self.key_path = directory / "resolver-key.pem"
        self._write(self.ca_path, self.cert.public_bytes(serialization.Encoding.PEM))
        self.issued = 0

    def issue(self) -> None:
        """A new key and certificate, written beside and renamed over the served files."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "resolver")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(seconds=30))
            .not_valid_after(now + self.leaf_lifetime)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write(self.key_path, key_pem)
        self._write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        self.issued += 1

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        temp.replace(path)


class Soak(Demo):
    """The demo with AppRole logins everywhere, a TLS resolver of its own, and samples."""

    def __init__(self, options: SoakOptions, out: Out) -> None:
        super().__init__(options.demo, out)
        self.soak = options
        self.soak_result = SoakResult()
        self.bao: OpenBaoDevServer | None = None
        self.resolver_child: Child | None = None
        self.daemon_child: Child | None = None
        self.metrics_url = ""
        self.ca: CertificateAuthority | None = None
        self._stop_watch = threading.Event()
        self._role_ids: dict[str, str] = {}
        self.daemon_login = "its AppRole login"

    def run_soak(self) -> SoakResult:
        self.soak_result.demo = self.run()
        return self.soak_result

    # -- logins ----------------------------------------------------------------------

    def _start_openbao(self) -> OpenBaoDevServer:
        self.bao = super()._start_openbao()
        return self.bao

    def _approle(self, setup: vault_setup.VaultSetup) -> None:
        """One AppRole per component, its secret id in a 0600 file; runners' JWT tokens too."""
        assert self.bao is not None
        root = connect(self.bao.addr, token=self.bao.root_token)
        root.sys.enable_auth_method("approle")
        ttl = f"{int(self.soak.token_ttl.total_seconds())}s"
        max_ttl = f"{int(self.soak.token_max_ttl.total_seconds())}s"
        for part, policy in ROLES.items():
            role = f"azsidecar-{part}"
            root.auth.approle.create_or_update_approle(
                role, token_policies=[policy], token_ttl=ttl, token_max_ttl=max_ttl
            )
            self._role_ids[part] = root.auth.approle.read_role_id(role)["data"]["role_id"]
            secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
            CertificateAuthority._write(self._secret_id_file(part), secret_id.encode())
        role_body = runner_role()
        role_body.update(token_ttl=ttl, token_max_ttl=max_ttl)
        root.adapter.post(f"/v1/auth/jwt/role/{vault_setup.JWT_ROLE}", json=role_body)
        root.write_data(
            f"{vault_setup.PLUGIN_MOUNT}/config",
            data={
                "approle_role_id": self._role_ids["plugin"],
                "approle_secret_id_file": str(self._secret_id_file("plugin")),
            },
        )
        self.out(
            f"  soak: AppRole logins for the daemon, the resolver and the plugin, and the"
            f" runners' JWT role: token_ttl {ttl}, token_max_ttl {max_ttl}"
        )

    def _secret_id_file(self, part: str) -> Path:
        return self.workdir / f"{part}.secret-id"

    def _vault_login(self, part: str) -> dict[str, object]:
        return {
            "auth": "approle",
            "role_id": self._role_ids[part],
            "secret_id_file": str(self._secret_id_file(part)),
        }

    def _daemon_env(self, setup: vault_setup.VaultSetup) -> dict[str, str]:
        return _clean_env()  # no token: it logs in with AppRole

    def _daemon_sections(
        self,
        config: Config,
        clock: dict[str, Any],
        setup: vault_setup.VaultSetup,
        metrics_port: int,
        resolver_port: int,
    ) -> dict[str, dict[str, object]]:
        sections = super()._daemon_sections(config, clock, setup, metrics_port, resolver_port)
        sections["vault"].update(self._vault_login("daemon"))
        sections["daemon"]["resolver_enabled"] = False  # a resolver of its own, below
        return sections

    def _start_daemon(
        self, config: Config, clock: dict[str, Any], setup: vault_setup.VaultSetup
    ) -> tuple[Child, str, str]:
        self._approle(setup)
        daemon, metrics_url, _ = super()._start_daemon(config, clock, setup)
        self.daemon_child, self.metrics_url = daemon, metrics_url
        return daemon, metrics_url, self._start_resolver(config, clock, setup)

    def _start_resolver(
        self, config: Config, clock: dict[str, Any], setup: vault_setup.VaultSetup
    ) -> str:
        cycle = self.soak.cert_every
        self.ca = CertificateAuthority(self.workdir, leaf_lifetime=cycle * 2)
        self.ca.issue()
        port = free_port()
        sections = super()._daemon_sections(config, clock, setup, free_port(), port)
        sections["vault"].update(self._vault_login("resolver"))
        sections["daemon"].update(tls_cert=str(self.ca.cert_path), tls_key=str(self.ca.key_path))
        path = self.workdir / "resolver.toml"
        path.write_text(daemon_config(sections))
        self.resolver_child = self.children.start(
            "resolver",
            azsidecar_argv("resolver", "--config", str(path), "--mount", vault_setup.PLUGIN_MOUNT),
            _clean_env(),
        )
        self.resolver_ca = str(self.ca.ca_path)
        roots = self.ca.ca_path.read_bytes()

        def serving() -> bool:
            creds = grpc.ssl_channel_credentials(root_certificates=roots)
            with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
                try:
                    health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=2
                    )
                except grpc.RpcError:
                    return False
            return True

        wait_until(serving, 60, "the resolver to serve TLS", self.resolver_child)
        self.out(
            f"  soak: resolver (pid {self.resolver_child.pid}) on 127.0.0.1:{port} with TLS,"
            f" certificate from the soak's CA living {format_duration(cycle * 2)}, replaced"
            f" every {format_duration(cycle)}"
        )
        return f"127.0.0.1:{port}"

    # -- the runs, watched -------------------------------------------------------------

    def _loop(
        self, clock: dict[str, Any], runner: Runner, daemon: Child, metrics_url: str
    ) -> DaemonCounts:
        started = time.monotonic()
        watcher = threading.Thread(target=self._watch, args=(started,), daemon=True)
        watcher.start()
        try:
            counts = super()._loop(clock, runner, daemon, metrics_url)
        finally:
            self._stop_watch.set()
            watcher.join(timeout=30)
        self.soak_result.real_minutes = (time.monotonic() - started) / 60
        self._collect()
        return counts

    def _watch(self, started: float) -> None:
        next_cert = started + self.soak.cert_every.total_seconds()
        while not self._stop_watch.wait(self.soak.sample_every):
            if time.monotonic() >= next_cert and self.ca is not None:
                self.ca.issue()
                self.soak_result.cert_rotations += 1
                next_cert += self.soak.cert_every.total_seconds()
            self.soak_result.samples.append(self._sample(time.monotonic() - started))

    def _sample(self, at: float) -> Sample:
        pids: dict[str, int | None] = {
            "daemon": self.daemon_child.pid if self.daemon_child else None,
            "resolver": self.resolver_child.pid if self.resolver_child else None,
            "openbao": self.bao.process.pid if self.bao and self.bao.process else None,
        }
        pids["plugin"] = _plugin_pid(pids["openbao"]) if pids["openbao"] else None
        for child in self.children.started:
            if child.name == "emulator":
                pids["emulator"] = child.pid
        rss: dict[str, int] = {}
        fds: dict[str, int] = {}
        for name, pid in pids.items():
            found = _proc(pid) if pid else None
            if found is not None:
                rss[name], fds[name] = found
        try:
            healthy = requests.get(f"{self.metrics_url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            healthy = False
        return Sample(at, rss, fds, healthy)

    def _collect(self) -> None:
        """Counts from the daemon's metrics, the plugin's health and the resolver's log."""
        result = self.soak_result
        text = requests.get(f"{self.metrics_url}/metrics", timeout=10).text

        def total(name: str, **labels: str) -> float:
            value = 0.0
            for line in text.splitlines():
                if not line.startswith(name) or line.startswith("#"):
                    continue
                if all(f'{k}="{v}"' in line for k, v in labels.items()):
                    value += float(line.rsplit(" ", 1)[1])
            return value

        event = "azsidecar_vault_token_events_total"
        result.daemon_failures = {
            "rotation": total("azsidecar_rotation_failures_total"),
            "vault": total("azsidecar_vault_errors_total"),
            "token renewal": total(event, event="renew_failed"),
            "login": total(event, event="login_failed"),
        }
        result.tokens["daemon"] = (
            int(total(event, event="renewed")),
            int(total(event, event="login")),
        )
        health = requests.get(f"{self.metrics_url}/healthz", timeout=10).json()
        result.token_problems["daemon"] = str((health.get("vault_token") or {}).get("problem"))
        assert self.bao is not None
        root = connect(self.bao.addr, token=self.bao.root_token)
        answer: Any = root.read(f"{vault_setup.PLUGIN_MOUNT}/health")
        plugin = answer["data"]["vault_token"] or {}
        result.tokens["plugin"] = (int(plugin.get("renewals", 0)), int(plugin.get("logins", 0)))
        result.token_problems["plugin"] = str(plugin.get("problem", ""))
        renewals = logins = reloads = 0
        if self.resolver_child is not None:
            for line in self.resolver_child.log_path.read_text(errors="replace").splitlines():
                renewals += "Vault token renewed" in line
                logins += "logged in to Vault with" in line
                reloads += "serving the new certificate" in line
                if '"level": "error"' in line:
                    result.token_problems["resolver"] = line[:200]
        result.tokens["resolver"] = (renewals, logins)
        result.cert_reloads_logged = reloads
        result.token_problems = {
            k: ("" if v == "None" else v) for k, v in result.token_problems.items()
        }
        result.runs = self.tally.runs
        result.failed_runs = len(self.tally.failed)
        result.resolver_runs = len(self.tally.by(path="resolver"))
        for line in result.lines():
            self.out(line)


def run_soak(options: SoakOptions, out: Out) -> SoakResult:
    return Soak(options, out).run_soak()
