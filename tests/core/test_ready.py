"""choose_ready: the one rule for which secret a run is handed (table per case)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.model import StoredCredential
from sidecar.ready import NotReady, Ready, choose_ready, safe_window
from sidecar.timing import TimingPolicy

POLICY = TimingPolicy()  # propagation 10 min, safety margin 30 min
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def cred(version: int, age: timedelta, left: timedelta) -> StoredCredential:
    """A secret created ``age`` ago with ``left`` until it expires."""
    return StoredCredential(version, f"key-{version}", f"intent-{version}", NOW - age, NOW + left)


@dataclass(frozen=True)
class Case:
    credentials: tuple[StoredCredential, ...]
    ready: int | None  # the version handed out
    ready_at: datetime | None = None  # when NotReady


CASES = {
    "no-secrets-never-ready": Case((), None, None),
    "brand-new-secret-ready-after-propagation": Case((cred(1, 2 * M, 24 * H),), None, NOW + 8 * M),
    "propagated-exactly-now-is-ready": Case((cred(1, 10 * M, 24 * H),), 1),
    "one-second-short-of-propagated-is-not": Case(
        (cred(1, 10 * M - timedelta(seconds=1), 24 * H),), None, NOW + timedelta(seconds=1)
    ),
    "within-safety-margin-is-not-handed-out": Case((cred(1, 23 * H, 30 * M),), None, None),
    "just-outside-safety-margin-is-handed-out": Case(
        (cred(1, 23 * H, 30 * M + timedelta(seconds=1)),), 1
    ),
    "expired-is-never-ready": Case((cred(1, 25 * H, -H),), None, None),
    "latest-expiry-wins-among-ready": Case((cred(1, 22 * H, 2 * H), cred(2, H, 23 * H)), 2),
    "old-one-serves-while-new-one-propagates": Case(
        (cred(1, 22 * H, 2 * H), cred(2, 5 * M, 24 * H)), 1
    ),
    "earliest-upcoming-ready-time-is-reported": Case(
        (cred(1, 3 * M, 24 * H), cred(2, 6 * M, 24 * H)), None, NOW + 4 * M
    ),
    "old-one-in-margin-while-new-one-propagates": Case(
        (cred(1, 23 * H, 20 * M), cred(2, 5 * M, 24 * H)), None, NOW + 5 * M
    ),
    "secret-created-in-the-future-waits-for-its-own-propagation": Case(
        (cred(1, -5 * M, 24 * H),), None, NOW + 15 * M
    ),
    "propagating-secret-that-expires-first-never-becomes-ready": Case(
        (cred(1, 5 * M, 35 * M),), None, None
    ),
    "tie-on-expiry-goes-to-latest-created": Case(
        (
            StoredCredential(1, "a", "i1", NOW - 2 * H, NOW + 20 * H),
            StoredCredential(2, "b", "i2", NOW - 3 * H, NOW + 20 * H),
        ),
        1,
    ),
    "tie-on-expiry-and-created-goes-to-highest-version": Case(
        (
            StoredCredential(7, "a", "i1", NOW - 2 * H, NOW + 20 * H),
            StoredCredential(9, "b", "i2", NOW - 2 * H, NOW + 20 * H),
        ),
        9,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_choose_ready(case: Case) -> None:
    outcome = choose_ready(case.credentials, NOW, POLICY)
    if case.ready is not None:
        assert isinstance(outcome, Ready)
        assert outcome.credential.version == case.ready
        assert outcome.usable_until == outcome.credential.expires - POLICY.ready_safety_margin
    else:
        assert isinstance(outcome, NotReady)
        assert outcome.ready_at == case.ready_at
        assert outcome.reason


def test_order_of_input_does_not_matter() -> None:
    creds = [cred(1, 22 * H, 2 * H), cred(2, H, 23 * H), cred(3, 5 * M, 24 * H)]
    assert choose_ready(creds, NOW, POLICY) == choose_ready(reversed(creds), NOW, POLICY)


def test_accepts_any_iterable_once() -> None:
    outcome = choose_ready((c for c in [cred(1, H, 23 * H)]), NOW, POLICY)
    assert isinstance(outcome, Ready)


@pytest.mark.parametrize(
    ("left", "window"),
    [(24 * H, 23 * H + 30 * M), (31 * M, M), (30 * M, timedelta(0)), (-H, timedelta(0))],
    ids=["fresh", "almost-retired", "at-margin", "expired"],
)
def test_safe_window_bounds_ttls(left: timedelta, window: timedelta) -> None:
    assert safe_window(cred(1, H, left), NOW, POLICY) == window
