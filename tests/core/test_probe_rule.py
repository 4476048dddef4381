"""Verified readiness: the probe record, and choose_ready with probes (tables per case)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.model import StoredCredential
from sidecar.probes import lag, rule
from sidecar.probes.rule import ProbeRecord, ProbeState
from sidecar.ready import NotReady, Ready, choose_ready
from sidecar.timing import TimingPolicy

POLICY = TimingPolicy()  # delay 10 min, probe window 10 min, every minute
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def cred(version: int, age: timedelta, left: timedelta = 24 * H) -> StoredCredential:
    return StoredCredential(version, f"key-{version}", f"intent-{version}", NOW - age, NOW + left)


def probed(
    version: int, age: timedelta, results: str, every: timedelta = M, until: datetime = NOW
) -> ProbeRecord:
    """The record after probes every ``every`` up to ``until``: ``+`` success, ``-`` refusal."""
    record = rule.pending(version, POLICY.propagation_delay)
    start = until - every * (len(results) - 1)
    for index, mark in enumerate(results):
        record = rule.observe(record, mark == "+", start + every * index)
    return record


@dataclass(frozen=True)
class Case:
    credentials: tuple[StoredCredential, ...]
    probes: tuple[ProbeRecord, ...]
    ready: int | None
    ready_at: datetime | None = None
    reason: str = ""
    policy: TimingPolicy = POLICY


CASES = {
    "no-record-time-rule-alone": Case((cred(1, 10 * M),), (), 1),
    "pending-record-no-probe-yet-holds-back": Case(
        (cred(1, 9 * M),), (rule.pending(1, 10 * M),), None, NOW + 11 * M, "propagating"
    ),
    "no-sign-in-answered-by-the-delay-time-rule-decides": Case(
        (cred(1, 10 * M),), (rule.pending(1, 10 * M),), 1
    ),
    "probing-stopped-for-a-window-time-rule-decides": Case(
        (cred(1, 25 * M),), (probed(1, 25 * M, "+++", until=NOW - 11 * M),), 1
    ),
    "probing-paused-less-than-a-window-still-holds": Case(
        (cred(1, 25 * M),),
        (probed(1, 25 * M, "+++", until=NOW - 9 * M),),
        None,
        NOW,  # the probe due now could complete the window
        "propagating",
    ),
    "stale-refusal-still-holds": Case(
        (cred(1, 22 * H, 2 * H), cred(2, 3 * H)),
        (probed(2, 3 * H, "+-", until=NOW - 2 * H),),
        1,
    ),
    "floor-opt-in-never-for-an-unverifiable-secret": Case(
        (cred(1, 5 * M),),
        (probed(1, 5 * M, "+", until=NOW - 4 * M),),  # probing stopped 4 min ago
        None,
        NOW + 5 * M,
        "propagating",
        policy=TimingPolicy(new_integration_floor=2 * M, probe_window=3 * M),
    ),
    "ten-minutes-of-successes-and-old-enough-is-ready": Case(
        (cred(1, 11 * M),), (probed(1, 11 * M, "+" * 11),), 1
    ),
    "successes-cover-window-but-too-young": Case(
        (cred(1, 9 * M),), (probed(1, 9 * M, "+" * 11),), None, NOW + M, "propagating"
    ),
    "window-one-second-short-is-not-verified": Case(
        (cred(1, 20 * M),),
        (probed(1, 20 * M, "+" * 10),),  # successes span 9 min
        None,
        NOW + M,
        "propagating",
    ),
    "refusal-before-delay-is-propagation": Case(
        (cred(1, 9 * M),), (probed(1, 9 * M, "+-++"),), None, NOW + 9 * M, "propagating"
    ),
    "refusal-after-delay-is-probe-failing": Case(
        (cred(1, 25 * M),), (probed(1, 25 * M, "++++-"),), None, NOW + 11 * M, "refused"
    ),
    "probe-failing-previous-secret-carries-the-load": Case(
        (cred(1, 22 * H, 2 * H), cred(2, 40 * M)), (probed(2, 40 * M, "+" * 20 + "-"),), 1
    ),
    "unverified-new-secret-never-preferred-over-old": Case(
        (cred(1, 22 * H, 2 * H), cred(2, 30 * M)), (probed(2, 30 * M, "-" + "+" * 5),), 1
    ),
    "verified-new-secret-takes-over": Case(
        (cred(1, 22 * H, 2 * H), cred(2, 30 * M)), (probed(2, 30 * M, "-" + "+" * 11),), 2
    ),
    "recorded-longer-delay-holds-back-a-verified-secret": Case(
        (cred(1, 15 * M),),
        (ProbeRecord(1, 20 * M, NOW - 14 * M, None, NOW - 14 * M, NOW, 60, 0),),
        None,
        NOW + 5 * M,
        "propagating",
    ),
    "a-recorded-shorter-delay-never-lowers-the-floor": Case(
        (cred(1, 5 * M),),
        (ProbeRecord(1, 1 * M, NOW - 5 * M, None, NOW - 5 * M, NOW + 6 * M, 60, 0),),
        None,
        NOW + 5 * M,
        "propagating",
    ),
    "floor-opt-in-hands-out-a-lone-verified-secret-early": Case(
        (cred(1, 3 * M),),
        (probed(1, 3 * M, "++++", every=M),),
        1,
        policy=TimingPolicy(new_integration_floor=2 * M, probe_window=3 * M),
    ),
    "floor-opt-in-never-for-a-rotation": Case(
        (cred(1, 22 * H, 2 * H), cred(2, 3 * M)),
        (probed(2, 3 * M, "++++"),),
        1,
        policy=TimingPolicy(new_integration_floor=2 * M, probe_window=3 * M),
    ),
    "probes-off-ignores-records": Case(
        (cred(1, 10 * M),), (rule.pending(1, 10 * M),), 1, policy=TimingPolicy(probes=False)
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_choose_ready_with_probes(case: Case) -> None:
    probes = {p.version: p for p in case.probes}
    outcome = choose_ready(case.credentials, NOW, case.policy, probes)
    if case.ready is not None:
        assert isinstance(outcome, Ready), outcome
        assert outcome.credential.version == case.ready
    else:
        assert isinstance(outcome, NotReady), outcome
        assert outcome.ready_at == case.ready_at
        assert case.reason in outcome.reason


STATES = {
    "never-probed": (rule.pending(1, 10 * M), 5 * M, ProbeState.PROPAGATING),
    "never-answered-by-the-delay": (rule.pending(1, 10 * M), 10 * M, ProbeState.UNVERIFIABLE),
    "probing-stopped": (
        probed(1, 30 * M, "++", until=NOW - 11 * M),
        30 * M,
        ProbeState.UNVERIFIABLE,
    ),
    "failing-and-stale": (probed(1, 30 * M, "-", until=NOW - 15 * M), 30 * M, ProbeState.FAILING),
    "failing-late": (probed(1, 12 * M, "-"), 12 * M, ProbeState.FAILING),
    "failing-early": (probed(1, 9 * M, "-"), 9 * M, ProbeState.PROPAGATING),
    "verified": (probed(1, 10 * M, "+" * 11), 10 * M, ProbeState.VERIFIED),
    "recovered-but-window-not-covered": (probed(1, 30 * M, "-++"), 30 * M, ProbeState.FAILING),
}


@pytest.mark.parametrize("case", STATES.values(), ids=STATES.keys())
def test_probe_state(case: tuple[ProbeRecord, timedelta, ProbeState]) -> None:
    record, age, expected = case
    assert rule.state(record, NOW - age, POLICY, NOW) is expected


def test_probing_stops_once_verified_and_is_due_every_interval_before() -> None:
    fresh = rule.pending(1, 10 * M)
    assert rule.next_probe_at(fresh, POLICY) is not None
    assert rule.next_probe_at(fresh, POLICY) <= NOW  # type: ignore[operator]
    half = probed(1, 5 * M, "+++++")
    assert rule.next_probe_at(half, POLICY) == NOW + POLICY.probe_interval
    assert rule.next_probe_at(probed(1, 10 * M, "+" * 11), POLICY) is None


def test_record_round_trips_through_custom_metadata() -> None:
    record = probed(7, 30 * M, "--+-+++")
    key, value = rule.encode(record)
    assert key == "p7" and len(value.encode()) < 512
    assert rule.parse({key: value, "v7": "ignored", "other": "x"}) == {7: record}


@pytest.mark.parametrize("value", ["", "garbage", "1|2|3", "-5||||||0|0|1|x", "a|b|c|d|e|f|g|h"])
def test_unparseable_record_is_never_verified(value: str) -> None:
    """Damage is no evidence: never verified, so never early; the time rule decides."""
    parsed = rule.parse({"p3": value})
    assert set(parsed) == {3}
    assert not rule.verified(parsed[3], POLICY)
    assert isinstance(choose_ready([cred(3, 9 * M)], NOW, POLICY, parsed), NotReady)
    early = TimingPolicy(new_integration_floor=2 * M)
    assert isinstance(choose_ready([cred(3, 9 * M)], NOW, early, parsed), NotReady)
    assert isinstance(choose_ready([cred(3, 2 * H)], NOW, POLICY, parsed), Ready)


def test_raised_delay_covers_worst_lag_within_renew_before() -> None:
    samples = [lag.LagSample(30, 0), lag.LagSample(60, 900)]
    assert lag.raised_delay(samples, POLICY) == POLICY.propagation_delay  # off by default
    raising = TimingPolicy(raise_delay=True)
    assert lag.raised_delay(samples, raising) == 15 * M + raising.raise_margin
    huge = [lag.LagSample(60, 7200)]
    assert lag.raised_delay(huge, raising) == raising.max_effective_delay == 30 * M
    assert lag.raised_delay([lag.LagSample(5, 0)], raising) == POLICY.propagation_delay
    safe, verdict = lag.assessment(samples, POLICY)
    assert not safe and "SHORTER" in verdict
    assert lag.assessment([lag.LagSample(5, 300)], POLICY)[0]
