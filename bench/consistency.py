"""Issue 8.3: how often a run fails to authenticate, per strategy and replication-lag profile.

An in-process simulation, no HTTP, so that millions of runs fit in seconds,
built from the product's and the emulator's own parts:

* the daemon is the real pure planner (:func:`sidecar.rotation.planner.plan`)
  woken as the daemon wakes (every ``tick`` and at
  :func:`~sidecar.rotation.planner.replan_at`), observing the application
  through a random replica as ``GET /applications/{id}`` does;
* Azure AD is the emulator's :class:`~sidecar.emulator.replicas.ReplicatedStore`
  with lags from its named :class:`~sidecar.emulator.replicas.LagProfile`:
  a write is seen at once by the replica that took it (a random one) and by
  each other replica after a sampled lag;
* a run of the product is handed :func:`sidecar.ready.choose_ready`'s secret
  and signs in at a random replica; it fails (``AADSTS7000215``) when that
  replica does not list the secret yet, exactly the emulator's token check.

The strategies compared, each for every stack every emulated minute:

* ``azsidecar``: the product with its default configuration, which since
  issue 20 includes verified readiness: the daemon probes each new secret
  (sign-ins on fresh connections, each at a random replica, as
  :mod:`sidecar.probes.rule` schedules them, starting at creation) and the
  ready rule needs the probe window covered as well as the time rule;
* ``azsidecar-time-only``: the product as before issue 20 (``probes = false``);
* ``azsidecar-tuned``: the time-only product configured for a 30-minute replica
  (``propagation_delay`` 35m, ``intent_timeout`` 40m, ``secret_renew_before`` 2h30m);
* ``mint-in-run``: the run adds a secret and signs in at once (what
  ``terraform init``/``plan`` does first; later sign-ins of an apply are not modelled);
* ``mint+sleep60``: the same, signing in 60 s after minting;
* ``azsidecar-certificate``: the product with its default configuration for
  integrations of kind certificate (issue 19): the same planner wanting
  certificates, each created key credential a write to the replicated store
  like a secret, probed the same way (the daemon's certificate probes are
  client-assertion sign-ins at a random replica, refused exactly when that
  replica does not list the key), and a run handed
  :func:`sidecar.ready.choose_for_kind`'s certificate signs in at a random
  replica, failing (``AADSTS700027``) when that replica does not list the key,
  the emulator's token check for client assertions;
* ``upload-cert-in-run``: the run uploads a new certificate and signs in with
  it at once (the certificate analogue of ``mint-in-run``).

Not modelled for certificates: Graph's proof of possession (the planner names
the key that signs each ``addKey``/``removeKey``, counted in the events, but
the call always succeeds here, whatever replica serves it), ``PATCH`` replacing
the whole ``keyCredentials`` collection (concurrent writers never race), limits
on the number of keys, and the time a run spends building its PKCS#12 bundle.

Minted secrets are modelled as independent writes (one per run); on a real
application a minute apart, in-order replication could only add lag.

The figure is checked against the real HTTP emulator: :func:`validate_http`
mints secrets (or uploads certificates) through Graph and signs in through the
token endpoint, and its failure fraction must agree with the simulation's.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.emulator.replicas import PROFILES, LagProfile, ReplicatedStore, resolve_stuck
from sidecar.graph import (
    ARM_SCOPE,
    CertificateCredential,
    GraphClient,
    acquire_token_with_certificate,
)
from sidecar.keypairs import generate_key_pair
from sidecar.model import (
    AzureCredential,
    CredentialKind,
    StoredCredential,
    credential_display_name,
)
from sidecar.probes import rule as probe_rule
from sidecar.probes.rule import ProbeRecord
from sidecar.ready import Ready, choose_for_kind, ready_from, usable_until
from sidecar.rotation.planner import (
    ClearIntent,
    CreateCertificate,
    CreateSecret,
    DestroyStored,
    IntegrationState,
    RemoveAzureCredential,
    plan,
    replan_at,
)
from sidecar.sensitive import Sensitive
from sidecar.timing import TimingPolicy

REPLICAS = 3
START = datetime(2026, 3, 1, tzinfo=UTC)
PROFILE_NAMES = ("default", "heavy", "stuck-replica", "stuck-2h")
TUNED = TimingPolicy(
    propagation_delay=timedelta(minutes=35),
    intent_timeout=timedelta(minutes=40),
    secret_renew_before=timedelta(hours=2, minutes=30),
    probes=False,
)
PRODUCT_STRATEGIES: dict[str, TimingPolicy] = {
    "azsidecar": TimingPolicy(),
    "azsidecar-time-only": TimingPolicy(probes=False),
    "azsidecar-tuned": TUNED,
}
#: The issue-20 experiment, reported and not the default: a new integration's only
#: secret may go out 2 minutes after creation once probes verified it over a
#: shorter window.
EXPERIMENTS: dict[str, TimingPolicy] = {
    "floor2m+probes(window 2m)": TimingPolicy(
        new_integration_floor=timedelta(minutes=2), probe_window=timedelta(minutes=2)
    ),
    "floor2m+probes(window 5m)": TimingPolicy(
        new_integration_floor=timedelta(minutes=2), probe_window=timedelta(minutes=5)
    ),
}
MINT_STRATEGIES: dict[str, float] = {"mint-in-run": 0.0, "mint+sleep60": 60.0}
#: Issue 19: the same comparison for integrations of kind certificate.
CERTIFICATE_STRATEGIES: dict[str, TimingPolicy] = {"azsidecar-certificate": TimingPolicy()}
UPLOAD_STRATEGIES: dict[str, float] = {"upload-cert-in-run": 0.0}
STRATEGIES = (*PRODUCT_STRATEGIES, *MINT_STRATEGIES, *CERTIFICATE_STRATEGIES, *UPLOAD_STRATEGIES)

Listing = tuple[AzureCredential, ...]


@dataclass
class Outcome:
    """One strategy under one lag profile."""

    runs: int = 0
    failures: int = 0
    waited: int = 0  # runs that found no ready secret (the helper would wait)
    ages: Counter[int] = field(default_factory=Counter)  # minutes -> runs
    events: Counter[str] = field(default_factory=Counter)
    #: Per secret the daemon created: the emulator's true lag (last replica to see it),
    #: and what the probes observed (first success, last refusal), in seconds.
    true_lag: list[float] = field(default_factory=list)
    observed_first: list[float] = field(default_factory=list)
    observed_last_failure: list[float] = field(default_factory=list)
    probe_sign_ins: list[int] = field(default_factory=list)
    #: Minutes some integration's newest secret was refused past its delay (health degraded).
    probe_failing_minutes: int = 0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.runs if self.runs else 0.0

    def to_dict(self) -> dict[str, Any]:
        rate = self.failure_rate
        # Upper bound of a 95% interval: the "rule of three" when nothing failed.
        upper = 3.0 / self.runs if self.failures == 0 and self.runs else None
        return {
            "runs": self.runs,
            "failures": self.failures,
            "failure_rate": rate,
            "failure_rate_upper95": upper,
            "waited": self.waited,
            "events": dict(self.events),
            "age_minutes": _age_summary(self.ages),
            **self.lag_dict(),
        }

    def lag_dict(self) -> dict[str, Any]:
        if not self.true_lag:
            return {}
        out: dict[str, Any] = {"true_lag_s": _quantiles(self.true_lag)}
        if self.probe_sign_ins:
            out |= {
                "observed_first_success_s": _quantiles(self.observed_first),
                "observed_last_failure_s": _quantiles(self.observed_last_failure),
                "probes_per_rotation": {
                    "mean": sum(self.probe_sign_ins) / len(self.probe_sign_ins),
                    "max": max(self.probe_sign_ins),
                },
                "probe_failing_minutes": self.probe_failing_minutes,
            }
        return out


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def q(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": ordered[-1], "n": len(ordered)}


def _age_summary(ages: Counter[int]) -> dict[str, Any]:
    total = sum(ages.values())
    if not total:
        return {}
    ordered = sorted(ages.items())

    def quantile(q: float) -> int:
        seen = 0
        for age, count in ordered:
            seen += count
            if seen >= q * total:
                return age
        return ordered[-1][0]

    return {
        "min": ordered[0][0],
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "max": ordered[-1][0],
        "histogram": {str(k): v for k, v in ordered},
    }


def _visibility(rng: random.Random, profile: LagProfile, now: float) -> list[float]:
    """As :meth:`EmulatorState._visibility`: the replica that took the write sees it at once."""
    primary = rng.randrange(REPLICAS)
    return [now if i == primary else now + profile.sample(rng, i) for i in range(REPLICAS)]


class _Integration:
    """One integration: Vault's index (``stored``) and the application in Azure AD.

    ``azure`` holds the application's credentials of the integration's ``kind``:
    its client secrets, or its certificate credentials (``keyCredentials``).
    """

    def __init__(self, name: str, kind: CredentialKind = CredentialKind.SECRET) -> None:
        self.name = name
        self.kind = kind
        self.stored: list[StoredCredential] = []
        self.azure: ReplicatedStore[Listing] = ReplicatedStore()
        self.next_version = 1
        #: When each replica starts listing a key: the (order-clamped) visibility
        #: of the write that added it. It stays listed until removed, and only
        #: expired keys or keys Vault does not hold are ever removed.
        self.seen_from: dict[str, list[float]] = {}
        #: Probe records by version, as (time, record) after each round, until verified.
        self.timelines: dict[int, list[tuple[float, ProbeRecord]]] = {}
        self.stored_ever: list[StoredCredential] = []
        self.timelines_ever: dict[int, list[tuple[float, ProbeRecord]]] = {}

    def current(self) -> Listing:
        return self.azure.latest(self.name) or ()

    def state(self, listing: Listing | None) -> IntegrationState:
        """The planner's input, ``listing`` being what Graph returned for our kind."""
        if self.kind is CredentialKind.SECRET:
            return IntegrationState(self.name, tuple(self.stored), listing, ())
        return IntegrationState(self.name, tuple(self.stored), (), (), kind=self.kind, keys=listing)

    def lifetime(self, policy: TimingPolicy) -> timedelta:
        if self.kind is CredentialKind.SECRET:
            return policy.secret_lifetime
        return policy.client_certificate_lifetime

    def write(self, listing: Listing, rng: random.Random, profile: LagProfile, now: float) -> None:
        self.azure.write(self.name, listing, _visibility(rng, profile, now), now)

    def create(
        self, now: datetime, policy: TimingPolicy, rng: random.Random, profile: LagProfile
    ) -> None:
        intent = uuid.UUID(int=rng.getrandbits(128)).hex
        key_id = str(uuid.UUID(int=rng.getrandbits(128)))
        expires = now + self.lifetime(policy)
        credential = AzureCredential(key_id, credential_display_name(intent), now, expires)
        self.write((*self.current(), credential), rng, profile, now.timestamp())
        self.seen_from[key_id] = list(self.azure.history(self.name)[-1].visible_at)
        self.stored.append(
            StoredCredential(self.next_version, key_id, intent, now, expires, self.kind)
        )
        self.stored_ever.append(self.stored[-1])
        if policy.probes:
            self.timelines[self.next_version] = _probe_timeline(
                self.next_version, self.seen_from[key_id], now, expires, policy, rng
            )
            self.timelines_ever[self.next_version] = self.timelines[self.next_version]
        self.next_version += 1

    def visible(self, key_id: str, replica: int, now: float) -> bool:
        """The emulator's own answer: the replica's view of the application lists the key."""
        listing = self.azure.read(self.name, replica, now) or ()
        return any(c.key_id == key_id for c in listing)

    def probes_at(self, now: float) -> dict[int, ProbeRecord]:
        """Each probed secret's record as the readers see it at ``now``."""
        found = {}
        for version, timeline in self.timelines.items():
            record = timeline[0][1]
            for at, after in timeline:
                if at > now:
                    break
                record = after
            found[version] = record
        return found

    def next_probe(self, now: float) -> float:
        return min(
            (at for line in self.timelines.values() for at, _ in line if at > now),
            default=math.inf,
        )


