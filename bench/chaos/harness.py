"""One chaos run: the real processes, a seeded fault schedule applied at emulated times.

OpenBao runs as a 3-node raft cluster behind the test load balancer
(:mod:`tests.raftlb`), and everything of the product reaches it through a TCP
proxy (:mod:`tests.tcpproxy`) that a fault cuts. The emulator, ``daemons``
daemon processes (each with its resolver), and the plugin (on whichever node
is active) share the emulator's accelerated clock, set up as ``azsidecar demo``
does (:class:`sidecar.demo.orchestration.Demo` provides the set-up steps).
Runners read through the plugin and the resolvers and sign in continuously;
a sampler thread checks the invariants (:mod:`bench.chaos.invariants`) against
Vault (through the load balancer, so a cut proxy does not blind it) and the
emulator's admin API; after the schedule every fault is lifted and the
quiescence invariants are checked once Azure and Vault have had a tick.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import random
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bench.chaos import invariants
from bench.chaos.schedule import RATES, Fault, schedule
from sidecar.answers import ResolvedCredential
from sidecar.config import Config
from sidecar.demo import vault_setup
from sidecar.demo.emulator_admin import AdminClock, EmulatorAdmin, EmulatorEndpoints
from sidecar.demo.orchestration import (
    INTEGRATIONS,
    REDIRECT_URI,
    STACK,
    Demo,
    DemoOptions,
    Out,
    _clean_env,
    daemon_config,
)
from sidecar.demo.processes import Child, azsidecar_argv, wait_until
from sidecar.demo.runs import PATHS, Path_, Runner, RunResult, RunTally
from sidecar.devstack.openbao import free_port
from sidecar.devstack.raft import OpenBaoRaftCluster
from sidecar.errors import SidecarError
from sidecar.integrations import Integrations, consent_url
from sidecar.model import Phase
from sidecar.runtime import Runtime
from sidecar.stacks import attach, detach
from sidecar.store import Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV, connect
from tests.raftlb import ActiveNodeBalancer
from tests.tcpproxy import TcpProxy

_AADSTS = re.compile(r"AADSTS\d+")
CRASH_STEPS = ("after_intent", "after_add_password", "after_kv_write", "after_store")
#: The worst replication lag any fault brings (the stuck replica): the delay must bound it.
WORST_LAG = timedelta(hours=1)


@dataclass(frozen=True)
class ChaosOptions:
    seed: int = 1
    days: float = 7.0
    speed: float = 1440.0  # emulated seconds per real second: a day a minute
    daemons: int = 2
    runs_every: timedelta = timedelta(minutes=20)
    sample_every: float = 0.25  # real seconds between invariant samples
    rate_scale: float = 1.0  # every fault rate times this (the suite's short runs: more)
    logs: Path | None = None


@dataclass
class ChaosResult:
    seed: int
    days: float
    faults_planned: dict[str, int] = field(default_factory=dict)
    faults_injected: Counter[str] = field(default_factory=Counter)
    operator_actions: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    runs_failed: int = 0
    failures_by_stage: Counter[str] = field(default_factory=Counter)
    failure_reasons: list[tuple[str, int]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)  # every sign-in refused
    handed_checked: int = 0
    samples: int = 0
    unobservable_samples: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)
    graph_writes: int = 0
    converged_after_hours: float | None = None
    real_seconds: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations and not self.error

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "days": self.days,
            "ok": self.ok,
            "faults_planned": self.faults_planned,
            "faults_injected": dict(sorted(self.faults_injected.items())),
            "operator_actions": dict(sorted(self.operator_actions.items())),
            "runs": self.runs,
            "runs_failed": self.runs_failed,
            "failures_by_stage": dict(sorted(self.failures_by_stage.items())),
            "failure_reasons": self.failure_reasons,
            "refusals": self.refusals,
            "handed_checked": self.handed_checked,
            "samples": self.samples,
            "unobservable_samples": self.unobservable_samples,
            "invariant_checks": sum(self.checks.values()),
            "checks": dict(sorted(self.checks.items())),
            "violations": self.violations,
            "excused_samples": len(self.excused),
            "excused_examples": self.excused[:5],
            "graph_writes_by_daemons": self.graph_writes,
            "converged_after_hours": self.converged_after_hours,
            "real_seconds": round(self.real_seconds, 1),
            "error": self.error,
        }


def setup_session() -> requests.Session:
    """The set-up's HTTP session to Vault: a connection the load balancer closes (no
    active node while an election runs) is tried again, for up to about ten seconds.

    Only the set-up uses it, where no fault is injected yet: nothing else writes, so a
    retried write whose first answer was lost either lands or fails loudly (a
    check-and-set write finds its version taken). The product's own clients keep
    their behaviour, which is what the faults test.
    """
    session = requests.Session()
    retry = Retry(
        total=8,
        connect=8,
        read=8,
        other=8,
        status=0,
        allowed_methods=None,  # every method: the set-up is alone with Vault
        backoff_factor=0.25,
        backoff_max=2.0,
        raise_on_status=False,
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def settle(
    cluster: OpenBaoRaftCluster,
    balancer: ActiveNodeBalancer,
    hold: float = 2.0,
    timeout: float = 60.0,
) -> int:
    """Wait until one node has stayed active for ``hold`` seconds and the balancer sends
    new connections to it; its index. A cluster just formed may elect again while the
    joined nodes become voters, and the balancer refuses connections meanwhile."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        leader = cluster.leader()
        if leader is None or leader != last or balancer.active(refresh=True) != leader:
            last, since = leader, time.monotonic()
        elif time.monotonic() - since >= hold:
            return leader
        time.sleep(0.1)
    raise SidecarError(f"the raft cluster did not keep one leader for {hold:g} s in {timeout:g} s")


