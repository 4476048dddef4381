"""The probe record of one credential and the pure rule it feeds.

A credential is *verified* when the sign-ins the daemon made with it on
fresh connections (each one a random directory replica, as a run's first
sign-in is) all succeeded over the last ``probe_window``: the run of
successes that began after the last failure spans at least the window.
:func:`sidecar.ready.choose_ready` hands out a credential that has a record
only when it is verified *and* the time rule holds; a credential without a
record (created before probes existed, or with probes off) obeys the time
rule alone.

Probes hold a credential back only on evidence: a refusal after its delay,
or a run of successes still shorter than the window. Where they learn
nothing (no sign-in answered yes or no by the time the time rule would
release the credential: no consent where the daemon can sign in, an
application it cannot reach; or none for a whole window since: the daemon
stopped, lost its lease, or is throttled) the credential is *unverifiable*
and the time rule decides alone, as before probes existed. So probes can
only make the product more careful than the time rule, never stop it.
Unverifiable is final: the daemon never probes such a credential again, since
runs may already hold it and a later probe could only take it back.

The record lives in the credential key's ``custom_metadata`` beside the
index entry (``p<version>``), so the one read every reader already makes
brings it, and the ready rule stays a function of that state, the policy and
``now``. Once verified a record no longer changes (probing stops). A
reader's cached index (seconds old) can lag the daemon's newest probe, but
staleness only counts after a whole ``probe_window`` without one.

Why random replicas and a window, not one success: a sign-in succeeds when
the replica that serves it knows the secret, and Entra, like the emulator,
routes each new connection to any replica. One success says one replica has
it; ``probe_window / probe_interval * probe_sign_ins`` successes in a row
make a replica that still lacks the secret unlikely to have been missed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sidecar.timing import TimingPolicy

_KEY = re.compile(r"p([1-9][0-9]{0,9})")
_FIELDS = 8


class ProbeState(StrEnum):
    VERIFIED = "verified"
    PROPAGATING = "propagating"  # no sign-in failed after the delay; waiting for the window
    FAILING = "probe failing"  # a sign-in failed after the credential should have replicated
    #: Probes gave no evidence: no sign-in answered yes or no by the time the time
    #: rule releases the credential (no consent anywhere the daemon can sign in, an
    #: application that cannot be reached), or none for a whole probe window since
    #: (probing stopped: daemon down, lease lost, throttled). The time rule decides
    #: alone, as it did before probes; only evidence (a refusal, a streak still too
    #: short) holds a credential back beyond it.
    UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True)
class ProbeRecord:
    """What the probes of one credential found; times are whole epoch seconds.

    ``streak_since`` is the first success after the last failure (None while
    the latest probe failed); ``delay`` the effective propagation delay the
    daemon applied to this credential (at least the configured floor).
    """

    version: int
    delay: timedelta
    first_success: datetime | None = None
    last_failure: datetime | None = None
    streak_since: datetime | None = None
    last_probe: datetime | None = None
    sign_ins: int = 0
    failures: int = 0

    @property
    def key(self) -> str:
        return f"p{self.version}"


def pending(version: int, delay: timedelta) -> ProbeRecord:
    """The record written with a new credential, before any probe."""
    return ProbeRecord(version=version, delay=delay)


def observe(record: ProbeRecord, ok: bool, at: datetime) -> ProbeRecord:
    """The record after one sign-in at ``at`` succeeded (``ok``) or was refused."""
    at = _whole(at)
    if ok:
        return replace(
            record,
            first_success=record.first_success or at,
            streak_since=record.streak_since or at,
            last_probe=at,
            sign_ins=record.sign_ins + 1,
        )
    return replace(
        record,
        last_failure=at,
        streak_since=None,
        last_probe=at,
        sign_ins=record.sign_ins + 1,
        failures=record.failures + 1,
    )


def effective_delay(record: ProbeRecord | None, policy: TimingPolicy) -> timedelta:
    """Never below the configured floor: a record can only lengthen the delay."""
    if record is None:
        return policy.propagation_delay
    return max(policy.propagation_delay, record.delay)


def verified(record: ProbeRecord, policy: TimingPolicy) -> bool:
    if record.streak_since is None or record.last_probe is None:
        return False
    return record.last_probe - record.streak_since >= policy.probe_window


def state(
    record: ProbeRecord, created: datetime, policy: TimingPolicy, now: datetime
) -> ProbeState:
    if verified(record, policy):
        return ProbeState.VERIFIED
    late = created + effective_delay(record, policy)
    if record.last_failure is not None and record.last_failure >= late:
        return ProbeState.FAILING
    if record.last_probe is None:
        return ProbeState.UNVERIFIABLE if now >= late else ProbeState.PROPAGATING
    if now - record.last_probe > policy.probe_window:
        return ProbeState.UNVERIFIABLE
    return ProbeState.PROPAGATING


def verified_at_earliest(record: ProbeRecord, now: datetime, policy: TimingPolicy) -> datetime:
    """When the window could be covered if every probe from now on succeeds."""
    if verified(record, policy):
        return now
    start = record.streak_since or (now + policy.probe_interval)
    return max(now, start + policy.probe_window)


def next_probe_at(record: ProbeRecord, policy: TimingPolicy) -> datetime | None:
    """When the daemon should sign in again; None once verified (probing stops)."""
    if verified(record, policy):
        return None
    if record.last_probe is None:
        return datetime.fromtimestamp(0, UTC)
    return record.last_probe + policy.probe_interval


# -- the custom_metadata encoding ----------------------------------------------------


def encode(record: ProbeRecord) -> tuple[str, str]:
    """``("p<version>", "<delay>|<first ok>|<last fail>|<streak>|<last>|<n>|<fails>|1")``."""
    parts = [
        str(math.ceil(record.delay.total_seconds())),
        *(_epoch(t) for t in (record.first_success, record.last_failure)),
        _epoch(record.streak_since),
        _epoch(record.last_probe),
        str(record.sign_ins),
        str(record.failures),
        "1",
    ]
    return record.key, "|".join(parts)


def parse(custom_metadata: Mapping[str, str] | None) -> dict[int, ProbeRecord]:
    """The probe records by version; an entry that does not parse counts as never
    verified and as no evidence, so damage never hands a credential out early (not
    even under ``new_integration_floor``): the time rule decides."""
    found: dict[int, ProbeRecord] = {}
    for key, value in (custom_metadata or {}).items():
        match = _KEY.fullmatch(key)
        if match:
            version = int(match.group(1))
            found[version] = _decode(version, value) or unreadable(version)
    return found


def is_probe_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def _decode(version: int, value: object) -> ProbeRecord | None:
    parts = value.split("|") if isinstance(value, str) else []
    if len(parts) != _FIELDS:
        return None
    try:
        delay = timedelta(seconds=int(parts[0]))
        first, last_fail, streak, last = (_time(p) for p in parts[1:5])
        sign_ins, failures = int(parts[5]), int(parts[6])
    except (ValueError, OverflowError, OSError):
        return None
    if delay < timedelta(0) or sign_ins < 0 or failures < 0:
        return None
    return ProbeRecord(version, delay, first, last_fail, streak, last, sign_ins, failures)


def unreadable(version: int) -> ProbeRecord:
    """What a reader assumes for a ``p<version>`` key it cannot parse: not verified."""
    return ProbeRecord(version=version, delay=timedelta(0))


def _epoch(value: datetime | None) -> str:
    return "" if value is None else str(math.ceil(value.timestamp()))


def _time(value: str) -> datetime | None:
    return None if value == "" else datetime.fromtimestamp(int(value), UTC)


def _whole(value: datetime) -> datetime:
    return datetime.fromtimestamp(math.ceil(value.timestamp()), UTC)