def _probe_timeline(
    version: int,
    seen_from: list[float],
    created: datetime,
    expires: datetime,
    policy: TimingPolicy,
    rng: random.Random,
) -> list[tuple[float, ProbeRecord]]:
    """The daemon's probes of one secret: a round every ``probe_interval`` from creation,
    ``probe_sign_ins`` sign-ins each on a new connection (a random replica), until verified.

    A sign-in succeeds exactly when the emulator's token check would: the replica
    serving it lists the key. The first entry is the pending record (at creation).
    """
    record = probe_rule.pending(version, policy.propagation_delay)
    start = created.timestamp()
    timeline = [(start, record)]
    at = start
    while not probe_rule.verified(record, policy) and at < expires.timestamp():
        when = datetime.fromtimestamp(at, UTC)
        for _ in range(policy.probe_sign_ins):
            replica = rng.randrange(REPLICAS)
            record = probe_rule.observe(record, at >= seen_from[replica], when)
        # A reader sees the round once its record is written (whole seconds, rounded up).
        timeline.append((float(math.ceil(at)), record))
        at += policy.probe_interval.total_seconds()
    return timeline


def _daemon_event(
    item: _Integration,
    now: datetime,
    policy: TimingPolicy,
    rng: random.Random,
    profile: LagProfile,
    outcome: Outcome,
) -> None:
    """One daemon wake for one integration: observe through a random replica, plan, apply."""
    listing = item.azure.read(item.name, rng.randrange(REPLICAS), now.timestamp()) or ()
    for action in plan(item.state(listing), policy, now):
        if isinstance(action, CreateCertificate):
            how = "PATCH" if action.proof_version is None else "addKey"
            outcome.events[f"create-certificate:{how}"] += 1
        match action:
            case RemoveAzureCredential(key_id=key_id, reason=reason):
                kept = tuple(c for c in item.current() if c.key_id != key_id)
                if len(kept) != len(item.current()):
                    item.write(kept, rng, profile, now.timestamp())
                outcome.events["remove:" + reason.split(" ")[0]] += 1
            case DestroyStored(version=version, reason=reason):
                item.stored = [c for c in item.stored if c.version != version]
                item.timelines.pop(version, None)
                outcome.events["destroy:" + reason.split(";")[0]] += 1
            case CreateSecret():
                item.create(now, policy, rng, profile)
                outcome.events["create"] += 1
            case ClearIntent():
                outcome.events["clear-intent"] += 1


