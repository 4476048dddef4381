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
  it at once (the certificate analogue of ``mint-in-run``);
* ``azsidecar-federated``: the product with its default configuration for
  integrations of kind federated (issue 18): the same planner wanting a
  federated identity credential (``POST .../federatedIdentityCredentials``, a
  write to the replicated store like a secret; it never expires, so an
  integration has one, created before its runs begin), probed the same way
  (the daemon's federated probes are client-assertion sign-ins with a token of
  our issuer at a random replica, refused with ``AADSTS70021`` exactly when
  that replica does not list the credential), and a run handed the federated
  credential signs in at a random replica, failing (``AADSTS70021``) when that
  replica does not list it. The signing key's publication (the issuer's own
  ready rule) is not modelled: every token here verifies;
* ``create-fic-in-run``: the run creates a federated identity credential
  trusting its token's issuer and subject and signs in with the token at once
  (the federated analogue of ``upload-cert-in-run``). A real naive run cannot
  even do this without a secret: writing the application's
  ``federatedIdentityCredentials`` takes ``Application.ReadWrite.OwnedBy`` or
  ``Application.ReadWrite.All`` in Graph
  (learn.microsoft.com/graph/api/application-post-federatedidentitycredentials),
  so the run needs a Graph identity that may rewrite the very application it
  signs in as, which defeats going secretless. The same page allows at most 20
  federated credentials per application, so a naive run must also delete its
  credential afterwards (modelled as it does: the cap never binds); the event
  ``refused-at-cap-without-delete`` counts the runs Graph would refuse if it
  did not (every run of an application after its 20th), and the HTTP check
  shows the emulator refusing the 21st (``http_created_before_cap``).

Not modelled for certificates: Graph's proof of possession (the planner names
the key that signs each ``addKey``/``removeKey``, counted in the events, but
the call always succeeds here, whatever replica serves it), ``PATCH`` replacing
the whole ``keyCredentials`` collection (concurrent writers never race), limits
on the number of keys, and the time a run spends building its PKCS#12 bundle.
Not modelled for federated credentials: the issuer's key publication and
Entra's key cache (a token always verifies), and a run's token lifetime.

Minted secrets are modelled as independent writes (one per run); on a real
application a minute apart, in-order replication could only add lag.

The figure is checked against the real HTTP emulator: :func:`validate_http`
mints secrets (or uploads certificates, or creates federated credentials
trusting an issuer the bench serves over HTTPS, :mod:`bench.issuer_site`)
through Graph and signs in through the token endpoint, and its failure
fraction must agree with the simulation's.

