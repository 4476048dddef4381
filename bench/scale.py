"""Issue 8.2: rotation at scale, every integration due at once, under Graph's write quota.

Each integration is seeded with one secret created 22 h 5 min ago (24 h
lifetime), so at the daemon's first tick every newest secret has less than
``secret_renew_before`` (2 h) left and nothing has expired: the planner asks
for exactly one ``addPassword`` per integration. The emulator throttles the
management application's writes with a token bucket of ``writes`` per
``per_seconds`` (Graph's published 3,000 per 150 s for one app and tenant).

The emulated clock runs ``factor`` times real time. A factor below 1 slows
emulated time so the daemon can out-pace the quota and the quota, not this
machine, bounds the run; the throttled-phase write rate over the quota's
rate is then the fraction of the ceiling the daemon achieved. Runs where the
burst covers every write are bounded by the daemon itself, which is reported
as such.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.stack import BenchStack, count_audit, secret_ages_due_at_once

QUOTA = {"writes": 3000, "per_seconds": 150}


@dataclass(frozen=True)
class ScaleCase:
    name: str
    integrations: int
    factor: float
    quota_spent: bool  # the bucket starts empty instead of full

    def describe(self) -> str:
        start = "spent" if self.quota_spent else "fresh"
        return f"{self.integrations:,} due, quota {start}, clock x{self.factor:g}"


FULL = (
    ScaleCase("1k-fresh", 1000, 1.0, False),
    ScaleCase("1k-spent", 1000, 0.5, True),
    ScaleCase("10k-fresh", 10000, 0.75, False),
)
QUICK = (ScaleCase("50-spent", 50, 0.5, True),)


def run_case(
    case: ScaleCase, quota: dict[str, Any], concurrency: int = 8, timeout: float = 1800
) -> dict[str, Any]:
    ages = secret_ages_due_at_once(case.integrations)
    with BenchStack(ages, throttle=quota) as stack:
        seeded_in = stack.seed_seconds
        stack.enable_audit()
        stack.start_clock(case.factor, drain=case.quota_spent)
        daemon = stack.start_daemon(concurrency)
        started = time.monotonic()
        stats: dict[str, Any] = {}
        for update in stack.wait(lambda s: s["graph_writes_ok"] >= case.integrations, timeout):
            stats = update
        real = time.monotonic() - started
        during = daemon.sample()
        time.sleep(2.0)  # the tick's last Vault writes; then the daemon rests
        rest = daemon.sample()
        emulator = stack.emulator.sample() if stack.emulator else None
        last = daemon.stop() or rest
        stack.disable_audit()
        audit = count_audit(stack.audit_path)
        log_tail = stack.daemon_log_tail(3)
        failed_ticks = (stack.workdir / "daemon.log").read_text().count("tick failed")
    rotations = int(stats["operations"].get("addPassword:200", 0))
    first, last_write = stats["first_call"], stats["last_write"]
    wall = (last_write - first) if first and last_write else None
    ceiling = quota["writes"] / quota["per_seconds"]
    throttled_rate = None
    if stats["first_throttled"] and last_write and last_write > stats["first_throttled"]:
        throttled_rate = stats["writes_after_first_throttled"] / (
            last_write - stats["first_throttled"]
        )
    lease_writes = audit.writes.get("data:state/leader", 0)
    per = max(rotations, 1)
    return {
        "case": case.name,
        "description": case.describe(),
        "integrations": case.integrations,
        "clock_factor": case.factor,
        "quota": quota,
        "quota_start": "spent" if case.quota_spent else "fresh",
        "concurrency": concurrency,
        "complete": rotations >= case.integrations,
        "rotations": rotations,
        "failed_ticks": failed_ticks,
        "seed_seconds": seeded_in,
        "wall_emulated_s": wall,
        "wall_real_s": real,
        "graph": {
            "calls": stats["graph_calls"],
            "calls_per_rotation": stats["graph_calls"] / per,
            "reads_per_rotation": stats["graph_reads"] / per,
            "writes_per_rotation": (stats["graph_calls"] - stats["graph_reads"]) / per,
            "throttled": stats["graph_throttled"],
            "throttled_per_rotation": stats["graph_throttled"] / per,
            "errors": stats["graph_errors"],
            "token_requests": stats["token_calls"],
            "operations": stats["operations"],
        },
        "vault": {
            "writes_per_rotation": (audit.total_writes - lease_writes) / per,
            "reads_per_rotation": audit.total_reads / per,
            "lease_writes": lease_writes,
            "writes": dict(audit.writes),
            "reads": dict(audit.reads),
        },
        "throttle": {
            "ceiling_writes_per_s": ceiling,
            "achieved_writes_per_s": rotations / wall if wall else None,
            "throttled_phase_writes_per_s": throttled_rate,
            "fraction_of_ceiling": throttled_rate / ceiling if throttled_rate else None,
            "limited_by": "Graph write quota (429s)"
            if stats["graph_throttled"]
            else "the daemon (the quota's burst covered every write)",
        },
        "daemon": {
            "peak_rss_mib": max(last.peak_rss_mib, during.peak_rss_mib),
            "rss_at_rest_mib": rest.rss_mib,
            "cpu_s": last.cpu,
            "cpu_ms_per_rotation": 1000 * during.cpu / per,
            "cpu_share_of_one_core": during.cpu / real if real else None,
            "rotations_per_real_s": rotations / real if real else None,
        },
        "emulator": {
            "cpu_s": emulator.cpu if emulator else None,
            "cpu_share_of_one_core": emulator.cpu / real if emulator and real else None,
        },
        "daemon_log_tail": log_tail,
    }


def run(
    quick: bool = False, quota: dict[str, Any] | None = None, sizes: list[int] | None = None
) -> dict[str, Any]:
    quota = quota or QUOTA
    cases = list(QUICK if quick else FULL)
    if sizes:
        cases = [c for c in cases if c.integrations in sizes]
    return {"quota": quota, "cases": [run_case(c, quota) for c in cases]}
