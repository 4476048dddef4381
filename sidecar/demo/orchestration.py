"""``azsidecar demo``: the whole product on one machine, days of it in about a minute.

Real parts only: a ``bao server -dev`` with the plugin, the emulator and the
daemon as separate processes, the product's own code for every operator
step. The order matters:

1. OpenBao and the emulator start; the emulator's clock is frozen (manual)
   during set-up so set-up takes no emulated time except what it waits for.
2. OpenBao is configured as an operator would: KV v2, JWT auth, the shipped
   policies, one token per role.
3. The platform's Azure administrator's part (management application,
   Graph permission, first certificate) is seeded through the emulator's
   admin API; the certificate's key is made here and goes only into Vault.
4. Two integrations are created in two tenants with the product's code, each
   tenant's administrator grants consent by following the printed URL and
   assigns an Azure role; a stack gets them as read and write.
5. Emulated time waits for consent and the first secrets to replicate, then
   starts running ``speed`` times faster than real time; the plugin and the
   daemon get the same clock (plugin environment, ``[clock]``).
6. Runs every ``runs_every`` until ``hours`` have passed, with progress lines;
   then the summary, and every process is stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from sidecar.config import AzureConfig, Config, VaultConfig
from sidecar.demo import vault_setup
from sidecar.demo.emulator_admin import AdminClock, EmulatorAdmin, EmulatorEndpoints
from sidecar.demo.processes import Child, Children, DemoError, azsidecar_argv, wait_until
from sidecar.demo.report import (
    PROGRESS_HEADER,
    DaemonCounts,
    IntegrationRow,
    parse_metrics,
    progress_line,
    summary,
    when,
)
from sidecar.demo.runs import Runner, RunResult, RunTally
from sidecar.devstack.openbao import OpenBaoDevServer, free_port, private_dir
from sidecar.durations import format_duration
from sidecar.errors import GraphError
from sidecar.integrations import Integrations, consent_url
from sidecar.management import ManagementIdentity, generate_key_pair, save_identity
from sidecar.management import store_certificate as store_management_certificate
from sidecar.runtime import Runtime
from sidecar.stacks import attach
from sidecar.store import IntegrationRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV, connect

Out = Callable[[str], None]
STACK = "demo-stack"
REDIRECT_URI = "https://ci.example/azure/consent"


@dataclass(frozen=True)
class TenantPlan:
    """One integration the demo creates, in a tenant of its own."""

    integration: str
    tenant_name: str
    phase: str  # which phase of the stack uses it
    azure_role: str


INTEGRATIONS = (
    TenantPlan("contoso-read", "Contoso", "plan", "Reader"),
    TenantPlan("fabrikam-write", "Fabrikam", "apply", "Contributor"),
)


@dataclass(frozen=True)
class DemoOptions:
    hours: float = 48.0
    speed: float = 2880.0  # emulated seconds per real second: 48 h in one minute
    lag_profile: str = "default"
    runs_every: timedelta = timedelta(minutes=10)
    progress_every: timedelta = timedelta(hours=4)
    replicas: int = 3
    seed: int = 1
    # Gateways failing this share of Graph requests (503; 504, committed first for writes).
    gateway_fault_rate: float = 0.05
    logs: Path | None = None  # keep the processes' logs here


@dataclass
class DemoResult:
    runs: int = 0
    failed: int = 0
    auth_failed: int = 0
    rotations: int = 0
    certificate_renewals: int = 0
    real_seconds: float = 0.0
    doctor_ok: bool = False
    no_orphans: bool = False  # doctor found no application that no integration records
    faults_served: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.runs > 0 and self.failed == 0 and self.doctor_ok and self.no_orphans


def demo_timing(max_lag: float) -> TimingPolicy:
    """The default rules, with what the demo's pace and lag profile need.

    * the management certificate lives one day (renewed 8 h before expiry) so
      renewals happen within the demo, instead of 30 days;
    * the leader lease lasts an emulated hour, else at thousands of times real
      speed the daemon would renew it every few milliseconds;
    * a lag profile slower than the default 10 min propagation delay (the
      stuck replica) gets a propagation delay above its worst lag, with the
      renewal moved earlier and the missing grace longer to match: the delay
      must bound the lag.
    """
    policy = TimingPolicy(
        cert_lifetime=timedelta(days=1),
        cert_renew_before=timedelta(hours=8),
        lease_ttl=timedelta(hours=1),
    )
    worst = timedelta(seconds=max_lag)
    if worst >= policy.propagation_delay:
        propagation = timedelta(minutes=math.ceil(worst.total_seconds() / 60) + 5)
        renew = max(
            policy.secret_renew_before,
            propagation + policy.ready_safety_margin + policy.tick + timedelta(minutes=30),
        )
        policy = replace(
            policy,
            propagation_delay=propagation,
            secret_renew_before=renew,
            intent_timeout=propagation + timedelta(minutes=5),
            # A listing that lacks a secret proves nothing while a replica may lag
            # this far: the grace must outlast the lag (and the intent timeout).
            missing_grace=max(policy.missing_grace, propagation + timedelta(minutes=10)),
        )
    return policy


def _clean_env(**extra: str) -> dict[str, str]:
    """The demo's environment without Vault or product settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZSIDECAR_", "VAULT_", "BAO_", "REQUESTS_CA_BUNDLE", "CURL_CA"))
    }
    env.update(extra)
    return env


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def daemon_config(sections: dict[str, dict[str, object]]) -> str:
    """The daemon's TOML (no secrets in it: the Vault token travels in the environment)."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


class Demo:
    """One run of the demo; :meth:`run` always stops what it started."""

    def __init__(self, options: DemoOptions, out: Out) -> None:
        self.options = options
        self.out = out
        self.workdir = Path(tempfile.mkdtemp(prefix="azsidecar-demo-"))
        # The logs name tokens' accessors, ports and paths: for the user only (0700 / 0600).
        self.log_dir = private_dir(options.logs or self.workdir / "logs")
        self.children = Children(self.log_dir)
        self.tally = RunTally()
        self.result = DemoResult()
        self.records: dict[str, IntegrationRecord] = {}
        self.tenants: dict[str, tuple[str, str]] = {}
        self.management_app = ""
        self.daemon_login = "the sidecar token"
        self.resolver_ca: str | None = None  # the resolver's CA when it serves TLS (the soak)

    # -- the whole run ---------------------------------------------------------------

    def run(self) -> DemoResult:
        started = time.monotonic()
        try:
            self._run()
        finally:
            self.children.stop_all()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.result.real_seconds = time.monotonic() - started
        return self.result

    def _run(self) -> None:
        o = self.options
        self.out(
            f"azsidecar demo: {o.hours:g} emulated hours at {o.speed:g}x"
            f" (about {o.hours * 3600 / o.speed:.0f} s), lag profile {o.lag_profile},"
            f" a plan and an apply run every {format_duration(o.runs_every)}"
        )
        bao = self._start_openbao()
        endpoints, admin = self._start_emulator()
        lag = admin.replication()["profile"]
        policy = demo_timing(float(lag["max_lag"]))
        self.out(
            f"  emulator {endpoints.base_url}: {o.replicas} directory replicas; a write reaches"
            f" the others within {lag['fast_max']:g} s ({lag['fast_fraction']:.0%}),"
            f" at worst {lag['max_lag']:g} s"
        )
        self.out(
            "  timing: secrets live "
            f"{format_duration(policy.secret_lifetime)}, renewed "
            f"{format_duration(policy.secret_renew_before)} before expiry, ready"
            f" {format_duration(policy.propagation_delay)} after creation; management"
            f" certificate {format_duration(policy.cert_lifetime)} (shortened for the demo),"
            f" renewed {format_duration(policy.cert_renew_before)} before expiry"
        )
        root = connect(bao.addr, token=bao.root_token)
        setup = vault_setup.configure(root, bao.addr)
        self.out(
            f"  OpenBao {bao.addr}: KV v2 at {vault_setup.KV_MOUNT}/, JWT auth at jwt/,"
            " policies azsidecar-{sidecar,plugin,runner,operator}"
        )
        config = self._product_config(bao.addr, endpoints, policy)
        sidecar_store = Store(
            VaultKV(
                connect(bao.addr, token=setup.sidecar_token.reveal()),
                vault_setup.KV_MOUNT,
                vault_setup.PREFIX,
            )
        )
        setup_runtime = Runtime(config=config, clock=AdminClock(admin), store=sidecar_store)
        self._management(admin, setup_runtime)
        self._integrations(admin, setup_runtime, endpoints)
        operator_store = Store(
            VaultKV(
                connect(bao.addr, token=setup.operator_token.reveal()),
                vault_setup.KV_MOUNT,
                vault_setup.PREFIX,
            )
        )
        by_phase = {t.phase: t.integration for t in INTEGRATIONS}
        attach(operator_store, STACK, read=by_phase["plan"], write=by_phase["apply"])
        self.out(
            f"  stack {STACK}: plan runs use {by_phase['plan']},"
            f" apply runs use {by_phase['apply']} (operator token)"
        )
        wait = max(policy.propagation_delay, timedelta(seconds=float(lag["max_lag"]) + 60))
        admin.advance(wait.total_seconds())
        self.out(
            f"  waited {format_duration(wait)} (emulated) for consent and the first secrets"
            " to replicate"
        )

        clock = admin.accelerate(o.speed)
        clock_env = self._clock_env(clock)
        commands = vault_setup.install_plugin(
            root, setup, str(self.workdir / "plugins"), clock_env, policy=policy
        )
        shown = [
            c.replace(c[c.index("-sha256=") + 20 : c.index(" -command")], "...")
            if "-sha256=" in c
            else c
            for c in commands
        ]
        self.out(f"  plugin: azsidecar plugin install, {shown[0]}, {shown[1]}")
        daemon, metrics_url, resolver_addr = self._start_daemon(config, clock, setup)
        self.out(
            f"  daemon (pid {daemon.pid}) with {self.daemon_login}; resolver on {resolver_addr},"
            f" metrics on {metrics_url}"
        )
        runner = Runner(
            vault_addr=bao.addr,
            jwt_key=setup.jwt_key,
            jwt_role=vault_setup.JWT_ROLE,
            resolver_addr=resolver_addr,
            resolver_ca=self.resolver_ca,
            login_url=endpoints.base_url,
            arm_url=endpoints.arm_url,
            ca_path=endpoints.ca_path,
        )
        try:
            counts = self._loop(clock, runner, daemon, metrics_url)
        finally:
            runner.close()
        self._doctor(bao, metrics_url)
        self.result.faults_served = admin.faults_served()
        self.out(
            f"  the emulator's gateways failed {self.result.faults_served} Graph requests"
            f" ({o.gateway_fault_rate:.0%}; every keep-alive connection pinned to one replica)"
        )
        self._finish(admin, counts, daemon)

    # -- set-up steps ------------------------------------------------------------------

    def _start_openbao(self) -> OpenBaoDevServer:
        plugin_dir = self.workdir / "plugins"
        plugin_dir.mkdir()
        bao_dir = private_dir(self.log_dir / "openbao")
        server = OpenBaoDevServer(plugin_dir=str(plugin_dir), workdir=str(bao_dir))
        self.children.on_stop(server.stop)
        return server.start()

    def _start_emulator(self) -> tuple[EmulatorEndpoints, EmulatorAdmin]:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        stdout_path = self.workdir / "emulator.json"
        with open(stdout_path, "wb") as stdout:
            child = self.children.start(
                "emulator",
                azsidecar_argv(
                    "emulator",
                    "serve",
                    "--clock-mode",
                    "manual",
                    "--clock-start",
                    start.isoformat(),
                    "--lag-profile",
                    self.options.lag_profile,
                    "--replicas",
                    str(self.options.replicas),
                    "--seed",
                    str(self.options.seed),
                    "--gateway-fault-rate",
                    str(self.options.gateway_fault_rate),
                    "--ca-dir",
                    str(self.workdir / "emulator-ca"),
                ),
                _clean_env(),
                stdout=stdout,
            )
        endpoints = EmulatorEndpoints.wait_for(stdout_path, child)
        return endpoints, EmulatorAdmin(endpoints)

    def _product_config(
        self, vault_addr: str, endpoints: EmulatorEndpoints, policy: TimingPolicy
    ) -> Config:
        return Config(
            vault=VaultConfig(addr=vault_addr, kv_mount=vault_setup.KV_MOUNT),
            azure=AzureConfig(
                login_url=endpoints.base_url,
                graph_url=endpoints.graph_url,
                arm_url=endpoints.arm_url,
                ca_bundle=endpoints.ca_path,
                consent_redirect_uri=REDIRECT_URI,
                # The shipped retry settings: they ride out minutes of replica lag.
            ),
            timing=policy,
        )

    def _management(self, admin: EmulatorAdmin, rt: Runtime) -> None:
        """The platform administrator's one-time part, then ``management init``."""
        platform, _ = admin.seed_tenant("CI platform")
        now = rt.clock.now()
        pair = generate_key_pair("azsidecar-management", now, rt.config.timing.cert_lifetime)
        seeded = admin.seed_management_app(platform, pair.cert_pem)
        identity = ManagementIdentity(platform, str(seeded["objectId"]), str(seeded["appId"]))
        save_identity(rt.store, identity)
        store_management_certificate(
            rt.store, pair, key_id=str(seeded.get("keyId") or ""), uploaded_at=now
        )
        self.management_app = identity.client_id
        self.out(
            f"  management application {identity.client_id} (Application.ReadWrite.OwnedBy,"
            f" owns itself); certificate {pair.thumbprint[:12]}... made here, key stored in"
            " Vault only"
        )

    def _integrations(
        self, admin: EmulatorAdmin, rt: Runtime, endpoints: EmulatorEndpoints
    ) -> None:
        service = Integrations(
            rt.store,
            rt.graph(),
            rt.clock,
            rt.config.timing,
            redirect_uri=REDIRECT_URI,
        )
        for plan in INTEGRATIONS:
            tenant_id, subscription_id = admin.seed_tenant(plan.tenant_name)
            record = self._create(service, admin, plan.integration, tenant_id, subscription_id)
            self.records[plan.integration] = record
            self.tenants[plan.integration] = (tenant_id, subscription_id)
            url = consent_url(rt.config.azure.login_url, record, REDIRECT_URI)
            self._consent(admin, url)
            admin.grant_azure_role(tenant_id, subscription_id, record.client_id, plan.azure_role)
            self.out(
                f"  integration {plan.integration}: application {record.display_name} for"
                f" tenant {plan.tenant_name} ({tenant_id[:8]}), first secret in Vault; consent"
                f" granted, role {plan.azure_role} on subscription {subscription_id[:8]}"
            )

    def _create(
        self,
        service: Integrations,
        admin: EmulatorAdmin,
        name: str,
        tenant_id: str,
        subscription_id: str,
    ) -> IntegrationRecord:
        """``integration create``, run again (it resumes) if Graph gave up half-way."""
        for attempt in range(3):
            try:
                return service.create(name, tenant_id, subscription_id)
            except GraphError as exc:
                if attempt == 2:
                    raise
                self.out(f"  ({name}: {exc.status} from Graph; running `create` again resumes it)")
                admin.advance(120)
        raise AssertionError("unreachable")

    def _consent(self, admin: EmulatorAdmin, url: str) -> None:
        """The tenant administrator opens the consent URL; a replica that has not seen the
        new application yet refuses (AADSTS700016), so they try again a little later."""
        for _ in range(60):
            response = admin.session.get(url, allow_redirects=False, timeout=30)
            location = response.headers.get("Location", "")
            if response.status_code == 302 and "admin_consent=True" in location:
                return
            admin.advance(30)
        raise DemoError(f"admin consent kept failing: {response.status_code} {response.text[:200]}")

    def _clock_env(self, clock: dict[str, Any]) -> dict[str, str]:
        origin = datetime.fromtimestamp(float(clock["origin_virtual"]), tz=UTC)
        return {
            "AZSIDECAR_CLOCK_FACTOR": repr(float(clock["factor"])),
            "AZSIDECAR_CLOCK_ORIGIN": origin.isoformat(),
            "AZSIDECAR_CLOCK_ORIGIN_REAL": repr(float(clock["origin_real"])),
        }

    def _start_daemon(
        self, config: Config, clock: dict[str, Any], setup: vault_setup.VaultSetup
    ) -> tuple[Child, str, str]:
        metrics_port, resolver_port = free_port(), free_port()
        text = daemon_config(
            self._daemon_sections(config, clock, setup, metrics_port, resolver_port)
        )
        path = self.workdir / "daemon.toml"
        path.write_text(text)
        child = self.children.start(
            "daemon",
            azsidecar_argv("daemon", "--config", str(path)),
            self._daemon_env(setup),
        )
        metrics_url = f"http://127.0.0.1:{metrics_port}"

        def first_tick() -> bool:
            try:
                health = requests.get(f"{metrics_url}/healthz", timeout=2).json()
            except (requests.RequestException, ValueError):
                return False
            return bool(health.get("leader")) and health.get("last_tick") is not None

        wait_until(first_tick, 60, "the daemon's first tick", child)
        return child, metrics_url, f"127.0.0.1:{resolver_port}"

    def _daemon_env(self, setup: vault_setup.VaultSetup) -> dict[str, str]:
        return _clean_env(VAULT_TOKEN=setup.sidecar_token.reveal())

    def _daemon_sections(
        self,
        config: Config,
        clock: dict[str, Any],
        setup: vault_setup.VaultSetup,
        metrics_port: int,
        resolver_port: int,
    ) -> dict[str, dict[str, object]]:
        """The daemon's configuration (the soak changes its login and the resolver's)."""
        policy = config.timing
        azure = config.azure
        return {
            "vault": {
                "addr": setup.addr,
                "kv_mount": vault_setup.KV_MOUNT,
                "prefix": vault_setup.PREFIX,
            },
            "azure": {
                "login_url": azure.login_url,
                "graph_url": azure.graph_url,
                "arm_url": azure.arm_url,
                "ca_bundle": azure.ca_bundle or "",
                "consent_redirect_uri": azure.consent_redirect_uri,
            },
            "timing": {
                "propagation_delay": policy.propagation_delay,
                "secret_renew_before": policy.secret_renew_before,
                "intent_timeout": policy.intent_timeout,
                "missing_grace": policy.missing_grace,
                "cert_lifetime": policy.cert_lifetime,
                "cert_renew_before": policy.cert_renew_before,
                "lease_ttl": policy.lease_ttl,
            },
            "clock": {
                "factor": float(clock["factor"]),
                "origin": datetime.fromtimestamp(
                    float(clock["origin_virtual"]), tz=UTC
                ).isoformat(),
                "origin_real": float(clock["origin_real"]),
            },
            "daemon": {
                "metrics_addr": f"127.0.0.1:{metrics_port}",
                "resolver_addr": f"127.0.0.1:{resolver_port}",
                "resolver_mount": vault_setup.PLUGIN_MOUNT,
                "log_format": "json",
            },
        }

    # -- the accelerated part ----------------------------------------------------------

    def _counts(self, metrics_url: str) -> DaemonCounts:
        text = requests.get(f"{metrics_url}/metrics", timeout=10).text
        return parse_metrics(text)

    def _loop(
        self, clock: dict[str, Any], runner: Runner, daemon: Child, metrics_url: str
    ) -> DaemonCounts:
        o = self.options
        factor = float(clock["factor"])
        origin_virtual = float(clock["origin_virtual"])
        origin_real = float(clock["origin_real"])

        def emulated() -> datetime:
            return datetime.fromtimestamp(
                origin_virtual + (time.time() - origin_real) * factor, tz=UTC
            )

        start = datetime.fromtimestamp(origin_virtual, tz=UTC)
        end = start + timedelta(hours=o.hours)
        next_run = start
        next_progress = start + o.progress_every
        real_start = time.monotonic()
        self.out("")
        self.out(
            f"Running from {when(start)} (emulated) to {when(end)}: each slot a plan and an"
            " apply run, each through the plugin and the resolver"
        )
        self.out(PROGRESS_HEADER)
        counts = self._counts(metrics_url)
        pending: list[Future[RunResult]] = []
        while True:
            now = emulated()
            if now >= end:
                break
            if not daemon.alive():
                raise DemoError(f"the daemon exited ({daemon.process.returncode}): {daemon.tail()}")
            while next_run <= now:
                pending += runner.submit_slot(STACK, next_run, self.tally)
                next_run += o.runs_every
            pending = [job for job in pending if not job.done()]
            if now >= next_progress:
                counts = self._counts(metrics_url)
                hour = (now - start).total_seconds() / 3600
                real = time.monotonic() - real_start
                self.out(progress_line(now, hour, real, counts, self.tally))
                while next_progress <= now:
                    next_progress += o.progress_every
            pause = (min(next_run, next_progress, end) - emulated()).total_seconds() / factor
            if pause > 0:
                time.sleep(min(pause, 0.5))
        wait(pending)
        counts = self._counts(metrics_url)
        real = time.monotonic() - real_start
        self.out(progress_line(emulated(), o.hours, real, counts, self.tally))
        return counts

    def _doctor(self, bao: OpenBaoDevServer, metrics_url: str) -> None:
        """``azsidecar doctor`` on the daemon's configuration, as an operator with admin rights."""
        self.out("")
        self.out("azsidecar doctor --config daemon.toml (with an admin token):")
        result = subprocess.run(
            azsidecar_argv(
                "doctor",
                "--config",
                str(self.workdir / "daemon.toml"),
                "--daemon-url",
                metrics_url,
            ),
            env=_clean_env(VAULT_TOKEN=bao.root_token),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for line in result.stdout.splitlines()[1:]:
            self.out(f"  {line}")
        self.result.doctor_ok = result.returncode == 0
        self.result.no_orphans = "no orphaned applications" in result.stdout
        if result.returncode != 0:
            self.out(f"  doctor exited {result.returncode}: {result.stderr[-400:]}")

    def _finish(self, admin: EmulatorAdmin, counts: DaemonCounts, daemon: Child) -> None:
        code = self.children.stop(daemon)
        if code not in (0, None):
            self.out(f"  the daemon exited with {code}: {daemon.tail()}")
        rows = []
        for plan in INTEGRATIONS:
            record = self.records[plan.integration]
            app = admin.application(record.client_id)
            ours = [
                p
                for p in app.get("passwordCredentials", [])
                if str(p.get("displayName", "")).startswith("azsidecar:")
            ]
            results = self.tally.by(integration=plan.integration)
            rows.append(
                IntegrationRow(
                    name=plan.integration,
                    tenant=self.tenants[plan.integration][0],
                    phase=plan.phase,
                    rotations=counts.rotations.get(plan.integration, 0),
                    held_in_azure=len(ours),
                    runs=len(results),
                    failed=sum(1 for r in results if not r.ok),
                )
            )
        management = admin.application(self.management_app)
        keys = len(management.get("keyCredentials", []))
        failed = self.tally.failed
        self.result.runs = self.tally.runs
        self.result.failed = len(failed)
        self.result.auth_failed = sum(1 for r in failed if r.auth_failure)
        self.result.rotations = counts.total_rotations
        self.result.certificate_renewals = counts.certificate_renewals
        self.out("")
        lines = summary(rows, counts, self.tally, keys, self.options.hours)
        errors = daemon_errors(daemon.log_path)
        if errors:
            lines += [
                "",
                "Daemon errors, each retried at the next tick (at thousands of times real speed a",
                "10-minute token or proof lifetime is a fraction of a real second, so a busy",
                "machine can make one arrive late):",
            ]
            lines += [f"  {n} x {message}" for message, n in errors.most_common(5)]
        for line in lines:
            self.out(line)
        self.result.lines = lines


def daemon_errors(log_path: Path) -> Counter[str]:
    """The daemon's error lines (JSON logs), for the summary."""
    found: Counter[str] = Counter()
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            found[str(entry.get("message", ""))[:200]] += 1
    return found


def run_demo(options: DemoOptions, out: Out) -> DemoResult:
    """Run the demo; returns its figures. Every process it started is stopped on return."""
    return Demo(options, out).run()