Each group of strategies is a :class:`Family` in :data:`FAMILIES`: a kind of
credential, the product's policies or the in-run delays, and where its seeds lie.
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.issuer_site import BenchIssuer
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.emulator.replicas import PROFILES, LagProfile, ReplicatedStore, resolve_stuck
from sidecar.errors import GraphError
from sidecar.graph import (
    ARM_SCOPE,
    CertificateCredential,
    GraphClient,
    acquire_token_with_assertion,
    acquire_token_with_certificate,
)
from sidecar.issuer.documents import ENTRA_AUDIENCE
from sidecar.keypairs import generate_key_pair
from sidecar.model import (
    FEDERATED_NEVER_EXPIRES,
    AzureCredential,
    CredentialKind,
    StoredCredential,
    credential_display_name,
    federated_credential_name,
)
from sidecar.probes import rule as probe_rule
from sidecar.probes.rule import ProbeRecord
from sidecar.ready import Ready, choose_for_kind, ready_from, usable_until
from sidecar.rotation.planner import (
    ClearIntent,
    CreateCertificate,
    CreateSecret,
    DestroyStored,
    FederatedTrust,
    IntegrationState,
    RemoveAzureCredential,
    federated_listed,
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
#: Issue 18: and for integrations of kind federated.
FEDERATED_STRATEGIES: dict[str, TimingPolicy] = {"azsidecar-federated": TimingPolicy()}
CREATE_FIC_STRATEGIES: dict[str, float] = {"create-fic-in-run": 0.0}
#: Entra's limit of federated credentials per application
#: (learn.microsoft.com/graph/api/application-post-federatedidentitycredentials).
FEDERATED_CAP = 20
#: What the planner is told the configured issuer is (any URL: the simulation
#: signs nothing).
TRUST = FederatedTrust("https://issuer.bench.example/azsidecar")


@dataclass(frozen=True)
class Family:
    """Strategies simulated alike: each a row of the results.

    ``product`` maps the product's rows to their timing (the daemon keeps
    integrations of ``kind`` supplied, :func:`simulate_product`); ``in_run``
    the rows whose run writes its own credential of ``kind`` and signs in that
    many seconds later (:func:`simulate_mint`), each checked over HTTP
    (:func:`validate_http`, seed ``http_seed``). A profile's seeds for the
    steady state start at ``seed`` and, when ``new_seed`` is set, for the
    new-integration table at ``new_seed``. ``cap`` counts, for in-run rows,
    the runs Graph would refuse for the per-application limit had runs kept
    their credentials.
    """

    kind: CredentialKind
    seed: int
    product: Mapping[str, TimingPolicy] = field(default_factory=dict)
    in_run: Mapping[str, float] = field(default_factory=dict)
    http_seed: int = 0
    new_seed: int | None = None
    cap: int | None = None

    @property
    def strategies(self) -> tuple[str, ...]:
        return (*self.product, *self.in_run)


SECRET, CERTIFICATE, FEDERATED = (
    CredentialKind.SECRET,
    CredentialKind.CERTIFICATE,
    CredentialKind.FEDERATED,
)
FAMILIES = (
    Family(SECRET, 0, product=PRODUCT_STRATEGIES, new_seed=50),
    Family(SECRET, 10, in_run=MINT_STRATEGIES, http_seed=7, new_seed=70),
    Family(CERTIFICATE, 20, product=CERTIFICATE_STRATEGIES),
    Family(CERTIFICATE, 30, in_run=UPLOAD_STRATEGIES, http_seed=37),
    Family(FEDERATED, 40, product=FEDERATED_STRATEGIES, new_seed=60),
    Family(
        FEDERATED, 45, in_run=CREATE_FIC_STRATEGIES, http_seed=47, new_seed=75, cap=FEDERATED_CAP
    ),
)
STRATEGIES = tuple(s for family in FAMILIES for s in family.strategies)

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
    #: HTTP check of a federated row: credentials Graph took on one application,
    #: none deleted, before it refused one (Entra's cap).
    created_before_cap: int | None = None

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


#: Ages kept minute by minute in the results: two days, past any secret's or
#: certificate's lifetime. A federated credential never expires, so its ages run
#: over the whole simulated month; those beyond are only counted
#: (``histogram_older``), which keeps results.json a size a diff can show.
HISTOGRAM_MINUTES = 2 * 24 * 60


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

    summary: dict[str, Any] = {
        "min": ordered[0][0],
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "max": ordered[-1][0],
        "histogram": {str(k): v for k, v in ordered if k <= HISTOGRAM_MINUTES},
    }
    older = sum(v for k, v in ordered if k > HISTOGRAM_MINUTES)
    if older:
        summary["histogram_older"] = older
    return summary


def _visibility(rng: random.Random, profile: LagProfile, now: float) -> list[float]:
    """As :meth:`EmulatorState._visibility`: the replica that took the write sees it at once."""
    primary = rng.randrange(REPLICAS)
    return [now if i == primary else now + profile.sample(rng, i) for i in range(REPLICAS)]


class _Integration:
    """One integration: Vault's index (``stored``) and the application in Azure AD.

    ``azure`` holds the application's credentials of the integration's ``kind``:
    its client secrets, its certificate credentials (``keyCredentials``), or
    its federated credentials as the planner is shown them
    (:func:`~sidecar.rotation.planner.federated_listed`).
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
        stored = tuple(self.stored)
        if self.kind is CredentialKind.SECRET:
            return IntegrationState(self.name, stored, listing, ())
        if self.kind is CredentialKind.CERTIFICATE:
            return IntegrationState(self.name, stored, (), (), kind=self.kind, keys=listing)
        return IntegrationState(
            self.name, stored, (), (), kind=self.kind, keys=(), federated=listing, trust=TRUST
        )

    def expiry(self, now: datetime, policy: TimingPolicy) -> datetime:
        if self.kind is CredentialKind.SECRET:
            return now + policy.secret_lifetime
        if self.kind is CredentialKind.CERTIFICATE:
            return now + policy.client_certificate_lifetime
        return FEDERATED_NEVER_EXPIRES

    def write(self, listing: Listing, rng: random.Random, profile: LagProfile, now: float) -> None:
        self.azure.write(self.name, listing, _visibility(rng, profile, now), now)

    def create(
        self, now: datetime, policy: TimingPolicy, rng: random.Random, profile: LagProfile
    ) -> None:
        intent = uuid.UUID(int=rng.getrandbits(128)).hex
        key_id = str(uuid.UUID(int=rng.getrandbits(128)))
        expires = self.expiry(now, policy)
        if self.kind is CredentialKind.FEDERATED:
            credential = federated_listed(key_id, federated_credential_name(intent))
        else:
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
    policy: TimingPolicy,
    profile: LagProfile,
    *,
    integrations: int,
    seed: int,
    kind: CredentialKind = CredentialKind.SECRET,
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
        item = _Integration(f"new-{index}", kind)
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
    delay: float, profile: LagProfile, *, integrations: int, seed: int, cap: int | None = None
) -> Outcome:
    """A new integration's runs when each mints its own secret (no wait for a credential)."""
    outcome = simulate_mint(
        delay, profile, integrations=integrations, days=180 / 1440, seed=seed, cap=cap
    )
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
    delay: float,
    profile: LagProfile,
    *,
    integrations: int,
    days: float,
    seed: int,
    cap: int | None = None,
) -> Outcome:
    """Every run mints a secret and signs in ``delay`` seconds later at a random replica.

    An uploaded key credential or a created federated credential replicates as
    a minted secret does, and the token endpoint checks a client assertion's
    key, or a federated assertion's credential, as it checks a secret. With
    ``cap``, the event ``refused-at-cap-without-delete`` counts the runs past
    the ``cap``-th of each application, which Graph would refuse if runs did
    not delete what they created.
    """
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
    if cap is not None:
        per_application = int(days * 24 * 60)
        outcome.events["refused-at-cap-without-delete"] = integrations * max(
            0, per_application - cap
        )
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


