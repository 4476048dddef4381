"""Graph storms (issue #9): 30% of Graph requests fail with 5xx or 429 for 24 emulated hours.

The daemon runs in-process on the emulator's manual clock, as in
``test_rotation_e2e``; the Graph client's back-off and ``Retry-After`` sleeps go
through that clock, so they move emulated time on. Faulted: every Microsoft
Graph request, and the management application's sign-in (the platform
tenant's token endpoint and OIDC metadata), each at 30%, half 5xx and half
429 with ``Retry-After``. Not faulted: the runs' sign-ins and ARM calls in
the user tenants, which are how the test tells that the ready secret works.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import pytest

from sidecar.daemon import Daemon
from sidecar.errors import GraphError
from sidecar.graph import GraphObserver
from sidecar.health import RETRY_AFTER_FAILURE
from sidecar.model import Phase
from sidecar.ready import Ready, choose_ready
from sidecar.resolve import resolve_credential
from tests.test_rotation_e2e import create_integrations
from tests.world import World, run_terraform

STORM_RATE = 0.30
SERVER_ERRORS = (500, 502, 503, 504)
RETRY_AFTER = 10  # seconds each injected 429 asks the client to wait
FAILED = {0, 429, *SERVER_ERRORS}  # what the Graph client retries
# Creating writes are not repeated after a 5xx or a lost connection (the write may
# have happened): such an answer ends the operation; only a 429 is retried.
NOT_REPEATED = {"create_application", "add_password", "add_key"}


@dataclass(frozen=True)
class Operation:
    """One Graph call through the client's retry loop: its retries and how it ended."""

    name: str
    retries: int
    succeeded: bool


class AttemptLog:
    """A GraphObserver that groups the client's per-attempt events into operations.

    The client makes one operation's attempts one after another on one thread,
    so a per-thread streak of failed attempts is that operation's retry count.
    It ends at the first answer that is not retried (for a creating write, a
    5xx or a lost connection), or when the client gives up after
    ``max_retries`` retries.
    """

    def __init__(self, inner: GraphObserver, max_retries: int) -> None:
        self.inner = inner
        self.max_retries = max_retries
        self.statuses: Counter[int] = Counter()
        self.operations: list[Operation] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def graph_call(self, operation: str, status: int, seconds: float) -> None:
        self.inner.graph_call(operation, status, seconds)
        streak: int = getattr(self._local, "streak", 0)
        with self._lock:
            self.statuses[status] += 1
            if status == 401:  # the client signs in again and repeats the attempt
                return
            repeated = operation not in NOT_REPEATED or status == 429
            if status in FAILED and repeated and streak < self.max_retries:
                self._local.streak = streak + 1
                return
            self.operations.append(Operation(operation, streak, status not in FAILED))
            self._local.streak = 0

    def graph_throttled(self, operation: str) -> None:
        self.inner.graph_throttled(operation)


def storm(world: World, kind: str, prefix: str | None = None) -> None:
    """STORM_RATE of the matching requests fail: half with a 5xx, half with 429."""
    faults = world.emu.state.faults
    faults.random_errors(STORM_RATE / 2, SERVER_ERRORS, kind=kind, prefix=prefix)
    faults.random_errors(STORM_RATE / 2, (429,), kind=kind, prefix=prefix, retry_after=RETRY_AFTER)


@pytest.mark.parametrize(("kind", "status"), [("login", 503), ("token", 503), ("token", 429)])
def test_a_failed_sign_in_is_a_graph_error(world: World, kind: str, status: int) -> None:
    """MSAL raises its own errors for a 5xx; callers (observe, the CLI) expect GraphError."""
    graph = world.runtime.graph()
    world.emu.state.faults.fail_next(1, status=status, kind=kind, retry_after=RETRY_AFTER)
    with pytest.raises(GraphError, match=r"login endpoint|could not sign in"):
        graph.list_applications()
    assert [a.app_id for a in graph.list_applications()] == [world.mgmt.app_id]