def refusal_causes(integration: str, status: int, standing: list[Applied]) -> list[Applied]:
    """The injected faults among ``standing`` (those applied while the run was in flight)
    that explain Azure refusing a handed credential of ``integration`` with ``status``.

    Only two do: the operator deleting that integration (its application is gone, or
    going replica by replica), and an error storm answering the sign-in itself (a 5xx
    or 429, which no credential can cause). Replication lag does not: every lag profile
    the schedule switches to stays within the configured propagation delay
    (:data:`WORST_LAG`), and a kill, a Vault cut or a Graph storm must not make Azure
    refuse a credential the product handed out.
    """
    storm = status >= 500 or status == 429
    return [
        a
        for a in standing
        if (a.fault.kind == "op_delete_integration" and a.target == integration)
        or (storm and a.fault.kind in ("graph_5xx", "graph_429", "graph_drop"))
    ]


def expired_in_flight(asked: datetime, signed: datetime, expires: datetime) -> str:
    """Why a secret handed inside the ready rule had expired by its sign-in, or "".

    The rule stops handing a secret out ``ready_safety_margin`` before it expires,
    room for a run's own minutes; at 1440 times real speed a run held up a real
    second or two on a loaded machine spans more emulated time than that.
    """
    if signed < expires:
        return ""
    return (
        f"the run took {signed - asked} (emulated) from asking to signing in, past the"
        f" secret's expiry at {expires:%F %T}: the accelerated clock, not Azure"
    )


def eager_sections(
    sections: dict[str, dict[str, object]], policy: TimingPolicy
) -> dict[str, dict[str, object]]:
    """A daemon's configuration made to renew every secret on its first tick.

    The operator's lever is the timing: a secret lifetime twice the usual and a
    renewal window as long as the usual lifetime puts every secret the others
    made inside the window (the configuration still validates: the window is half
    the lifetime). Only a daemon armed for a kill mid-rotation runs with it; it
    dies at the armed step of that renewal and comes back with the usual timing.
    """
    timing = dict(sections["timing"])
    timing["secret_lifetime"] = 2 * policy.secret_lifetime
    timing["secret_renew_before"] = policy.secret_lifetime
    return {**sections, "timing": timing}


def chaos_timing() -> TimingPolicy:
    """The demo's timing, with a delay bounding the stuck replica and a renewal budget
    that outlasts the longest single fault (a takeover is a lease, a restart an hour or so)."""
    propagation = WORST_LAG + timedelta(minutes=5)
    return replace(
        TimingPolicy(
            cert_lifetime=timedelta(days=1),
            cert_renew_before=timedelta(hours=8),
            lease_ttl=timedelta(hours=1),
        ),
        propagation_delay=propagation,
        secret_renew_before=timedelta(hours=6),
        intent_timeout=propagation + timedelta(minutes=5),
        missing_grace=propagation + timedelta(minutes=10),
    )


class RealTimeClock:
    """The product's Clock over the running emulator clock: now() computed, sleep() real."""

    def __init__(self, clock: dict[str, Any]) -> None:
        self.factor = float(clock["factor"])
        self.origin_virtual = float(clock["origin_virtual"])
        self.origin_real = float(clock["origin_real"])

    def now(self) -> datetime:
        at = self.origin_virtual + (time.time() - self.origin_real) * self.factor
        return datetime.fromtimestamp(at, tz=UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)


class CheckedRunner(Runner):
    """A runner whose every handed credential goes past the invariant checker first."""

    def __init__(self, checker: invariants.Checker, clock: RealTimeClock, **kw: Any) -> None:
        super().__init__(**kw)
        self.checker = checker
        self.clock = clock
        self.handed = 0
        self._asked = threading.local()
        self.on_refusal: Callable[[RunResult, datetime, datetime, ResolvedCredential], None]
        self.on_refusal = lambda *_: None

    def _fetch(
        self, client: hvac.Client, stack: str, phase: Phase, path: Path_
    ) -> ResolvedCredential:
        self._asked.at = self.clock.now()  # per worker thread: when this run asked
        return super()._fetch(client, stack, phase, path)

    def submit_stack(
        self, stack: str, phases: list[Phase], at: datetime, tally: RunTally
    ) -> list[Future[RunResult]]:
        """The stack's runs of one slot: each phase it has, through the plugin and the resolver."""
        jobs = []
        for phase in phases:
            for path in PATHS:
                job = self._pool.submit(self.run, stack, phase, path, at)
                job.add_done_callback(lambda done: tally.add([done.result()]))
                jobs.append(job)
        return jobs

    def _use(
        self, credential: ResolvedCredential, stack: str, phase: Phase, path: Path_, at: datetime
    ) -> RunResult:
        asked = getattr(self._asked, "at", None) or self.clock.now()
        self.checker.handed(
            asked, self.clock.now(), credential.integration, credential.client_id, credential.key_id
        )
        self.handed += 1
        result = super()._use(credential, stack, phase, path, at)
        if result.stage == "sign-in":
            self.on_refusal(result, asked, self.clock.now(), credential)
        return result