@dataclass
class _HttpBench:
    """One emulator session of :func:`validate_http`: the target application and its Graph."""

    emu: EmulatorServer
    tenant: str
    target: Any
    graph: GraphClient
    clock: _EmulatorTime
    issuer: BenchIssuer | None = None

    def advance(self, seconds: float) -> None:
        if seconds:
            self.emu.state.clock.advance(seconds)

    def token_error(self, data: dict[str, str]) -> str | None:
        """A client-credentials request on a new connection; None if it was granted.

        A run is a new process: its sign-in opens a new connection, which the
        emulator (like Azure's front ends) routes to any replica.
        """
        with self.emu.session() as session:
            response = session.post(
                f"{self.emu.base_url}/{self.tenant}/oauth2/v2.0/token",
                data={"grant_type": "client_credentials", "client_id": self.target.app_id}
                | data
                | {"scope": ARM_SCOPE},
                timeout=10,
            )
        if response.status_code == 200:
            return None
        codes = response.json().get("error_codes") or []
        return f"AADSTS{codes[0]}" if codes else str(response.status_code)


def _msal_error(result: dict[str, Any]) -> str | None:
    if "access_token" in result:
        return None
    codes = result.get("error_codes") or []
    return f"AADSTS{codes[0]}" if codes else "error"


def _trial_secret(bench: _HttpBench, delay: float) -> tuple[str | None, Callable[[], object]]:
    """``mint-in-run``: ``addPassword``, then a sign-in with the secret."""
    target = bench.target.object_id
    minted = bench.graph.add_password(target, "run", bench.clock.now() + timedelta(hours=1))
    bench.advance(delay)
    error = bench.token_error({"client_secret": minted.secret.reveal()})
    return error, lambda: bench.graph.remove_password(target, minted.key_id)


