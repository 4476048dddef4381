"""Issue 8.4: the daemon's CPU per emulated day per 1,000 integrations, and memory at rest.

A steady population: secrets of every age, so renewals and expiries are
spread over the day as they are once integrations were created at different
times. The daemon runs for ``days`` emulated days at clock factor ``factor``.

Each *pass* (a tick or a wake) observes every integration: one Graph read
and several Vault reads each. The daemon passes at every hourly tick and at
every moment the planner names (:func:`~sidecar.rotation.planner.replan_at`)
for any integration, so how many passes a day takes depends on how fast a
pass is compared with how close those moments are. At a high clock factor
the passes run back to back; the benchmark therefore measures CPU per pass
and also projects, from the product's own ``replan_at`` schedule of the
same population, how many passes a day the daemon makes in real time.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from bench.consistency import Outcome, _daemon_event, _Integration
from bench.stack import START, BenchStack, secret_ages_spread
from sidecar.emulator.replicas import PROFILES
from sidecar.rotation.planner import IntegrationState, replan_at
from sidecar.timing import TimingPolicy


def wake_moments(ages: list[timedelta], days: float, policy: TimingPolicy) -> list[float]:
    """Every moment (seconds from start) at which some integration's plan may change.

    Drives the real planner for each integration over ``days`` (through the
    consistency simulation's model with no replication lag) and collects the
    ``replan_at`` moments the daemon would wake for.
    """
    profile = PROFILES["none"]
    rng = random.Random(5)
    end = START + timedelta(days=days)
    moments: set[float] = set()
    for index, age in enumerate(ages):
        item = _Integration(f"int-{index}")
        item.create(START - age, policy, rng, profile)
        now = START
        while True:
            state = IntegrationState(item.name, tuple(item.stored), None, ())
            wake = replan_at(state, policy, now)
            if wake is None or wake >= end:
                break
            moments.add((wake - START).total_seconds())
            _daemon_event(item, wake, policy, rng, profile, Outcome())
            now = wake
    return sorted(moments)


FACTOR = 24.0  # 300 real seconds = 2 emulated hours: two hourly passes and the wakes between
QUICK_FACTOR = 600.0  # the smoke run's 15 s = 2.5 emulated hours, so it sees hourly passes


def passes_per_day(moments: list[float], pass_seconds: float, days: float, tick: float) -> float:
    """Passes the daemon makes: at each tick and wake, merging those that fall inside a pass."""
    horizon = days * 86400
    pending = sorted({*moments, *(k * tick for k in range(int(horizon // tick) + 1))})
    passes, busy_until = 0, -1.0
    for moment in pending:
        if moment >= busy_until:
            passes += 1
            busy_until = moment + pass_seconds
    return passes / days


def run(quick: bool = False, window: float | None = None) -> dict[str, Any]:
    """Steady-state CPU: skip the start-up pass, then measure over emulated hours.

    The clock runs ``FACTOR`` times real time (the Graph client judges token
    freshness by the token's own ``exp``, so acceleration no longer inflates
    sign-ins); CPU is counted from the end of the start-up pass, which visits
    every integration once, and scaled by emulated time to a day.
    """
    count = 50 if quick else 1000
    window = window or (15.0 if quick else 300.0)
    factor = QUICK_FACTOR if quick else FACTOR
    policy = TimingPolicy()
    ages = secret_ages_spread(count)
    with BenchStack(ages, audit=False) as stack:
        clock = stack.start_clock(factor)
        daemon = stack.start_daemon()
        for _ in stack.wait(lambda st: st["graph_reads"] >= count, timeout=600, poll=0.5):
            pass
        first = daemon.sample()
        first_reads = stack.emulator_stats()["graph_reads"]
        started = time.monotonic()
        low_rss = float("inf")
        while time.monotonic() - started < window and daemon.alive():
            time.sleep(min(1.0, max(0.05, window - (time.monotonic() - started))))
            low_rss = min(low_rss, daemon.sample().rss_mib)
        stats = stack.emulator_stats()
        end = daemon.stop()
        real = time.monotonic() - started
    assert end is not None, "the daemon exited early"
    del clock
    emulated = real * factor
    per_day = 86400 / emulated
    steady_cpu = end.cpu - first.cpu
    passes = (stats["graph_reads"] - first_reads) / count
    per_1000 = 1000 / count
    cpu_per_pass = steady_cpu / passes if passes else None
    pass_seconds = real * (steady_cpu / real) / passes if passes else 0.0
    moments = wake_moments(ages, 2.0, policy)
    projected = passes_per_day(moments, pass_seconds, 2.0, policy.tick.total_seconds())
    return {
        "integrations": count,
        "clock_factor": factor,
        "emulated_s": emulated,
        "startup_pass_cpu_s": first.cpu,
        "window_s": real,
        "passes": passes,
        "passes_per_day": passes * per_day,
        "token_requests": stats["token_calls"],
        "rotations": int(stats["operations"].get("addPassword:200", 0)),
        "graph_reads_per_day_per_1000": stats["graph_reads"] * per_day * per_1000,
        "cpu_s": steady_cpu,
        "busy_fraction": steady_cpu / real if real else None,
        "cpu_s_per_day_per_1000": steady_cpu * per_day * per_1000,
        "cpu_s_per_pass_per_1000": cpu_per_pass * per_1000 if cpu_per_pass else None,
        "wake_moments_per_day": len(moments) / 2.0,
        "schedule": {
            "passes_per_day": projected,
            "hourly_only_passes_per_day": 24.0,
            "hourly_only_cpu_s_per_day_per_1000": 24.0 * cpu_per_pass * per_1000
            if cpu_per_pass
            else None,
        },
        "rss_at_rest_mib": low_rss,
        "rss_end_mib": end.rss_mib,
        "peak_rss_mib": end.peak_rss_mib,
    }