def simulate_product(
    policy: TimingPolicy,
    profile: LagProfile,
    *,
    integrations: int,
    days: float,
    seed: int,
    check: bool = False,
    kind: CredentialKind = CredentialKind.SECRET,
) -> Outcome:
    """The daemon keeps ``integrations`` of ``kind`` supplied; each runs once a minute
    for ``days``."""
    rng = random.Random(seed)
    profile = resolve_stuck(profile, REPLICAS)
    outcome = Outcome()
    runs_from = START + timedelta(days=1)
    runs_until = runs_from + timedelta(days=days)
    random_ = rng.random
    end = runs_until.timestamp()
    for index in range(integrations):
        item = _Integration(f"int-{index}", kind)
        # Integrations appear over the first 22 h; each gets its first secret at once.
        created = START + timedelta(seconds=rng.uniform(0, 22 * 3600))
        item.create(created, policy, rng, profile)
        tick = START + policy.tick * math.ceil((created - START) / policy.tick)
        wake = _next_wake(item, policy, created, tick)
        wake_ts = wake.timestamp()
        now = runs_from.timestamp()
        key_id = ""
        seen_from: list[float] = []
        born = 0.0
        probe_failing = False
        valid_until = now  # the cached choice holds until then (or a daemon wake)
        while now < end:
            if wake_ts <= now:
                while wake_ts <= now:
                    _daemon_event(item, wake, policy, rng, profile, outcome)
                    if wake >= tick:
                        tick += policy.tick
                    wake = _next_wake(item, policy, wake, tick)
                    wake_ts = wake.timestamp()
                valid_until = now  # the stored secrets may have changed
            if now >= valid_until:
                at = datetime.fromtimestamp(now, UTC)
                probes = item.probes_at(now)
                found = choose_for_kind(item.stored, item.kind, at, policy, probes)
                key_id = found.credential.key_id if isinstance(found, Ready) else ""
                if key_id:
                    seen_from = item.seen_from[key_id]
                    born = found.credential.created.timestamp()  # type: ignore[union-attr]
                failing = any(
                    probe_rule.state(probes[c.version], c.created, policy, at)
                    is probe_rule.ProbeState.FAILING
                    for c in item.stored
                    if c.version in probes
                )
                valid_until = min(
                    wake_ts,
                    _next_boundary(item.stored, at, policy).timestamp(),
                    item.next_probe(now),
                    now + 60.0 if failing else math.inf,
                )
                probe_failing = failing
            outcome.probe_failing_minutes += probe_failing
            if not key_id:
                outcome.waited += 1
            else:
                replica = int(random_() * REPLICAS)
                failed = now < seen_from[replica]
                if check:
                    _check(item, policy, now, key_id, replica, failed)
                outcome.runs += 1
                outcome.failures += failed
                outcome.ages[int((now - born) // 60)] += 1
            now += 60.0
        _record_lags(item, outcome)
    return outcome


def _record_lags(item: _Integration, outcome: Outcome) -> None:
    for credential in item.stored_ever:
        seen = item.seen_from[credential.key_id]
        created = credential.created.timestamp()
        outcome.true_lag.append(max(seen) - created)
        timeline = item.timelines_ever.get(credential.version)
        if not timeline:
            continue
        record = timeline[-1][1]
        outcome.probe_sign_ins.append(record.sign_ins)
        if record.first_success is not None:
            outcome.observed_first.append(record.first_success.timestamp() - created)
        last = record.last_failure
        outcome.observed_last_failure.append(0.0 if last is None else last.timestamp() - created)


def simulate_new_integrations(
    policy: TimingPolicy, profile: LagProfile, *, integrations: int, seed: int
) -> Outcome:
    """New integrations whose first run is waiting: from creation, a run every minute
    for 3 hours, each taking the ready secret (if any) to a random replica.

    ``waited`` counts the minutes a run waited; ``ages`` holds, per integration,
    the minutes from creation to its first handed-out credential.
    """
    rng = random.Random(seed)
    profile = resolve_stuck(profile, REPLICAS)
    outcome = Outcome()
    for index in range(integrations):
        item = _Integration(f"new-{index}")
        created = START + timedelta(seconds=rng.uniform(0, 86400))
        item.create(created, policy, rng, profile)
        [credential] = item.stored
        seen = item.seen_from[credential.key_id]
        start = created.timestamp()
        first: float | None = None
        for minute in range(180):
            now = start + 60.0 * minute
            found = choose_for_kind(
                item.stored,
                item.kind,
                datetime.fromtimestamp(now, UTC),
                policy,
                item.probes_at(now),
            )
            if not isinstance(found, Ready):
                outcome.waited += 1
                continue
            if first is None:
                first = now
                outcome.ages[minute] += 1
            outcome.runs += 1
            outcome.failures += now < seen[int(rng.random() * REPLICAS)]
        if first is None:
            outcome.events["no-credential-in-3h"] += 1
    return outcome


def simulate_new_mint(
    delay: float, profile: LagProfile, *, integrations: int, seed: int
) -> Outcome:
    """A new integration's runs when each mints its own secret (no wait for a credential)."""
    outcome = simulate_mint(delay, profile, integrations=integrations, days=180 / 1440, seed=seed)
    outcome.ages = Counter({int(delay // 60): integrations})
    return outcome


def _check(
    item: _Integration, policy: TimingPolicy, now: float, key_id: str, replica: int, failed: bool
) -> None:
    """Recompute a run the slow way: the ready rule and the emulator's replica view."""
    fresh = choose_for_kind(
        item.stored, item.kind, datetime.fromtimestamp(now, UTC), policy, item.probes_at(now)
    )
    assert isinstance(fresh, Ready) and fresh.credential.key_id == key_id, f"choice at {now}"
    assert failed == (not item.visible(key_id, replica, now)), f"visibility at {now}"


def _next_wake(item: _Integration, policy: TimingPolicy, now: datetime, tick: datetime) -> datetime:
    replan = replan_at(item.state(None), policy, now)
    return tick if replan is None else min(tick, replan)


def _next_boundary(stored: list[StoredCredential], now: datetime, policy: TimingPolicy) -> datetime:
    """The next instant at which :func:`choose_ready` could answer differently."""
    moments = [m for c in stored for m in (ready_from(c, policy), usable_until(c, policy))]
    return min((m for m in moments if m > now), default=datetime.max.replace(tzinfo=UTC))


def simulate_mint(
    delay: float, profile: LagProfile, *, integrations: int, days: float, seed: int
) -> Outcome:
    """Every run mints a secret and signs in ``delay`` seconds later at a random replica."""
    rng = random.Random(seed)
    profile = resolve_stuck(profile, REPLICAS)
    runs = int(integrations * days * 24 * 60)
    random_, sample = rng.random, profile.sample
    failures = 0
    for _ in range(runs):
        primary = int(random_() * REPLICAS)
        replica = int(random_() * REPLICAS)
        if replica != primary and sample(rng, replica) > delay:
            failures += 1
    outcome = Outcome(runs=runs, failures=failures)
    outcome.ages[int(delay // 60)] = runs
    return outcome


# -- validation against the HTTP emulator ---------------------------------------------


class _EmulatorTime:
    """The product's Clock over the emulator's manual clock."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), tz=UTC)

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)


def validate_http(
    trials: int,
    delay: float,
    profile: str = "default",
    seed: int = 11,
    certificate: bool = False,
) -> Outcome:
    """Mint through Graph and sign in ``delay`` s later at the token endpoint, ``trials`` times.

    With ``certificate``, each trial uploads a new certificate instead
    (``PATCH`` of ``keyCredentials``) and signs in with a client assertion
    signed by its key, as ``upload-cert-in-run`` does.
    """

    config = EmulatorConfig(clock_mode="manual", seed=seed, lag_profile=profile)
    outcome = Outcome()
    with EmulatorServer(config) as emu:
        state = emu.state
        state.clock.set(START.timestamp())
        tenant = state.seed_tenant(display_name="platform").tenant_id
        mgmt = state.seed_management_app(tenant)
        target = state.seed_application(tenant, "minted-in-run", owners=(mgmt.app_id,))
        clock = _EmulatorTime(state.clock)
        credential = CertificateCredential(
            cert_pem=mgmt.certificate_pem or "",
            key_pem=Sensitive(mgmt.private_key_pem or ""),
            thumbprint=(mgmt.thumbprint_sha1 or "").upper(),
        )
        graph = GraphClient(
            login_url=emu.base_url,
            graph_url=emu.graph_url,
            tenant_id=tenant,
            client_id=mgmt.app_id,
            credential=lambda: credential,
            clock=clock,
            ca_bundle=str(emu.ca_path),
        )
        lag_bound = resolve_stuck(state.lag, REPLICAS).max_lag
        for _ in range(trials):
            now = clock.now()
            if certificate:
                pair = generate_key_pair("run", now, timedelta(hours=1))
                key = graph.patch_add_key(target.object_id, pair.cert_der, "run")
                if delay:
                    state.clock.advance(delay)
                with emu.session() as session:
                    result = acquire_token_with_certificate(
                        login_url=emu.base_url,
                        tenant_id=tenant,
                        client_id=target.app_id,
                        cert_pem=pair.cert_pem,
                        key_pem=pair.key_pem,
                        thumbprint=pair.thumbprint,
                        session=session,
                    )
                outcome.runs += 1
                if "access_token" not in result:
                    codes = result.get("error_codes") or []
                    outcome.events[f"AADSTS{codes[0]}" if codes else "error"] += 1
                    outcome.failures += 1
                state.clock.advance(lag_bound + 1)
                graph.patch_remove_key(target.object_id, key.key_id)
                state.clock.advance(lag_bound + 1)
                continue
            minted = graph.add_password(target.object_id, "run", now + timedelta(hours=1))
            if delay:
                state.clock.advance(delay)
            # A run is a new process: its sign-in opens a new connection, which
            # the emulator (like Azure's front ends) routes to any replica.
            with emu.session() as session:
                response = session.post(
                    f"{emu.base_url}/{tenant}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": target.app_id,
                        "client_secret": minted.secret.reveal(),
                        "scope": ARM_SCOPE,
                    },
                    timeout=10,
                )
            outcome.runs += 1
            if response.status_code != 200:
                codes = response.json().get("error_codes") or []
                outcome.events[f"AADSTS{codes[0]}" if codes else str(response.status_code)] += 1
                outcome.failures += 1
            # Let the write replicate everywhere, then revoke it as a lease end would.
            state.clock.advance(lag_bound + 1)
            graph.remove_password(target.object_id, minted.key_id)
            state.clock.advance(lag_bound + 1)
    return outcome


def _new_integrations_and_experiments(
    integrations: int, days: float, seed: int, check: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """New integrations per strategy and profile; the lower-floor experiment in full."""
    new_table: dict[str, dict[str, Any]] = {}
    experiments: dict[str, dict[str, Any]] = {}
    strategies = {**PRODUCT_STRATEGIES, **EXPERIMENTS}
    for p_index, name in enumerate(PROFILE_NAMES):
        profile = PROFILES[name]
        for s_index, (strategy, policy) in enumerate(strategies.items()):
            new = simulate_new_integrations(
                policy, profile, integrations=integrations, seed=seed + 100 * p_index + 50 + s_index
            )
            new_table.setdefault(strategy, {})[name] = _first_credential(new)
        for s_index, (strategy, delay) in enumerate(MINT_STRATEGIES.items()):
            new = simulate_new_mint(
                delay, profile, integrations=integrations, seed=seed + 100 * p_index + 70 + s_index
            )
            new_table.setdefault(strategy, {})[name] = _first_credential(new)
        for s_index, (strategy, policy) in enumerate(EXPERIMENTS.items()):
            steady = simulate_product(
                policy,
                profile,
                integrations=integrations,
                days=days,
                seed=seed + 100 * p_index + 80 + s_index,
                check=check,
            )
            experiments.setdefault(strategy, {})[name] = {
                "rotations": steady.to_dict(),
                "new_integrations": new_table[strategy][name],
            }
    for strategy in EXPERIMENTS:
        rows = experiments[strategy].values()
        experiments[strategy]["zero_failures_on_every_profile"] = all(
            r["rotations"]["failures"] == 0 and r["new_integrations"]["failures"] == 0 for r in rows
        )
    return new_table, experiments


def _first_credential(outcome: Outcome) -> dict[str, Any]:
    firsts = [float(m) for m, n in outcome.ages.items() for _ in range(n)]
    return {
        "runs": outcome.runs,
        "failures": outcome.failures,
        "failure_rate": outcome.failure_rate,
        "waited_run_minutes": outcome.waited,
        "minutes_to_first_credential": _quantiles(firsts) if firsts else {},
        "events": dict(outcome.events),
    }


def _agrees(http: Outcome, simulated: Outcome) -> dict[str, Any]:
    p = simulated.failure_rate
    sd = math.sqrt(max(p * (1 - p), 1e-9) / max(http.runs, 1))
    tolerance = 4 * sd + 0.01
    return {
        "http_runs": http.runs,
        "http_failures": http.failures,
        "http_failure_rate": http.failure_rate,
        "http_errors": dict(http.events),
        "simulated_failure_rate": p,
        "tolerance": tolerance,
        "agrees": abs(http.failure_rate - p) <= tolerance,
    }


def run(quick: bool = False, seed: int = 20260301) -> dict[str, Any]:
    integrations, days = (20, 2.0) if quick else (100, 30.0)
    trials = 60 if quick else 200
    started = time.monotonic()
    table: dict[str, dict[str, Any]] = {}
    outcomes: dict[tuple[str, str], Outcome] = {}
    for p_index, name in enumerate(PROFILE_NAMES):
        profile = PROFILES[name]
        for s_index, (strategy, policy) in enumerate(PRODUCT_STRATEGIES.items()):
            outcomes[strategy, name] = simulate_product(
                policy,
                profile,
                integrations=integrations,
                days=days,
                seed=seed + 100 * p_index + s_index,
                check=quick,
            )
        for s_index, (strategy, delay) in enumerate(MINT_STRATEGIES.items()):
            outcomes[strategy, name] = simulate_mint(
                delay,
                profile,
                integrations=integrations,
                days=days,
                seed=seed + 100 * p_index + 10 + s_index,
            )
        for s_index, (strategy, policy) in enumerate(CERTIFICATE_STRATEGIES.items()):
            outcomes[strategy, name] = simulate_product(
                policy,
                profile,
                integrations=integrations,
                days=days,
                seed=seed + 100 * p_index + 20 + s_index,
                check=quick,
                kind=CredentialKind.CERTIFICATE,
            )
        for s_index, (strategy, delay) in enumerate(UPLOAD_STRATEGIES.items()):
            # An uploaded key credential replicates as a minted secret does, and the
            # token endpoint checks a client assertion's key as it checks a secret.
            outcomes[strategy, name] = simulate_mint(
                delay,
                profile,
                integrations=integrations,
                days=days,
                seed=seed + 100 * p_index + 30 + s_index,
            )
    for (strategy, name), outcome in outcomes.items():
        table.setdefault(strategy, {})[name] = outcome.to_dict()
    new_table, experiments = _new_integrations_and_experiments(
        integrations, days, seed, check=quick
    )
    validation = {
        strategy: _agrees(
            validate_http(trials, delay, "default", seed=seed + 7 + int(delay)),
            outcomes[strategy, "default"],
        )
        for strategy, delay in MINT_STRATEGIES.items()
    } | {
        strategy: _agrees(
            validate_http(trials, delay, "default", seed=seed + 37 + int(delay), certificate=True),
            outcomes[strategy, "default"],
        )
        for strategy, delay in UPLOAD_STRATEGIES.items()
    }
    return {
        "parameters": {
            "integrations": integrations,
            "days": days,
            "runs_per_stack": "one every emulated minute",
            "replicas": REPLICAS,
            "profiles": {n: resolve_stuck(PROFILES[n], REPLICAS).to_dict() for n in PROFILE_NAMES},
            "tuned_timing": {
                "propagation_delay": str(TUNED.propagation_delay),
                "intent_timeout": str(TUNED.intent_timeout),
                "secret_renew_before": str(TUNED.secret_renew_before),
            },
            "model": "mint strategies: one sign-in per run, right after minting (or 60 s "
            "later), at a random replica; product: the ready secret at a random replica; "
            "certificate strategies: the same with key credentials and client assertions "
            "(AADSTS700027), proofs of possession and PATCH races not modelled",
            "probes": {
                "interval": str(TimingPolicy().probe_interval),
                "window": str(TimingPolicy().probe_window),
                "sign_ins_per_round": TimingPolicy().probe_sign_ins,
                "model": "rounds from creation, each sign-in at a random replica, success "
                "iff that replica lists the key; stop when verified",
            },
            "new_integrations": "per profile, integrations x 1 new integration each, runs "
            "every minute for the first 3 hours after creation",
        },
        "results": table,
        "new_integrations": new_table,
        "experiments": experiments,
        "validation": validation,
        "seconds": time.monotonic() - started,
    }