def _trial_certificate(bench: _HttpBench, delay: float) -> tuple[str | None, Callable[[], object]]:
    """``upload-cert-in-run``: PATCH of ``keyCredentials``, then a client assertion."""
    target = bench.target.object_id
    pair = generate_key_pair("run", bench.clock.now(), timedelta(hours=1))
    key = bench.graph.patch_add_key(target, pair.cert_der, "run")
    bench.advance(delay)
    with bench.emu.session() as session:
        result = acquire_token_with_certificate(
            login_url=bench.emu.base_url,
            tenant_id=bench.tenant,
            client_id=bench.target.app_id,
            cert_pem=pair.cert_pem,
            key_pem=pair.key_pem,
            thumbprint=pair.thumbprint,
            session=session,
        )
    return _msal_error(result), lambda: bench.graph.patch_remove_key(target, key.key_id)


def _trial_federated(bench: _HttpBench, delay: float) -> tuple[str | None, Callable[[], object]]:
    """``create-fic-in-run``: ``POST .../federatedIdentityCredentials`` trusting the
    bench's issuer for a subject of this run, then a sign-in with a token for it."""
    assert bench.issuer is not None
    target = bench.target.object_id
    intent = uuid.uuid4().hex
    subject = f"run:{intent}"
    created = bench.graph.add_federated_credential(
        target, federated_credential_name(intent), bench.issuer.url, subject, ENTRA_AUDIENCE
    )
    bench.advance(delay)
    token = bench.issuer.sign(subject, bench.clock.now())
    with bench.emu.session() as session:
        result = acquire_token_with_assertion(
            login_url=bench.emu.base_url,
            tenant_id=bench.tenant,
            client_id=bench.target.app_id,
            assertion=token,
            session=session,
        )
    return _msal_error(result), lambda: bench.graph.remove_federated_credential(
        target, created.key_id
    )


_TRIALS = {
    CredentialKind.SECRET: _trial_secret,
    CredentialKind.CERTIFICATE: _trial_certificate,
    CredentialKind.FEDERATED: _trial_federated,
}


