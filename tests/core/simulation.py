"""An in-memory Azure application and Vault, and a daemon that drives the planner.

Azure here has replica lag: a listing may omit a credential added, and still
show one removed, less than ``LAG`` ago. The daemon can crash between any
two steps of the actions it applies, restart a few minutes later, miss
ticks during outages and see the Graph listing fail. After every tick the
simulation checks the invariants, and between ticks it checks that a ready
secret exists at every instant (at each moment the answer could change).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sidecar.clock import ManualClock
from sidecar.model import (
    AzureCredential,
    Intent,
    StoredCredential,
    credential_display_name,
    intent_of,
)
from sidecar.ready import Ready, choose_ready
from sidecar.rotation.planner import (
    MAX_OURS,
    Action,
    ClearIntent,
    CreateSecret,
    DestroyStored,
    IntegrationState,
    RemoveAzureCredential,
    plan,
    replan_at,
)
from sidecar.timing import TimingPolicy

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LAG = timedelta(minutes=10)
RESTART = timedelta(minutes=5)


@dataclass
class Entry:
    key_id: str
    display_name: str
    added: datetime
    end: datetime
    removed: datetime | None = None


class FakeAzure:
    """One application's password credentials, as seen by randomly chosen replicas."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.entries: dict[str, Entry] = {}
        self._serial = 0

    def add(self, display_name: str, now: datetime, end: datetime) -> Entry:
        self._serial += 1
        entry = Entry(f"key-{self._serial}", display_name, now, end)
        self.entries[entry.key_id] = entry
        return entry

    def remove(self, key_id: str, now: datetime) -> None:
        entry = self.entries.get(key_id)
        if entry is not None and entry.removed is None:
            entry.removed = now

    def listing(self, now: datetime) -> tuple[AzureCredential, ...]:
        def seen(entry: Entry) -> bool:
            if entry.removed is not None:
                return now - entry.removed < LAG and self.rng.random() < 0.5
            return now - entry.added >= LAG or self.rng.random() < 0.5

        return tuple(
            AzureCredential(e.key_id, e.display_name, e.added, e.end)
            for e in self.entries.values()
            if seen(e)
        )

    def held(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.removed is None]


@dataclass
class FakeVault:
    stored: dict[int, StoredCredential] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)
    last_version: int = 0


class Crash(Exception):
    """The daemon process died between two steps."""


@dataclass
class Executor:
    """Applies actions step by step, dying before step ``crash_at`` if set."""

    azure: FakeAzure
    vault: FakeVault
    lifetime: timedelta
    serial: int  # intents made so far, for unique ids
    crash_at: int | None = None
    steps: int = 0

    def step(self) -> None:
        if self.crash_at is not None and self.steps >= self.crash_at:
            raise Crash
        self.steps += 1

    def apply(self, actions: list[Action], now: datetime) -> None:
        for action in actions:
            self.step()
            match action:
                case RemoveAzureCredential(key_id=key_id):
                    self.azure.remove(key_id, now)
                case DestroyStored(version=version):
                    self.vault.stored.pop(version, None)
                case ClearIntent(intent_id=intent_id):
                    self.vault.intents.pop(intent_id, None)
                case CreateSecret():
                    self.create(now)

    def create(self, now: datetime) -> None:
        self.serial += 1
        intent = Intent(f"sim{self.serial}", now)
        self.vault.intents[intent.intent_id] = intent
        self.step()
        entry = self.azure.add(credential_display_name(intent.intent_id), now, now + self.lifetime)
        self.step()
        self.vault.last_version += 1
        version = self.vault.last_version
        self.vault.stored[version] = StoredCredential(
            version, entry.key_id, intent.intent_id, now, entry.end
        )
        self.step()
        del self.vault.intents[intent.intent_id]


def step_count(actions: list[Action]) -> int:
    return sum(4 if isinstance(a, CreateSecret) else 1 for a in actions)


@dataclass(frozen=True)
class Weather:
    """How hostile the run is; every field is within what the policy absorbs."""

    seed: int
    listing_failure: float = 0.0
    crash: float = 0.0  # chance a tick with actions crashes (at most one per tick period)
    outage: float = 0.0  # chance the daemon is then away for up to max_outage
    max_outage: timedelta = timedelta(0)
    min_tick_fraction: float = 0.5  # ticks come every [fraction * tick, tick]
    honour_replan: bool = False
    foreign: int = 1


