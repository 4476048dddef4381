"""The fault schedule: a pure function of the seed (same seed, same schedule).

Each kind of fault arrives as a Poisson process with its own rate per emulated
day and draws its duration and parameters from the same seeded generator, so
faults overlap whenever their windows happen to cross, as real incidents do.
Nothing here touches a process; :mod:`bench.chaos.harness` applies the list.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

#: Every kind of fault, with its expected number per emulated day.
RATES: dict[str, float] = {
    "daemon_kill": 1.5,  # SIGKILL one daemon, restart it after ``duration``
    "daemon_kill_mid_rotation": 0.4,  # hold an addPassword, SIGKILL the leader while it waits
    "raft_leader_kill": 1.0,  # SIGKILL the active OpenBao node, restart it after ``duration``
    "vault_unreachable": 1.0,  # the TCP proxy in front of Vault cut for ``duration``
    "graph_5xx": 1.0,  # a share of Graph requests answered 500/503 for ``duration``
    "graph_429": 1.0,  # a share of Graph requests throttled with Retry-After
    "graph_drop": 0.8,  # the next few Graph connections dropped without an answer
    "lag_profile": 0.8,  # the emulator's replication lag profile switched for ``duration``
    "stuck_replica": 0.3,  # one directory replica an hour behind, for an hour
    "op_create_integration": 0.6,  # operator: a new integration in a new tenant, attached
    "op_delete_integration": 0.3,  # operator: detach and delete one the operator made
    "op_attach": 0.6,  # operator: attach an integration to another stack
    "op_detach": 0.4,  # operator: detach a stack the operator attached
}

#: Kinds that are operator actions rather than faults.
OPERATOR_KINDS = frozenset(k for k in RATES if k.startswith("op_"))
LAG_PROFILES = ("none", "default", "heavy", "stuck-replica")


@dataclass(frozen=True, order=True)
class Fault:
    """One event: ``kind`` starting ``at`` after the schedule starts, lasting ``duration``."""

    at: timedelta
    kind: str
    duration: timedelta = timedelta(0)
    params: tuple[tuple[str, str | int | float], ...] = field(default=())

    @property
    def end(self) -> timedelta:
        return self.at + self.duration

    def param(self, name: str) -> str | int | float:
        return dict(self.params)[name]

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.params)
        hours = self.at.total_seconds() / 3600
        return f"{hours:7.2f} h {self.kind} for {self.duration} {extra}".rstrip()


def _minutes(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=round(rng.uniform(low, high), 1))


def _one(kind: str, at: timedelta, rng: random.Random, daemons: int) -> Fault:
    """Duration and parameters of one fault of ``kind``, drawn from ``rng``."""
    if kind in ("daemon_kill", "daemon_kill_mid_rotation"):
        return Fault(
            at,
            kind,
            _minutes(rng, 5, 90),
            (("daemon", rng.randrange(daemons)),),
        )
    if kind == "raft_leader_kill":
        return Fault(at, kind, _minutes(rng, 10, 120))
    if kind == "vault_unreachable":
        return Fault(at, kind, _minutes(rng, 2, 60))
    if kind == "graph_5xx":
        return Fault(at, kind, _minutes(rng, 5, 120), (("rate", round(rng.uniform(0.2, 0.8), 2)),))
    if kind == "graph_429":
        return Fault(
            at,
            kind,
            _minutes(rng, 5, 90),
            (("rate", round(rng.uniform(0.2, 0.7), 2)), ("retry_after", rng.choice((5, 30, 120)))),
        )
    if kind == "graph_drop":
        return Fault(at, kind, timedelta(0), (("count", rng.randint(1, 6)),))
    if kind == "lag_profile":
        return Fault(at, kind, _minutes(rng, 30, 360), (("profile", rng.choice(LAG_PROFILES)),))
    if kind == "stuck_replica":
        return Fault(at, kind, timedelta(hours=1), (("lag", 3600),))
    # Operator actions are instants; the harness picks their targets from what exists then.
    return Fault(at, kind, timedelta(0), (("pick", rng.randrange(1_000_000)),))


def schedule(
    seed: int,
    days: float,
    *,
    daemons: int = 2,
    rates: dict[str, float] | None = None,
    quiet_start: timedelta = timedelta(hours=1),
) -> list[Fault]:
    """The faults of one run, sorted by start; a function of its arguments only.

    ``quiet_start`` leaves the first emulated hour alone so the first secrets
    become ready before anything breaks; every fault ends before ``days``.
    """
    rng = random.Random(f"azsidecar-chaos:{seed}")
    horizon = timedelta(days=days)
    out: list[Fault] = []
    for kind, per_day in sorted((rates or RATES).items()):
        if per_day <= 0:
            continue
        at = quiet_start
        while True:
            at += timedelta(seconds=round(rng.expovariate(per_day / 86400.0)))
            if at >= horizon:
                break
            fault = _one(kind, at, rng, daemons)
            if fault.end < horizon:
                out.append(fault)
    out.sort()
    return out


def overlapping(faults: list[Fault]) -> list[tuple[Fault, Fault]]:
    """Pairs of faults with durations whose windows cross."""
    timed = [f for f in faults if f.duration > timedelta(0)]
    return [
        (a, b) for i, a in enumerate(timed) for b in timed[i + 1 :] if b.at < a.end and a.at < b.end
    ]


def counts(faults: list[Fault]) -> dict[str, int]:
    found: dict[str, int] = {}
    for f in faults:
        found[f.kind] = found.get(f.kind, 0) + 1
    return dict(sorted(found.items()))