@pytest.mark.slow
def test_graph_storm_for_24_hours_keeps_every_integration_ready(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    integrations = create_integrations(world, count=6, tenants=2)
    names = [name for name, _ in integrations]
    apps = {name: world.store.integration(name)[0].app_object_id for name in names}
    daemon = Daemon(world.runtime, holder="storm")
    graph = daemon.graph()
    attempts = AttemptLog(graph.observer, graph.max_retries)
    graph.observer = attempts
    policy = world.config.timing
    calls = world.emu.state.calls
    since = calls.next_index
    storm(world, "graph")
    for kind in ("token", "login"):  # the management application's sign-in only
        storm(world, kind, prefix=f"/{world.platform_tenant}/")
    caplog.set_level(logging.WARNING)
    session = world.emu.session()
    step = timedelta(minutes=5)
    start = world.time.now()
    end = start + timedelta(hours=24)
    next_tick = start
    next_run = start
    checks = runs = failed_ticks = ticks = 0
    max_held = 0
    while world.time.now() < end:
        now = world.time.now()
        # As Daemon.run schedules: a full pass every tick (sooner after a failed
        # one), the integrations that are due in between.
        ok: bool | None = None
        if now >= next_tick:
            ok = daemon.tick()
            wait = policy.tick if ok else min(policy.tick, RETRY_AFTER_FAILURE)
            next_tick = world.time.now() + wait
        elif due := daemon.due(now):
            ok = daemon.tick(only=due)
        daemon.probe()  # and, while it leads, probes new secrets (verified readiness)
        if ok is not None:
            ticks += 1
            failed_ticks += 0 if ok else 1
        now = world.time.now()  # retry sleeps moved it on
        for name in names:
            choice = choose_ready(world.store.credentials(name), now, policy)
            assert isinstance(choice, Ready), f"{name} had no ready secret at {now}: {choice}"
            max_held = max(max_held, len(world.azure_secrets(apps[name])))
        checks += 1
        if now >= next_run:  # a plan and an apply on every integration, every 2 h
            for i, (name, tenant) in enumerate(integrations):
                for phase in (Phase.PLAN, Phase.APPLY):
                    stack = f"stack-{i}"
                    credential = resolve_credential(world.store.kv, stack, phase, now, policy)
                    signed_in, why = run_terraform(world, session, credential, tenant)
                    assert signed_in, f"{phase} run of {name} at {now} failed: {why}"
                    runs += 1
            next_run = now + timedelta(hours=2)
        world.time.advance(step)
    world.emu.state.faults.clear()

    graph_calls = calls.query(since=since, kind="graph")
    sign_ins = [
        c
        for c in calls.query(since=since)
        if c.kind in ("token", "login") and c.path.startswith(f"/{world.platform_tenant}/")
    ]
    failed_sign_ins = sum(1 for c in sign_ins if c.fault)
    injected = [c for c in graph_calls if c.fault]
    by_status = Counter(c.status for c in injected)
    ops = attempts.operations
    succeeded = [o for o in ops if o.succeeded]
    gave_up = [o for o in ops if not o.succeeded and o.retries == graph.max_retries]
    retries = sum(o.retries for o in ops)
    longest = max(ops, key=lambda o: o.retries)
    per_operation = Counter(o.name for o in ops)
    added = [c for c in graph_calls if c.path.endswith("/addPassword") and c.status in (200, 201)]
    rotations = sum(len(r.created) for r in daemon.reports)
    print(
        f"\n24 emulated hours, {len(names)} integrations, {checks} checks, {runs} runs,"
        f" {ticks} passes ({failed_ticks} failed)"
        f"\nGraph requests: {len(graph_calls)}, injected failures: {len(injected)}"
        f" ({len(injected) / len(graph_calls):.1%}; {dict(sorted(by_status.items()))})"
        f"\noperations: {len(ops)} ({dict(per_operation)}), succeeded {len(succeeded)},"
        f" gave up {len(gave_up)}"
        f"\nretries: {retries} ({retries / max(1, len(succeeded)):.2f} per successful operation),"
        f" most for one operation: {longest.retries} ({longest.name}),"
        f" bound {graph.max_retries}"
        f"\nmanagement sign-in requests (token + OIDC metadata): {len(sign_ins)},"
        f" injected failures: {failed_sign_ins}"
        f"\nrotations: {rotations}, addPassword successes: {len(added)},"
        f" max secrets held by one app: {max_held}"
    )
    # The storm happened as configured, and only the daemon talked to Graph.
    assert len(graph_calls) == attempts.statuses.total()
    assert 0.2 <= len(injected) / len(graph_calls) <= 0.4
    assert {429, *SERVER_ERRORS} <= set(by_status)
    assert failed_sign_ins >= 1
    # Every failure the daemon met was one it understands (a GraphError), none a
    # library's exception caught as "unexpected".
    unexpected = [r.getMessage() for r in caplog.records if "unexpected" in r.getMessage()]
    assert not unexpected, unexpected
    # Retries are bounded: never more than the client's bound for one operation,
    # all of them accounted for, and on average no more than the failure rate
    # calls for (p / (1 - p) = 0.43 retries per operation at p = 0.3).
    assert longest.retries <= graph.max_retries
    assert retries == graph.retries
    assert retries / len(ops) <= 0.7
    assert len(gave_up) <= len(ops) * 0.01
    # One renewal per integration in the day (at 22 h), no runaway creations.
    assert rotations == len(names)
    assert len(added) == len(names)
    assert max_held <= 3
    # Azure and Vault agree: after the storm, a calm pass leaves no orphans.
    assert daemon.tick(), daemon.health.last_error
    for name in names:
        assert world.our_key_ids(apps[name]) == {c.key_id for c in world.store.credentials(name)}