@dataclass
class Applied:
    """A fault or operator action as the harness applied it: emulated start and end."""

    start: datetime
    fault: Fault
    end: datetime | None = None  # None: still standing
    target: str = ""  # an operator action's integration or stack

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start <= end and (self.end is None or self.end >= start)

    def describe(self, origin: datetime) -> str:
        hours = (self.start - origin).total_seconds() / 3600
        until = "" if self.end is None else f"..{(self.end - origin).total_seconds() / 3600:.2f}"
        extra = " ".join(f"{k}={v}" for k, v in self.fault.params if k != "pick")
        target = f" {self.target}" if self.target else ""
        return f"{hours:.2f}{until} h {self.fault.kind}{target} {extra}".rstrip()


@dataclass
class DaemonSlot:
    index: int
    config_path: Path
    eager_config_path: Path  # the same daemon renewing every secret at once (mid-rotation kills)
    metrics_port: int
    resolver_port: int
    child: Child | None = None
    incarnation: int = 0
    down_until: datetime | None = None  # killed by a fault; restart then
    armed: str = ""  # crash point armed in the running process
    armed_until: datetime | None = None  # restarted plain then if no rotation came
    logs: list[Path] = field(default_factory=list)

    def leader(self) -> bool:
        if self.child is None or not self.child.alive():
            return False
        try:
            health = requests.get(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        return health.get("leader") is True


class Chaos(Demo):
    """One seeded run; :meth:`run_chaos` always stops what it started."""

    def __init__(self, options: ChaosOptions, out: Out) -> None:
        super().__init__(
            DemoOptions(
                hours=options.days * 24,
                speed=options.speed,
                runs_every=options.runs_every,
                seed=options.seed,
                gateway_fault_rate=0.0,
                logs=options.logs,
            ),
            out,
        )
        self.chaos = options
        self.faults = schedule(
            options.seed,
            options.days,
            daemons=options.daemons,
            rates={k: v * options.rate_scale for k, v in RATES.items()},
        )
        self.figures = ChaosResult(seed=options.seed, days=options.days)
        self.rng = random.Random(f"azsidecar-chaos-targets:{options.seed}")
        self.slots: list[DaemonSlot] = []
        self.cluster: OpenBaoRaftCluster | None = None
        self.proxy: TcpProxy | None = None
        self.balancer: ActiveNodeBalancer | None = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.blocked: list[tuple[datetime, datetime | None, str]] = []  # rotation-blocking faults
        self.cut = 0  # overlapping Vault cuts
        self.storms: dict[int, dict[str, Any]] = {}  # active Graph fault rules by fault id
        self.lags: dict[int, dict[str, Any] | str] = {}
        self.expected_integrations: set[str] = {p.integration for p in INTEGRATIONS}
        self.expected_stacks: dict[str, tuple[str, str]] = {}
        self.operator_queue: queue.Queue[Fault | None] = queue.Queue()
        self.ops_made: list[str] = []
        self.extra_stacks: list[str] = []
        self.foreign_apps: set[str] = set()
        self.fault_state: dict[int, int] = {}
        self.applied: dict[int, Applied] = {}  # by id(fault), in the order applied
        self.schedule_start = datetime.now(UTC)
        self.admin: EmulatorAdmin
        self.clock: RealTimeClock

    # -- the whole run ------------------------------------------------------------------

    def run_chaos(self) -> ChaosResult:
        started = time.monotonic()
        self.out(
            f"chaos seed {self.chaos.seed}: {len(self.faults)} faults over"
            f" {self.chaos.days:g} emulated days at {self.chaos.speed:g}x"
        )
        try:
            self._chaos()
        except (SidecarError, OSError, requests.RequestException) as exc:
            self.figures.error = f"{type(exc).__name__}: {exc}"[:400]
        finally:
            self.stop.set()
            self.children.stop_all()
            for closer in (self.proxy, self.balancer):
                if closer is not None:
                    with contextlib.suppress(OSError):
                        closer.close()
            if self.cluster is not None:
                self.cluster.cleanup()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.figures.real_seconds = time.monotonic() - started
        return self.figures

    def _chaos(self) -> None:
        plugin_dir = self.workdir / "plugins"
        plugin_dir.mkdir()
        self.cluster = OpenBaoRaftCluster(
            3, workdir=str(self.workdir / "raft"), plugin_dir=str(plugin_dir)
        ).start()
        self.balancer = ActiveNodeBalancer([("127.0.0.1", n.api_port) for n in self.cluster.nodes])
        self.proxy = TcpProxy("127.0.0.1", self.balancer.port)
        vault_addr = self.proxy.addr
        endpoints, admin = self._start_emulator()
        self.admin = admin
        policy = chaos_timing()
        # The set-up runs before any fault, but on two shared cores a raft cluster with
        # performance_multiplier 1 may still hold an election or two; set-up goes once
        # the leader has held and rides out an election with every Vault call.
        settle(self.cluster, self.balancer)
        rides = setup_session()
        root = connect(self.balancer.addr, token=self.cluster.root_token, session=rides)
        setup = vault_setup.configure(root, vault_addr)
        config = self._product_config(vault_addr, endpoints, policy)

        def store(token: str, session: requests.Session | None = None) -> Store:
            client = connect(vault_addr, token=token, session=session)
            return Store(VaultKV(client, vault_setup.KV_MOUNT, vault_setup.PREFIX))

        sidecar_store, operator_store = (
            store(setup.sidecar_token.reveal()),
            store(setup.operator_token.reveal()),
        )
        setup_runtime = Runtime(
            config=config,
            clock=AdminClock(admin),
            store=store(setup.sidecar_token.reveal(), rides),
        )
        self._management(admin, setup_runtime)
        self._integrations(admin, setup_runtime, endpoints)
        self.foreign_apps.add(self.management_app)
        by_phase = {t.phase: t.integration for t in INTEGRATIONS}
        setup_operator = store(setup.operator_token.reveal(), rides)
        attach(setup_operator, STACK, read=by_phase["plan"], write=by_phase["apply"])
        self.expected_stacks[STACK] = (by_phase["plan"], by_phase["apply"])
        admin.advance(policy.propagation_delay.total_seconds() + 600)
        clock_info = admin.accelerate(self.chaos.speed)
        clock = RealTimeClock(clock_info)
        self.clock = clock
        vault_setup.install_plugin(
            root, setup, str(plugin_dir), self._clock_env(clock_info), policy=policy
        )
        for i in range(self.chaos.daemons):
            self._new_slot(i, config, clock_info, setup)
        for slot in self.slots:
            self._start(slot, setup)
        wait_until(lambda: any(s.leader() for s in self.slots), 60, "a leader")
        checker = invariants.Checker(
            invariants.VaultView(
                self.balancer.addr,
                self.cluster.root_token,
                vault_setup.KV_MOUNT,
                vault_setup.PREFIX,
            ),
            invariants.AzureView(endpoints.base_url + "/_emulator", endpoints.ca_path),
            invariants.ReadyRule(policy.propagation_delay, policy.ready_safety_margin),
        )
        runners = [
            CheckedRunner(
                checker,
                clock,
                vault_addr=vault_addr,
                jwt_key=setup.jwt_key,
                jwt_role=vault_setup.JWT_ROLE,
                resolver_addr=f"127.0.0.1:{slot.resolver_port}",
                login_url=endpoints.base_url,
                arm_url=endpoints.arm_url,
                ca_path=endpoints.ca_path,
            )
            for slot in self.slots
        ]
        for runner in runners:
            runner.on_refusal = functools.partial(self._refused, checker)
        ops = Operator(self, admin, config, clock, sidecar_store, operator_store, endpoints)
        threads = [
            threading.Thread(target=self._sampler, args=(checker, clock, policy), daemon=True),
            threading.Thread(target=ops.work, daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            self._loop_faults(clock, runners, admin, setup, policy)
        finally:
            for runner in runners:
                runner.close()
        self.stop.set()
        for t in threads:
            t.join(timeout=120)
        self._quiesce(clock, admin, setup, policy, checker)
        f = self.figures
        f.handed_checked = sum(r.handed for r in runners)
        results = self.tally.results
        f.runs = len(results)
        f.runs_failed = sum(1 for r in results if not r.ok)
        f.failures_by_stage = Counter(r.stage for r in results if not r.ok)
        f.failure_reasons = Counter(
            f"{r.stage}: {r.reason[:90]}" for r in results if not r.ok
        ).most_common(6)
        f.checks = checker.findings.checks
        f.violations = checker.findings.violations
        f.excused = checker.findings.excused
        f.unobservable_samples = checker.findings.unobservable
        f.faults_planned = {k: v for k, v in Counter(x.kind for x in self.faults).items()}

    # -- daemons ------------------------------------------------------------------------

    def _new_slot(
        self, i: int, config: Config, clock: dict[str, Any], setup: vault_setup.VaultSetup
    ) -> None:
        slot = DaemonSlot(
            i,
            self.workdir / f"daemon{i}.toml",
            self.workdir / f"daemon{i}-eager.toml",
            free_port(),
            free_port(),
        )
        sections = self._daemon_sections(
            config, clock, setup, slot.metrics_port, slot.resolver_port
        )
        slot.config_path.write_text(daemon_config(sections))
        slot.eager_config_path.write_text(daemon_config(eager_sections(sections, config.timing)))
        self.slots.append(slot)

    def _start(
        self,
        slot: DaemonSlot,
        setup: vault_setup.VaultSetup,
        crash_at: str = "",
        armed_until: datetime | None = None,
    ) -> None:
        slot.incarnation += 1
        extra = {"AZSIDECAR_TEST_CRASH_AT": crash_at} if crash_at else {}
        # Armed, it renews at once whatever it leads, so the crash point meets a rotation.
        config_path = slot.eager_config_path if crash_at else slot.config_path
        slot.child = self.children.start(
            f"daemon{slot.index}-{slot.incarnation}",
            azsidecar_argv("daemon", "--config", str(config_path)),
            _clean_env(VAULT_TOKEN=setup.sidecar_token.reveal(), **extra),
        )
        slot.armed = crash_at
        slot.armed_until = armed_until if crash_at else None
        slot.down_until = None
        slot.logs.append(slot.child.log_path)

    def _kill(self, slot: DaemonSlot) -> bool:
        child = slot.child
        if child is None or not child.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.process.wait(timeout=10)
        return True

    # -- the schedule ---------------------------------------------------------------------

    def _loop_faults(
        self,
        clock: RealTimeClock,
        runners: list[CheckedRunner],
        admin: EmulatorAdmin,
        setup: vault_setup.VaultSetup,
        policy: TimingPolicy,
    ) -> None:
        start = clock.now()
        self.schedule_start = start
        end = start + timedelta(days=self.chaos.days)
        pending = sorted(self.faults)
        endings: list[tuple[datetime, int, Fault]] = []
        next_run = start
        next_day = start + timedelta(days=1)
        pool: list[Future[RunResult]] = []
        while (now := clock.now()) < end:
            if now >= next_day:
                day = round((now - start).total_seconds() / 86400)
                self.out(
                    f"  day {day}: {sum(self.figures.faults_injected.values())} faults,"
                    f" {self.tally.runs} runs, {len(self.tally.failed)} failed while faults stood;"
                    f" daemons {self._daemons_state()}"
                )
                next_day += timedelta(days=1)
            while pending and start + pending[0].at <= now:
                fault = pending.pop(0)
                if self._start_fault(
                    fault, len(endings) + len(self.figures.faults_injected), now, setup
                ):
                    with self.lock:
                        self.applied[id(fault)] = Applied(now, fault)
                    endings.append((start + fault.end, id(fault), fault))
            for item in sorted(endings, key=lambda e: (e[0], e[1])):
                if item[0] <= now:
                    endings.remove(item)
                    self._end_fault(item[2], now, setup)
            self._supervise(now, setup)
            while next_run <= now:
                alive = [
                    r
                    for r, s in zip(runners, self.slots, strict=True)
                    if s.child and s.child.alive()
                ]
                runner = self.rng.choice(alive or runners)
                for stack, phases in self._run_stacks():
                    pool += runner.submit_stack(stack, phases, next_run, self.tally)
                next_run += self.chaos.runs_every
            pool = [job for job in pool if not job.done()]
            time.sleep(0.05)
        for _, _, fault in endings:
            self._end_fault(fault, clock.now(), setup)
        for job in pool:
            with contextlib.suppress(Exception):
                job.result(timeout=120)

    def _daemons_state(self) -> str:
        """Each daemon: down, leading or standing by, for the progress line."""
        states = []
        for slot in self.slots:
            if slot.child is None or not slot.child.alive():
                states.append(f"{slot.index}:down")
            else:
                armed = f" armed {slot.armed}" if slot.armed else ""
                states.append(f"{slot.index}:{'leader' if slot.leader() else 'standby'}{armed}")
        return ", ".join(states)

    def _run_stacks(self) -> list[tuple[str, list[Phase]]]:
        """Every attached stack with the phases it has an integration for."""
        with self.lock:
            stacks = dict(self.expected_stacks)
        return [
            (stack, [p for p, name in ((Phase.PLAN, read), (Phase.APPLY, write)) if name])
            for stack, (read, write) in sorted(stacks.items())
        ]

    def _supervise(self, now: datetime, setup: vault_setup.VaultSetup) -> None:
        """Restart daemons whose downtime ended, and those that died; an armed daemon
        that died of something else than its crash point (it exits at start-up when
        Vault is unreachable) comes back armed until its time is up."""
        for slot in self.slots:
            child = slot.child
            step = slot.armed
            expired = slot.armed_until is not None and now >= slot.armed_until
            if slot.down_until is not None:
                if now >= slot.down_until:
                    self._start(slot, setup)
            elif child is not None and not child.alive():
                crashed = child.process.returncode == -signal.SIGKILL
                if step and crashed:
                    self.figures.faults_injected[f"crashed_{step}"] += 1
                elif step and expired:
                    self.figures.faults_injected[f"armed_not_reached_{step}"] += 1
                rearm = step if step and not crashed and not expired else ""
                self._start(slot, setup, crash_at=rearm, armed_until=slot.armed_until)
            elif step and expired:
                # No rotation came while armed: restart it plain.
                self.figures.faults_injected[f"armed_not_reached_{step}"] += 1
                self._kill(slot)
                self._start(slot, setup)

    def _start_fault(
        self, fault: Fault, key: int, now: datetime, setup: vault_setup.VaultSetup
    ) -> bool:
        """Start ``fault``; False if it could not apply now (counted as skipped)."""
        kind = fault.kind
        f = self.figures
        if kind.startswith("op_"):
            self.operator_queue.put(fault)
            return False
        if kind == "daemon_kill":
            slot = self.slots[int(fault.param("daemon")) % len(self.slots)]
            if slot.down_until is not None or not self._kill(slot):
                f.faults_injected["skipped_" + kind] += 1
                return False
            if slot.armed:  # killed before a rotation came; restarted plain
                f.faults_injected[f"armed_not_reached_{slot.armed}"] += 1
            slot.down_until = now + fault.duration
            self._block_if_all_down(now)
        elif kind == "daemon_kill_mid_rotation":
            leaders = [s for s in self.slots if s.leader()]
            others = [s for s in self.slots if s not in leaders and s.down_until is None]
            if len(leaders) != 1 or not others:
                f.faults_injected["skipped_" + kind] += 1
                return False
            step = self.rng.choice(CRASH_STEPS)
            until = now + self._armed_for(fault, chaos_timing())
            for other in others:  # the next leader dies at `step` of its first rotation
                self._kill(other)
                self._start(other, setup, crash_at=step, armed_until=until)
            self._kill(leaders[0])
            leaders[0].down_until = now + fault.duration
        elif kind == "raft_leader_kill":
            cluster = self.cluster
            assert cluster is not None
            if any(not n.running for n in cluster.nodes):
                f.faults_injected["skipped_" + kind] += 1
                return False
            leader = cluster.leader()
            if leader is None:
                f.faults_injected["skipped_" + kind] += 1
                return False
            cluster.kill(leader)
            self.fault_state[id(fault)] = leader
            with self.lock:
                self.blocked.append((now, None, f"raft leader killed {now:%F %T}"))
            threading.Thread(target=self._until_leader, args=(now,), daemon=True).start()
        elif kind == "vault_unreachable":
            assert self.proxy is not None
            self.cut += 1
            self.proxy.sever()
            with self.lock:
                self.blocked.append((now, now + fault.duration, f"Vault cut {now:%F %T}"))
        elif kind in ("graph_5xx", "graph_429"):
            rate = float(fault.param("rate"))
            if kind == "graph_5xx":
                spec: dict[str, Any] = {
                    "random": {"rate": rate, "statuses": [500, 503], "kind": "graph"}
                }
            else:
                spec = {
                    "random": {"rate": rate, "statuses": [429], "kind": "graph"},
                    "retryAfter": int(fault.param("retry_after")),
                }
            self.storms[id(fault)] = spec
            self._apply_storms()
        elif kind == "graph_drop":
            self._admin_post("/faults", {"drop": int(fault.param("count")), "kind": "graph"})
        elif kind == "lag_profile":
            self.lags[id(fault)] = str(fault.param("profile"))
            self._apply_lag()
        elif kind == "stuck_replica":
            self.lags[id(fault)] = {"name": "stuck-1h", "stuck": {"2": float(fault.param("lag"))}}
            self._apply_lag()
        f.faults_injected[kind] += 1
        return True

    def _end_fault(self, fault: Fault, now: datetime, setup: vault_setup.VaultSetup) -> None:
        kind = fault.kind
        with self.lock:
            if id(fault) in self.applied:
                self.applied[id(fault)].end = now
        if kind == "raft_leader_kill":
            index = self.fault_state.pop(id(fault), None)
            if index is not None and self.cluster is not None:
                threading.Thread(target=self._restart_node, args=(index,), daemon=True).start()
        elif kind == "vault_unreachable":
            self.cut -= 1
            if self.cut == 0 and self.proxy is not None:
                self.proxy.restore()
        elif kind in ("graph_5xx", "graph_429"):
            self.storms.pop(id(fault), None)
            self._apply_storms()
        elif kind in ("lag_profile", "stuck_replica"):
            self.lags.pop(id(fault), None)
            self._apply_lag()
        elif kind in ("daemon_kill", "daemon_kill_mid_rotation"):
            # An armed daemon stays armed past the fault's end until it took the lease
            # over and died at its step, or its time is up (see _supervise).
            self._unblock_if_any_up(now)

    # -- helpers for faults -----------------------------------------------------------------

    @staticmethod
    def _armed_for(fault: Fault, policy: TimingPolicy) -> timedelta:
        """How long the standby of a kill mid-rotation stays armed: the fault's duration,
        or longer, until it can have taken the lease over (the dead leader's lease runs
        out, the standby renews every third of it) and ticked. The killed leader is down
        for the fault's duration only and comes back plain; whichever takes the lease
        first leads, so the fault blocks rotation no longer than it did."""
        takeover = policy.lease_ttl + policy.lease_ttl / 3 + timedelta(minutes=15)
        return max(fault.duration, takeover)

    def _until_leader(self, since: datetime) -> None:
        cluster = self.cluster
        assert cluster is not None
        with contextlib.suppress(SidecarError):
            cluster.wait_for_leader(timeout=60)
        self._close_block(f"raft leader killed {since:%F %T}")

    def _restart_node(self, index: int) -> None:
        cluster = self.cluster
        assert cluster is not None
        try:
            cluster.restart(index, timeout=90)
        except SidecarError as exc:
            self.out(f"  could not restart raft node {index}: {exc}")

    def _close_block(self, why: str) -> None:
        clock_now = self._now()
        with self.lock:
            self.blocked = [
                (s, clock_now if e is None and w == why else e, w) for s, e, w in self.blocked
            ]

    def _now(self) -> datetime:
        return self.clock.now()

    def _block_if_all_down(self, now: datetime) -> None:
        if all(s.down_until is not None for s in self.slots):
            with self.lock:
                self.blocked.append((now, None, f"every daemon down {now:%F %T}"))

    def _unblock_if_any_up(self, now: datetime) -> None:
        with self.lock:
            self.blocked = [
                (s, now if e is None and w.startswith("every daemon") else e, w)
                for s, e, w in self.blocked
            ]

    def _admin_post(self, path: str, body: dict[str, Any]) -> None:
        response = self.admin.session.post(f"{self.admin.url}{path}", json=body, timeout=10)
        response.raise_for_status()

    def _apply_storms(self) -> None:
        self.admin.session.delete(f"{self.admin.url}/faults", timeout=10).raise_for_status()
        for spec in self.storms.values():
            self._admin_post("/faults", spec)

    def _apply_lag(self) -> None:
        profile = list(self.lags.values())[-1] if self.lags else "default"
        self._admin_post("/replication", {"profile": profile})

    # -- sign-ins refused -----------------------------------------------------------------

    def _refused(
        self,
        checker: invariants.Checker,
        result: RunResult,
        asked: datetime,
        after: datetime,
        credential: ResolvedCredential,
    ) -> None:
        """Azure refused a handed credential: what it said, what Azure and each directory
        replica hold, and every fault or operator action standing since the key was made."""
        code = _AADSTS.search(result.reason)
        key = credential.key_id
        record: dict[str, Any] = {
            "at": f"{after:%F %T}",
            "asked": f"{asked:%F %T}",
            "stack": result.stack,
            "phase": str(result.phase),
            "path": result.path,
            "integration": credential.integration,
            "key": key[:8],
            "status": result.status,
            "code": code.group(0) if code else "",
        }
        since = asked - WORST_LAG - timedelta(hours=2)
        try:
            app = checker.azure.application(credential.client_id)
            held = invariants.held_by(app) if app is not None else {}
            record["app_exists"] = app is not None
            window = held.get(key)
            record["key_window"] = None if window is None else [f"{w:%F %T}" for w in window]
            if window is not None:
                since = min(since, window[0])
            record["replicas_holding"] = self._replicas_holding(credential.client_id, key)
        except (requests.RequestException, ValueError, KeyError) as exc:
            record["azure_error"] = type(exc).__name__
        with self.lock:
            standing = [a for a in self.applied.values() if a.overlaps(since, after)]
        record["faults"] = [a.describe(self.schedule_start) for a in standing]
        in_flight = [a for a in standing if a.overlaps(asked, after)]
        causes = refusal_causes(credential.integration, result.status, in_flight)
        record["caused_by"] = [a.describe(self.schedule_start) for a in causes]
        outlived = expired_in_flight(asked, after, credential.expires)
        if outlived:
            record["caused_by"].append(outlived)
        self.figures.refusals.append(record)
        self.out(f"  sign-in refused: {record}")
        said = record["code"] or f"HTTP {result.status}"
        checker.refused(after, credential.integration, key, said, record["caused_by"])

    def _replicas_holding(self, client_id: str, key: str) -> list[int]:
        """The directory replicas whose view of the application holds ``key`` now."""
        replicas = int(
            self.admin.session.get(f"{self.admin.url}/replication", timeout=10).json()["replicas"]
        )
        out = []
        for replica in range(replicas):
            response = self.admin.session.get(
                f"{self.admin.url}/applications/{client_id}",
                params={"replica": replica},
                timeout=10,
            )
            if response.status_code == 200 and key in invariants.held_by(response.json()):
                out.append(replica)
        return out

    # -- invariants ---------------------------------------------------------------------------

    def _windows(self, policy: TimingPolicy, now: datetime) -> list[invariants.Window]:
        """Documented windows: a rotation-blocking fault longer than the renewal budget."""
        budget = (
            policy.secret_renew_before
            - policy.propagation_delay
            - policy.ready_safety_margin
            - policy.tick
            - policy.lease_ttl
        )
        with self.lock:
            spans = sorted((s, e or now) for s, e, _ in self.blocked)
        merged: list[list[datetime]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        slack = policy.propagation_delay + 2 * policy.tick
        return [
            invariants.Window(s, e + slack, f"rotation blocked {e - s} > budget {budget}")
            for s, e in merged
            if e - s > budget
        ]

    def _sampler(
        self, checker: invariants.Checker, clock: RealTimeClock, policy: TimingPolicy
    ) -> None:
        while not self.stop.wait(self.chaos.sample_every):
            now = clock.now()
            try:
                checker.sample(now, self._windows(policy, now))
            except (requests.RequestException, SidecarError, KeyError, ValueError) as exc:
                checker.findings.blind()
                del exc
            self.figures.samples += 1

    def _quiesce(
        self,
        clock: RealTimeClock,
        admin: EmulatorAdmin,
        setup: vault_setup.VaultSetup,
        policy: TimingPolicy,
        checker: invariants.Checker,
    ) -> None:
        """Lift every fault, let a tick pass, then wait (bounded) for Azure and Vault to agree."""
        assert self.proxy is not None and self.cluster is not None
        self.proxy.restore()
        self.storms.clear()
        self._apply_storms()
        self.lags.clear()
        self._apply_lag()
        for index, node in enumerate(self.cluster.nodes):
            if not node.running:
                self._restart_node(index)
        self.cluster.wait_for_leader(timeout=60)
        for slot in self.slots:
            if slot.child is None or not slot.child.alive() or slot.armed:
                self._kill(slot)
                self._start(slot, setup)
        ended = clock.now()
        bound = policy.intent_timeout + policy.missing_grace + 3 * policy.tick
        time.sleep(policy.tick.total_seconds() / clock.factor)
        problems = checker.converged()
        while problems and clock.now() < ended + bound:
            time.sleep(0.5)
            problems = checker.converged()
        self.figures.converged_after_hours = (
            None if problems else round((clock.now() - ended).total_seconds() / 3600, 2)
        )
        with self.lock:
            stacks = dict(self.expected_stacks)
        checker.quiescent(set(self.expected_integrations), stacks, self.foreign_apps)
        logs = {p.stem: p for slot in self.slots for p in slot.logs}
        self.figures.graph_writes = checker.one_writer(logs)
        checker.hygiene(self._outputs())

    def _outputs(self) -> dict[str, str]:
        """Every log, every daemon's metrics and every process's arguments, for the sweep."""
        texts: dict[str, str] = {}
        for path in sorted(self.log_dir.rglob("*.log")):
            texts[str(path.name)] = path.read_text(errors="replace")
        if self.cluster is not None:
            for node in self.cluster.nodes:
                with contextlib.suppress(OSError):
                    texts[f"bao-{node.node_id}"] = node.log_path.read_text(errors="replace")
        for slot in self.slots:
            with contextlib.suppress(requests.RequestException):
                texts[f"metrics-{slot.index}"] = requests.get(
                    f"http://127.0.0.1:{slot.metrics_port}/metrics", timeout=5
                ).text
        for pid in self._our_processes():
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                texts[f"argv-{pid}"] = raw.replace(b"\0", b" ").decode(errors="replace")
        return texts

    def _our_processes(self) -> set[int]:
        """This process and every process it started, with their descendants (the plugins)."""
        parent: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text()
                    parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        ours = {os.getpid()}
        grew = True
        while grew:
            found = {pid for pid, ppid in parent.items() if ppid in ours} - ours
            grew = bool(found)
            ours |= found
        return ours


class Operator:
    """The operator's actions, one at a time from a queue, each retried until it succeeds.

    An operator whose command failed (Vault cut, Graph throttling) runs it again;
    ``integration create`` resumes where it stopped. The harness's expectations
    (integrations kept, stacks attached) change only once an action succeeded.
    """

    def __init__(
        self,
        chaos: Chaos,
        admin: EmulatorAdmin,
        config: Config,
        clock: RealTimeClock,
        sidecar_store: Store,
        operator_store: Store,
        endpoints: EmulatorEndpoints,
    ) -> None:
        self.chaos = chaos
        self.admin = admin
        self.clock = clock
        self.operator_store = operator_store
        self.runtime = Runtime(config=config, clock=clock, store=sidecar_store)
        self.login_url = endpoints.base_url
        self.made = 0
        self.target = ""  # what the action in hand acts on, for the record of faults

    def work(self) -> None:
        """Until the run stops and the queue is empty: take an action and carry it out."""
        while True:
            try:
                fault = self.chaos.operator_queue.get(timeout=0.2)
            except queue.Empty:
                if self.chaos.stop.is_set():
                    return
                continue
            if fault is None:
                return
            began = self.clock.now()
            self.target = ""
            done = self._retry(fault)
            self.chaos.figures.operator_actions[fault.kind + ("" if done else "_gave_up")] += 1
            with self.chaos.lock:
                self.chaos.applied[id(fault)] = Applied(began, fault, self.clock.now(), self.target)

    def _retry(self, fault: Fault) -> bool:
        for _ in range(200):
            try:
                self._act(fault)
                return True
            except (SidecarError, requests.RequestException, OSError):
                time.sleep(0.25)
        return False

    def _act(self, fault: Fault) -> None:
        pick = int(fault.param("pick"))
        c = self.chaos
        if fault.kind == "op_create_integration":
            name = getattr(fault, "_name", None) or f"ops-{len(c.ops_made) + self.made}"
            object.__setattr__(fault, "_name", name)  # a retry resumes the same name
            self.target = name
            self._create(name, pick)
            stack = f"ops-stack-{name}"
            attach(self.operator_store, stack, read=name, write=name)
            with c.lock:
                c.ops_made.append(name)
                c.expected_integrations.add(name)
                c.expected_stacks[stack] = (name, name)
        elif fault.kind == "op_delete_integration":
            with c.lock:
                candidates = list(c.ops_made)
            if not candidates:
                return
            name = candidates[pick % len(candidates)]
            self.target = name
            with c.lock:
                stacks = [s for s, pair in c.expected_stacks.items() if name in pair]
            for stack in stacks:
                detach(self.operator_store, stack)
                with c.lock:
                    c.expected_stacks.pop(stack, None)
                    if stack in c.extra_stacks:
                        c.extra_stacks.remove(stack)
            service = Integrations(
                self.runtime.store,
                self.runtime.graph(),
                self.clock,
                self.runtime.config.timing,
                redirect_uri=REDIRECT_URI,
            )
            with contextlib.suppress(SidecarError):
                if self.runtime.store.find_integration(name) is None:
                    pass
            if self.runtime.store.find_integration(name) is not None:
                service.delete(name)
            with c.lock:
                c.ops_made.remove(name)
                c.expected_integrations.discard(name)
        elif fault.kind == "op_attach":
            with c.lock:
                names = sorted(c.expected_integrations)
            name = names[pick % len(names)]
            stack = f"extra-{pick % 1000}"
            self.target = f"{stack} read={name}"
            attach(self.operator_store, stack, read=name)
            with c.lock:
                old = c.expected_stacks.get(stack, ("", ""))
                c.expected_stacks[stack] = (name, old[1])
                if stack not in c.extra_stacks:
                    c.extra_stacks.append(stack)
        elif fault.kind == "op_detach":
            with c.lock:
                extra = list(c.extra_stacks)
            if not extra:
                return
            stack = extra[pick % len(extra)]
            self.target = stack
            detach(self.operator_store, stack)
            with c.lock:
                c.expected_stacks.pop(stack, None)
                c.extra_stacks.remove(stack)

    def _create(self, name: str, pick: int) -> None:
        """``integration create`` in a new tenant, consent, an Azure role: as in the demo."""
        tenants = getattr(self, "_tenants", {})
        self._tenants = tenants
        if name not in tenants:
            tenants[name] = self.admin.seed_tenant(f"Tenant {name}")
        tenant_id, subscription_id = tenants[name]
        service = Integrations(
            self.runtime.store,
            self.runtime.graph(),
            self.clock,
            self.runtime.config.timing,
            redirect_uri=REDIRECT_URI,
        )
        record = service.create(name, tenant_id, subscription_id)
        url = consent_url(self.login_url, record, REDIRECT_URI)
        for _ in range(100):
            response = self.admin.session.get(url, allow_redirects=False, timeout=30)
            if response.status_code == 302 and "admin_consent=True" in response.headers.get(
                "Location", ""
            ):
                break
            time.sleep(0.1)
        else:
            raise SidecarError(f"consent for {name} kept failing")
        self.admin.grant_azure_role(tenant_id, subscription_id, record.client_id, "Contributor")
        del pick


def run_chaos(options: ChaosOptions, out: Out) -> ChaosResult:
    return Chaos(options, out).run_chaos()