def validate_http(
    trials: int,
    delay: float,
    profile: str = "default",
    seed: int = 11,
    kind: CredentialKind = CredentialKind.SECRET,
) -> Outcome:
    """Create a credential of ``kind`` through Graph as a run would and sign in ``delay`` s
    later at the token endpoint, ``trials`` times; each is removed once replicated.

    A secret is minted (``addPassword``) and presented as ``client_secret``; a
    certificate uploaded (``PATCH`` of ``keyCredentials``) and its key signs a
    client assertion, as ``upload-cert-in-run`` does; a federated credential
    created trusting :class:`~bench.issuer_site.BenchIssuer` (an issuer served
    over HTTPS from this process, whose CA the emulator is told to trust), whose
    token is the client assertion, as ``create-fic-in-run`` does.
    """
    with (
        tempfile.TemporaryDirectory(prefix="bench-issuer-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        issuer = None
        if kind is CredentialKind.FEDERATED:
            issuer = stack.enter_context(BenchIssuer(Path(tmp)))
        config = EmulatorConfig(
            clock_mode="manual",
            seed=seed,
            lag_profile=profile,
            issuer_ca=None if issuer is None else issuer.ca_path,
        )
        emu = stack.enter_context(EmulatorServer(config))
        return _trials(emu, issuer, trials, delay, kind)


def _trials(
    emu: EmulatorServer,
    issuer: BenchIssuer | None,
    trials: int,
    delay: float,
    kind: CredentialKind,
) -> Outcome:
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
    bench = _HttpBench(emu, tenant, target, graph, clock, issuer)
    lag_bound = resolve_stuck(state.lag, REPLICAS).max_lag
    outcome = Outcome()
    for _ in range(trials):
        error, remove = _TRIALS[kind](bench, delay)
        outcome.runs += 1
        if error is not None:
            outcome.events[error] += 1
            outcome.failures += 1
        # Let the write replicate everywhere, then revoke it as a lease end would.
        bench.advance(lag_bound + 1)
        remove()
        bench.advance(lag_bound + 1)
    if kind is CredentialKind.FEDERATED:
        outcome.created_before_cap = _fill_to_cap(bench)
    return outcome


def _fill_to_cap(bench: _HttpBench) -> int:
    """Federated credentials created on the target, none deleted, until Graph refuses one.

    What a naive run that does not delete its credential meets on the 21st run.
    """
    assert bench.issuer is not None
    for made in range(2 * FEDERATED_CAP):
        intent = uuid.uuid4().hex
        try:
            bench.graph.add_federated_credential(
                bench.target.object_id,
                federated_credential_name(intent),
                bench.issuer.url,
                f"run:{intent}",
                ENTRA_AUDIENCE,
            )
        except GraphError:
            return made
    return 2 * FEDERATED_CAP


def _new_integrations_and_experiments(
    integrations: int, days: float, seed: int, check: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """New integrations per strategy and profile; the lower-floor experiment in full."""
    new_table: dict[str, dict[str, Any]] = {}
    experiments: dict[str, dict[str, Any]] = {}
    for p_index, name in enumerate(PROFILE_NAMES):
        profile = PROFILES[name]
        base = seed + 100 * p_index
        for family in FAMILIES:
            if family.new_seed is None:
                continue
            for s_index, (strategy, policy) in enumerate(family.product.items()):
                new = simulate_new_integrations(
                    policy,
                    profile,
                    integrations=integrations,
                    seed=base + family.new_seed + s_index,
                    kind=family.kind,
                )
                new_table.setdefault(strategy, {})[name] = _first_credential(new)
            for s_index, (strategy, delay) in enumerate(family.in_run.items()):
                new = simulate_new_mint(
                    delay,
                    profile,
                    integrations=integrations,
                    seed=base + family.new_seed + s_index,
                    cap=family.cap,
                )
                new_table.setdefault(strategy, {})[name] = _first_credential(new)
        # The experiments' seeds follow the secret product family's.
        after = FAMILIES[0].new_seed or 0
        for s_index, (strategy, policy) in enumerate(EXPERIMENTS.items()):
            new = simulate_new_integrations(
                policy,
                profile,
                integrations=integrations,
                seed=base + after + len(PRODUCT_STRATEGIES) + s_index,
            )
            new_table.setdefault(strategy, {})[name] = _first_credential(new)
            steady = simulate_product(
                policy,
                profile,
                integrations=integrations,
                days=days,
                seed=base + 80 + s_index,
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
    cap = (
        {}
        if http.created_before_cap is None
        else {"http_created_before_cap": http.created_before_cap}
    )
    return {
        "http_runs": http.runs,
        "http_failures": http.failures,
        "http_failure_rate": http.failure_rate,
        "http_errors": dict(http.events),
        "simulated_failure_rate": p,
        "tolerance": tolerance,
        "agrees": abs(http.failure_rate - p) <= tolerance,
    } | cap


def run(quick: bool = False, seed: int = 20260301) -> dict[str, Any]:
    integrations, days = (20, 2.0) if quick else (100, 30.0)
    trials = 60 if quick else 200
    started = time.monotonic()
    table: dict[str, dict[str, Any]] = {}
    outcomes: dict[tuple[str, str], Outcome] = {}
    for p_index, name in enumerate(PROFILE_NAMES):
        profile = PROFILES[name]
        for family in FAMILIES:
            base = seed + 100 * p_index + family.seed
            for s_index, (strategy, policy) in enumerate(family.product.items()):
                outcomes[strategy, name] = simulate_product(
                    policy,
                    profile,
                    integrations=integrations,
                    days=days,
                    seed=base + s_index,
                    check=quick,
                    kind=family.kind,
                )
            for s_index, (strategy, delay) in enumerate(family.in_run.items()):
                outcomes[strategy, name] = simulate_mint(
                    delay,
                    profile,
                    integrations=integrations,
                    days=days,
                    seed=base + s_index,
                    cap=family.cap,
                )
    for (strategy, name), outcome in outcomes.items():
        table.setdefault(strategy, {})[name] = outcome.to_dict()
    new_table, experiments = _new_integrations_and_experiments(
        integrations, days, seed, check=quick
    )
    validation = {
        strategy: _agrees(
            validate_http(
                trials,
                delay,
                "default",
                seed=seed + family.http_seed + int(delay),
                kind=family.kind,
            ),
            outcomes[strategy, "default"],
        )
        for family in FAMILIES
        for strategy, delay in family.in_run.items()
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
            "(AADSTS700027), proofs of possession and PATCH races not modelled; federated "
            "strategies: the same with federated credentials and an external issuer's "
            "assertions (AADSTS70021), the issuer's key publication not modelled",
            "federated_cap": FEDERATED_CAP,
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