@dataclass
class Report:
    ticks: int = 0
    crashes: int = 0
    created: int = 0
    checks: int = 0
    history: list[tuple[datetime, tuple[StoredCredential, ...]]] = field(default_factory=list)


class InvariantBroken(AssertionError):
    pass


def simulate(policy: TimingPolicy, weather: Weather, days: int = 30) -> Report:
    rng = random.Random(weather.seed)
    azure, vault, report = FakeAzure(rng), FakeVault(), Report()
    foreign = {azure.add("ci-bootstrap", T0, T0 + timedelta(days=365)).key_id}
    for _ in range(weather.foreign - 1):
        foreign.add(azure.add("someone else", T0, T0 + timedelta(days=365)).key_id)
    clock, end = ManualClock(T0), T0 + timedelta(days=days)
    first_ready: datetime | None = None
    last_crash: datetime | None = None
    serial, now = 0, T0
    while now < end:
        report.ticks += 1
        listing = None if rng.random() < weather.listing_failure else azure.listing(now)
        state = IntegrationState("sim", tuple(vault.stored.values()), listing, _intents(vault))
        actions = plan(state, policy, now)
        crash_at = None
        may_crash = last_crash is None or now - last_crash >= policy.tick
        if actions and may_crash and rng.random() < weather.crash:
            crash_at = rng.randrange(step_count(actions))
        executor = Executor(azure, vault, policy.secret_lifetime, serial, crash_at)
        try:
            executor.apply(actions, now)
            crashed = False
        except Crash:
            crashed, last_crash = True, now
            report.crashes += 1
        serial = executor.serial
        _check_tick(azure, vault, foreign, now, listing is not None and not crashed)
        if first_ready is None and vault.stored:
            first_ready = min(c.created for c in vault.stored.values()) + policy.propagation_delay
        report.history.append((now, tuple(vault.stored.values())))

        after = IntegrationState("sim", tuple(vault.stored.values()), None, _intents(vault))
        if crashed:
            later = now + RESTART * rng.random()
        elif not vault.intents and rng.random() < weather.outage:
            later = now + weather.max_outage * rng.random()
        else:
            later = now + policy.tick * rng.uniform(weather.min_tick_fraction, 1.0)
            wake = replan_at(after, policy, now) if weather.honour_replan else None
            if wake is not None:
                later = min(later, wake)
        later = min(later, end)
        if first_ready is not None:
            report.checks += _check_ready(azure, vault, policy, max(now, first_ready), later)
        clock.set(later)
        now = clock.now()
    report.created = vault.last_version
    return report


def _intents(vault: FakeVault) -> tuple[Intent, ...]:
    return tuple(vault.intents.values())


def _check_tick(
    azure: FakeAzure, vault: FakeVault, foreign: set[str], now: datetime, completed: bool
) -> None:
    held = azure.held()
    ours = [e for e in held if intent_of(e.display_name) is not None]
    if len(ours) > MAX_OURS:
        raise InvariantBroken(f"{now}: Azure holds {len(ours)} of our secrets")
    if any(azure.entries[k].removed is not None for k in foreign):
        raise InvariantBroken(f"{now}: someone else's credential was removed")
    stored_keys = {c.key_id for c in vault.stored.values()}
    for c in vault.stored.values():
        if c.expires > now and azure.entries[c.key_id].removed is not None:
            raise InvariantBroken(f"{now}: live stored secret {c.key_id} is not in Azure")
    if completed:
        for e in ours:
            if e.key_id not in stored_keys and now - e.added >= LAG:
                raise InvariantBroken(f"{now}: orphan {e.key_id} survived a tick that saw it")


def _check_ready(
    azure: FakeAzure, vault: FakeVault, policy: TimingPolicy, start: datetime, stop: datetime
) -> int:
    """Check every instant of [start, stop): the answer only changes at these moments."""
    stored = tuple(vault.stored.values())
    moments = {start}
    for c in stored:
        for m in (c.created + policy.propagation_delay, c.expires - policy.ready_safety_margin):
            if start < m < stop:
                moments.add(m)
    for t in moments:
        outcome = choose_ready(stored, t, policy)
        if not isinstance(outcome, Ready):
            raise InvariantBroken(f"{t}: no ready secret ({outcome.reason})")
        entry = azure.entries[outcome.credential.key_id]
        if entry.removed is not None or t - entry.added < LAG:
            raise InvariantBroken(f"{t}: ready secret {entry.key_id} is not on every replica")
    return len(moments)
