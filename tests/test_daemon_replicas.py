"""Daemon replicas (issue #9): two daemons for 48 emulated hours, the leader killed repeatedly.

Two ``azsidecar daemon`` processes share the emulator's accelerated clock
(FACTOR emulated seconds per real second). Every few emulated hours the test
SIGKILLs whichever holds the leader lease and starts a replacement, so two
always run; once it kills the leader in the middle of a rotation (its intent
recorded, its ``addPassword`` held by a long ``Retry-After``). Meanwhile it
checks Vault continuously: every integration has a ready secret at every
sample, read from the index the way the resolver and the plugin read it.
Afterwards it checks, from the emulator's call log and the daemons' own logs,
that exactly one daemon rotated at a time.

Timing: the lease, the tick and every other duration are emulated time. At
FACTOR 1200 a one-hour lease is 3 real seconds (renewed every second), so a
takeover takes up to about 1 h 20 min emulated. The default
``secret_renew_before`` (2 h) leaves 20 minutes of slack for a late renewal,
enough for a 90 s production lease but not for this one; it is raised to
4 h (1 h 40 min of propagation, safety margin and tick, plus 2 h 20 min of
slack), the way an operator sizes it against the lease.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests

from sidecar.daemon import Daemon
from sidecar.devstack.openbao import free_port
from sidecar.ready import Ready, choose_ready
from sidecar.runtime import Runtime
from tests.processes import azsidecar, azsidecar_env, write_config
from tests.test_rotation_e2e import create_integrations
from tests.world import World

FACTOR = 1200.0
HOURS = 48
LEASE_TTL = timedelta(hours=1)
RENEW_BEFORE = timedelta(hours=4)
# Emulated hours after the integrations' first secrets: plain kills every ~6 h,
# one of them just as the second renewals come due (40 h).
KILLS_AT = (6, 12, 27, 33, 40, 45)
# The first renewals come due at 20 h; one of them is held and its daemon killed.
HOLD_AT = timedelta(hours=19, minutes=30)
HOLD_RETRY_AFTER = 3600  # emulated seconds: 3 s real to notice the 429 and kill
SAMPLE = 0.2  # real seconds between checks (4 emulated minutes)

_CREATED = re.compile(r"created a client secret for (\S+) \(version (\d+)\)")
_REMOVED = re.compile(r"removed a client secret of (\S+) from Azure: (.*)")


@dataclass
class Replica:
    index: int
    port: int
    proc: subprocess.Popen[str]
    log_path: Path
    killed_real: float | None = None

    def health(self) -> dict[str, Any] | None:
        try:
            return dict(requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).json())
        except (requests.RequestException, ValueError):
            return None

    def is_leader(self) -> bool:
        return (self.health() or {}).get("leader") is True

    def events(self) -> list[tuple[float, str, str]]:
        """(real epoch seconds, level, message) of each JSON log line."""
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            when = datetime.fromisoformat(entry["time"]).timestamp()
            out.append((when, str(entry["level"]), str(entry["message"])))
        return out


@dataclass
class Kill:
    replica: int
    real: float  # time.time() at the kill
    emulated: datetime
    mid_rotation: bool = False
    took_over: int | None = None
    takeover_real: float | None = None  # seconds after the kill
    takeover_emulated: float | None = None


@dataclass
class Replicas:
    world: World
    tmp: Path
    env: dict[str, str]
    all: list[Replica] = field(default_factory=list)

    def start(self) -> Replica:
        index = len(self.all)
        port = free_port()
        config = write_config(
            self.world,
            self.tmp / f"d{index}.toml",
            timing={
                "lease_ttl": f"{LEASE_TTL.total_seconds():g}s",
                "secret_renew_before": f"{RENEW_BEFORE.total_seconds():g}s",
            },
            log_format="json",
            resolver_enabled=False,
        )
        log_path = self.tmp / f"d{index}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                azsidecar("daemon", "--config", str(config), "--metrics-addr", f"127.0.0.1:{port}"),
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
        replica = Replica(index, port, proc, log_path)
        self.all.append(replica)
        return replica

    @property
    def alive(self) -> list[Replica]:
        return [r for r in self.all if r.killed_real is None and r.proc.poll() is None]

    def kill(self, replica: Replica) -> None:
        replica.proc.send_signal(signal.SIGKILL)
        replica.killed_real = time.time()
        replica.proc.wait(timeout=10)


@pytest.mark.slow
def test_two_replicas_with_the_leader_killed_repeatedly_for_48_hours(
    world: World, tmp_path: Path
) -> None:
    first_secrets = world.time.now()
    integrations = create_integrations(world, count=4, tenants=2)
    names = [name for name, _ in integrations]
    apps = {name: world.store.integration(name)[0].app_object_id for name in names}
    policy = replace(world.config.timing, lease_ttl=LEASE_TTL, secret_renew_before=RENEW_BEFORE)
    calls = world.emu.state.calls
    world.emu.state.clock.set_factor(FACTOR)
    clock = world.emu.state.clock.to_dict()

    def emulated(real: float) -> datetime:
        at = clock["origin_virtual"] + (real - clock["origin_real"]) * clock["factor"]
        return datetime.fromtimestamp(at, tz=UTC)

    replicas = Replicas(world, tmp_path, azsidecar_env(world.config.vault.token or ""))
    kills: list[Kill] = []
    pending: Kill | None = None
    kill_times = [first_secrets + timedelta(hours=h) for h in KILLS_AT]
    hold_prefix = f"/graph/v1.0/applications/{apps[names[0]]}/addPassword"
    hold_since: int | None = None  # the call log's index when the hold was armed
    held = False
    samples = max_held = max_intents = both_leaders = 0
    run_start = world.time.now()
    end = run_start + timedelta(hours=HOURS)
    started_real = time.monotonic()
    try:
        replicas.start()
        replicas.start()
        while world.time.now() < end:
            now = world.time.now()
            for name in names:
                stored = world.store.credentials(name, repair=False)
                choice = choose_ready(stored, now, policy)
                assert isinstance(choice, Ready), f"{name} had no ready secret at {now}: {choice}"
                intents, _ = world.store.intents(name)
                max_intents = max(max_intents, len(intents))
                max_held = max(max_held, len(world.azure_secrets(apps[name])))
            samples += 1
            alive = replicas.alive
            assert len(alive) == 2, [r.proc.returncode for r in replicas.all]
            polled = pending is not None or samples % 5 == 0
            leaders = [r for r in alive if r.is_leader()] if polled else []
            both_leaders += len(leaders) > 1
            if pending is not None:
                if leaders:
                    pending.took_over = leaders[0].index
                    pending.takeover_real = time.time() - pending.real
                    pending.takeover_emulated = (
                        world.time.now() - pending.emulated
                    ).total_seconds()
                    pending = None
            elif hold_since is None and now >= first_secrets + HOLD_AT:
                # Graph throttles one integration's next addPassword for an emulated hour.
                hold_since = calls.next_index
                world.emu.state.faults.fail_next(
                    1, status=429, prefix=hold_prefix, retry_after=HOLD_RETRY_AFTER
                )
            elif (
                not held
                and hold_since is not None
                and calls.query(since=hold_since, path_prefix=hold_prefix, status=429)
            ):
                # The leader is waiting out the Retry-After with its intent recorded.
                pending = _kill_leader(replicas, kills, world, mid_rotation=True)
                if pending is not None:
                    held = True
                    intents, _ = world.store.intents(names[0])
                    assert len(intents) == 1, "the kill should have interrupted a rotation"
            elif kill_times and now >= kill_times[0]:
                pending = _kill_leader(replicas, kills, world)
                if pending is not None:
                    kill_times.pop(0)
            time.sleep(SAMPLE)
        run_real = time.monotonic() - started_real
        for replica in replicas.alive:
            replica.proc.send_signal(signal.SIGTERM)
        for replica in replicas.alive:
            assert replica.proc.wait(timeout=30) == 0
    finally:
        for replica in replicas.all:
            if replica.proc.poll() is None:
                replica.proc.kill()
                replica.proc.wait()

    # -- who rotated, from the emulator's call log and the daemons' own logs ---------------
    added_at: dict[str, list[float]] = {name: [] for name in names}  # emulated epoch seconds
    for c in calls.query(kind="graph", path_prefix="/graph/v1.0/applications/"):
        if c.path.endswith("/addPassword") and c.status in (200, 201):
            added_at[_integration_of(c.path, apps)].append(c.time)
    added = Counter({name: len(times) for name, times in added_at.items()})
    gaps = [(b - a) / 3600 for times in added_at.values() for a, b in pairwise(times)]
    created: list[tuple[float, int, str]] = []  # (real time, replica, integration)
    orphans: Counter[str] = Counter()
    lease_events: dict[int, list[tuple[float, bool]]] = {}
    errors: list[str] = []
    for replica in replicas.all:
        for when, level, message in replica.events():
            if match := _CREATED.search(message):
                created.append((when, replica.index, match.group(1)))
            elif (match := _REMOVED.search(message)) and "orphan" in match.group(2):
                orphans[match.group(1)] += 1
            elif message.endswith("the leader lease"):
                lease_events.setdefault(replica.index, []).append(
                    (when, message.startswith("acquired"))
                )
            if level == "error":
                errors.append(f"d{replica.index}: {message[:160]}")
    created.sort()
    rotations = {
        name: world.store.kv.read_metadata(f"credentials/{name}").current_version - 1
        for name in names
    }
    order = [replica for _, replica, _ in created]
    timeline = [
        (round((emulated(when) - first_secrets).total_seconds() / 3600, 1), f"d{replica}", name)
        for when, replica, name in created
    ]
    blocks = [r for i, r in enumerate(order) if i == 0 or order[i - 1] != r]
    takeovers = [k for k in kills if k.takeover_real is not None]
    delays = [
        (
            f"d{k.replica}->d{k.took_over}",
            round(k.takeover_real or 0, 1),
            round((k.takeover_emulated or 0) / 60),
        )
        for k in kills
    ]
    print(
        f"\n{HOURS} emulated hours at x{FACTOR:g} in {run_real:.0f} s real;"
        f" {len(replicas.all)} daemon processes, {samples} samples"
        f"\nkills: {len(kills)} ({sum(k.mid_rotation for k in kills)} mid-rotation), at emulated"
        f" {[round((k.emulated - first_secrets).total_seconds() / 3600, 1) for k in kills]} h"
        f"\ntakeovers (killed->new leader, real s, emulated min):"
        f" {delays}"
        f"\nrotations per integration (Vault): {rotations}; addPassword successes: {dict(added)};"
        f" orphans removed: {dict(orphans)}; shortest gap between two: {min(gaps):.1f} h"
        f"\ncreations (emulated h, daemon, integration): {timeline}"
        f"\nmax secrets held: {max_held},"
        f" max intents open: {max_intents}, samples with two leaders: {both_leaders}"
        f"\nerror log lines: {len(errors)} {errors[:5]}"
    )
    # Kills happened as planned, and another daemon took over after each one.
    assert len(kills) == len(KILLS_AT) + 1
    assert sum(k.mid_rotation for k in kills) == 1
    assert len(takeovers) == len(kills)
    assert all((k.takeover_emulated or 0) <= 2.5 * LEASE_TTL.total_seconds() for k in kills)
    # Exactly one rotation per integration per renewal (20 h and 40 h), nothing extra:
    # every addPassword that succeeded is a stored secret or an orphan that was removed.
    assert rotations == dict.fromkeys(names, 2)
    assert dict(added) == {name: 1 + rotations[name] + orphans[name] for name in names}
    assert max_held <= 3
    # A second rotator would add a secret minutes after the first; renewals of one
    # integration come secret_lifetime - secret_renew_before (20 h) apart, or later.
    if not orphans:
        assert min(gaps) >= 19, gaps
    assert max_intents <= 1
    # One rotator at a time: each secret was created by a daemon holding the lease,
    # and each daemon's creations are one unbroken run (leaders change only by kills).
    assert len(blocks) == len(set(blocks)), order
    for when, creator, _ in created:
        states = [acquired for at, acquired in lease_events.get(creator, []) if at <= when]
        assert states and states[-1], f"d{creator} created a secret without the lease"
    # No orphans: after a last pass, Azure holds exactly the secrets Vault has.
    runtime = Runtime(
        config=replace(world.config, timing=policy), clock=world.time, store=world.store
    )
    last = Daemon(runtime, holder="final-check")
    assert last.tick(), last.health.last_error
    for name in names:
        assert world.our_key_ids(apps[name]) == {c.key_id for c in world.store.credentials(name)}
        assert world.store.intents(name)[0] == []


def _kill_leader(
    replicas: Replicas, kills: list[Kill], world: World, *, mid_rotation: bool = False
) -> Kill | None:
    """SIGKILL the one daemon that says it leads and start a replacement; None if none does."""
    leaders = [r for r in replicas.alive if r.is_leader()]
    if len(leaders) != 1:
        return None
    replicas.kill(leaders[0])
    kill = Kill(leaders[0].index, time.time(), world.time.now(), mid_rotation)
    kills.append(kill)
    replicas.start()
    return kill


def _integration_of(path: str, apps: dict[str, str]) -> str:
    return next(name for name, app in apps.items() if f"/{app}/" in path)
