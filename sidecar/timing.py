"""The timing rules as one typed, self-checking policy.

Why the inequalities hold (secrets). Let ``E`` be the expiry of the newest
secret. The first tick at which it has less than ``secret_renew_before``
left comes at the latest at ``E - secret_renew_before + tick``; the secret
created then is ready ``propagation_delay`` later, and the old one stops
being handed out at ``E - ready_safety_margin``. For a ready secret to exist
at every instant::

    E - secret_renew_before + tick + propagation_delay <= E - ready_safety_margin
    <=>  secret_renew_before >= propagation_delay + ready_safety_margin + tick

What is left over, :attr:`TimingPolicy.rotation_slack`, is how late a
renewal may additionally be (a crash, a Vault or Graph outage) before runs
could find no ready secret.

The rotation planner never lets Azure hold more than three of our secrets.
Renewals come every ``secret_lifetime - secret_renew_before`` at the
earliest, so at a renewal the secret before the newest has already expired
only if ``2 * secret_renew_before <= secret_lifetime``; then the cap leaves
room for the newest, the new one and one crashed attempt, and never blocks a
renewal.

An intent may look abandoned only once Azure replication can no longer hide
its credential, hence ``intent_timeout > propagation_delay`` (the delay is
the bound on replication lag).

A stored secret that Graph's listing lacks is taken as removed outside us only
after ``missing_grace`` (default 1 h, at least ``intent_timeout``): a replica
lagging well past the propagation bound must not make the daemon destroy a
good secret (the consistency benchmark's stuck-replica profile did exactly
that with a 15-minute bound).

An integration's certificate credentials follow the same rules as its
secrets, with their own ``certificate_lifetime`` and
``certificate_renew_before`` (unset: the secret's values), and the same
inequalities hold for them; the planner's cap of three applies to each kind.
``max_effective_delay`` and ``rotation_slack`` are the smaller of the two
kinds', since a raised delay must fit whichever kind a credential is.

The management certificate: renewal starts at the latest ``cert_renew_before - tick``
before expiry and the new key is used ``cert_switch_delay`` after upload,
so ``cert_renew_before > cert_switch_delay + tick``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import timedelta

from sidecar.errors import ConfigError


@dataclass(frozen=True)
class TimingPolicy:
    """Every duration the daemon, the resolver and the plugin agree on.

    Construction validates, so an impossible policy never exists.
    """

    tick: timedelta = timedelta(hours=1)
    secret_lifetime: timedelta = timedelta(hours=24)
    secret_renew_before: timedelta = timedelta(hours=2)
    propagation_delay: timedelta = timedelta(minutes=10)
    ready_safety_margin: timedelta = timedelta(minutes=30)
    cert_lifetime: timedelta = timedelta(days=30)
    cert_renew_before: timedelta = timedelta(days=7)
    cert_switch_delay: timedelta = timedelta(minutes=10)
    #: An integration's certificate credentials (``integration create --kind
    #: certificate``); unset, as long-lived and renewed as early as its secrets.
    certificate_lifetime: timedelta | None = None
    certificate_renew_before: timedelta | None = None
    lease_ttl: timedelta = timedelta(seconds=90)
    intent_timeout: timedelta = timedelta(minutes=15)
    missing_grace: timedelta = timedelta(hours=1)
    #: Verified readiness (:mod:`sidecar.probes`): sign in with each new secret every
    #: ``probe_interval``, ``probe_sign_ins`` times on fresh connections, until the
    #: successes since the last failure span ``probe_window``.
    probes: bool = True
    probe_interval: timedelta = timedelta(minutes=1)
    probe_window: timedelta = timedelta(minutes=10)
    probe_sign_ins: int = 4
    #: Lengthen a new secret's delay to the worst lag observed lately plus
    #: ``raise_margin``, at most ``max_effective_delay`` (off by default).
    raise_delay: bool = False
    raise_margin: timedelta = timedelta(minutes=2)
    #: Explicit opt-in to hand out a new integration's first secret before
    #: ``propagation_delay`` (still only once verified by probes); None = never.
    new_integration_floor: timedelta | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def client_certificate_lifetime(self) -> timedelta:
        """How long an integration's certificate credential is valid."""
        return self.certificate_lifetime or self.secret_lifetime

    @property
    def client_certificate_renew_before(self) -> timedelta:
        """How long before its expiry an integration's certificate is renewed."""
        return self.certificate_renew_before or self.secret_renew_before

    @property
    def _earliest_renewal(self) -> timedelta:
        return min(self.secret_renew_before, self.client_certificate_renew_before)

    @property
    def max_effective_delay(self) -> timedelta:
        """The longest delay a renewal still fits in (``rotation_slack`` spent on it)."""
        return self._earliest_renewal - (self.ready_safety_margin + self.tick)

    @property
    def rotation_slack(self) -> timedelta:
        """How much later than the next tick a renewal may come and still be in time."""
        return self._earliest_renewal - (
            self.propagation_delay + self.ready_safety_margin + self.tick
        )

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field that cannot work."""
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _NOT_DURATIONS or (value is None and field.name in _OPTIONAL):
                continue
            if not isinstance(value, timedelta):
                raise ConfigError(field.name, f"must be a duration, got {type(value).__name__}")
            if value <= timedelta(0):
                raise ConfigError(field.name, f"must be positive, got {value}")
        for flag in ("probes", "raise_delay"):
            _require(isinstance(getattr(self, flag), bool), flag, "must be true or false")
        _require(
            isinstance(self.probe_sign_ins, int) and 1 <= self.probe_sign_ins <= 20,
            "probe_sign_ins",
            f"must be a whole number from 1 to 20, got {self.probe_sign_ins}",
        )
        _require(
            self.probe_window >= self.probe_interval,
            "probe_window",
            f"must be at least probe_interval ({self.probe_interval}), got {self.probe_window}",
        )
        floor = self.new_integration_floor
        _require(
            floor is None or floor <= self.propagation_delay,
            "new_integration_floor",
            f"must not exceed propagation_delay ({self.propagation_delay}), got {floor}",
        )
        _require(
            floor is None or self.probes,
            "new_integration_floor",
            "needs probes = true: only probes may justify handing a secret out early",
        )
        self._validate_kind(
            "secret",
            "secret_lifetime",
            "secret_renew_before",
            self.secret_lifetime,
            self.secret_renew_before,
        )
        self._validate_kind(
            "certificate",
            "certificate_lifetime",
            "certificate_renew_before",
            self.client_certificate_lifetime,
            self.client_certificate_renew_before,
        )
        _require(
            self.intent_timeout > self.propagation_delay,
            "intent_timeout",
            f"must be longer than propagation_delay ({self.propagation_delay}), the bound "
            f"on Azure replication lag, got {self.intent_timeout}",
        )
        _require(
            self.missing_grace >= self.intent_timeout,
            "missing_grace",
            f"must be at least intent_timeout ({self.intent_timeout}), got {self.missing_grace}",
        )
        _require(
            self.cert_renew_before < self.cert_lifetime,
            "cert_renew_before",
            f"must be shorter than cert_lifetime ({self.cert_lifetime}), "
            f"got {self.cert_renew_before}",
        )
        _require(
            self.cert_renew_before > self.cert_switch_delay + self.tick,
            "cert_renew_before",
            f"must be longer than cert_switch_delay + tick "
            f"({self.cert_switch_delay + self.tick}), got {self.cert_renew_before}",
        )

    def _validate_kind(
        self, noun: str, lifetime_key: str, key: str, lifetime: timedelta, renew: timedelta
    ) -> None:
        """The inequalities of the module docstring for one kind of integration credential."""
        _require(
            renew < lifetime,
            key,
            f"must be shorter than {lifetime_key} ({lifetime}), got {renew}",
        )
        _require(
            2 * renew <= lifetime,
            key,
            f"must be at most half of {lifetime_key} ({lifetime}) so that "
            f"no more than three {noun}s ever overlap, got {renew}",
        )
        needed = self.propagation_delay + self.ready_safety_margin + self.tick
        _require(
            renew >= needed,
            key,
            f"must be at least propagation_delay + ready_safety_margin + tick ({needed}) "
            f"or a renewed {noun} may not be ready before the old one is retired, "
            f"got {renew}",
        )


_NOT_DURATIONS = frozenset({"probes", "raise_delay", "probe_sign_ins"})
_OPTIONAL = frozenset({"new_integration_floor", "certificate_lifetime", "certificate_renew_before"})


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(key, message)


def reader_policy(
    propagation_delay: timedelta | None = None, ready_safety_margin: timedelta | None = None
) -> TimingPolicy:
    """The default rules with the ready rule's two durations overridden, for a reader.

    The plugin only hands secrets out; renewals are the daemon's. Replacing the
    two durations alone would fail validation as soon as the delay outgrew what the
    default renewal leaves room for (a delay above 30 minutes), and every read
    would fail. So the renewal-only fields are stretched just as far as the
    durations need; the ready rule itself is exactly the overridden one.
    """
    base = TimingPolicy()
    delay = propagation_delay or base.propagation_delay
    margin = ready_safety_margin or base.ready_safety_margin
    renew = max(base.secret_renew_before, delay + margin + base.tick)
    intent = max(base.intent_timeout, delay + timedelta(minutes=5))
    return replace(
        base,
        propagation_delay=delay,
        ready_safety_margin=margin,
        secret_renew_before=renew,
        secret_lifetime=max(base.secret_lifetime, 2 * renew),
        intent_timeout=intent,
        missing_grace=max(base.missing_grace, intent),
    )
