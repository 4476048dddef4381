"""``--wait``: what is retried (not ready, unreachable), for how long, and the error after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sidecar.answers import NotReadyYet, ResolvedCredential
from sidecar.errors import NotFoundError, VaultUnavailable
from sidecar.runner.wait import OUTAGE_MAX, fetch_ready
from sidecar.sensitive import Sensitive

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CRED = ResolvedCredential(
    client_id="c",
    client_secret=Sensitive("s"),
    tenant_id="t",
    subscription_id=None,
    integration="i",
    key_id="k",
    created=NOW,
    expires=NOW + timedelta(hours=24),
    safe_until=NOW + timedelta(hours=23),
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def scripted(*outcomes: Exception | None) -> object:
    queue = list(outcomes)

    def fetch() -> ResolvedCredential:
        outcome = queue.pop(0)
        if outcome is not None:
            raise outcome
        return CRED

    return fetch


def run(fetch: object, wait: timedelta, clock: FakeTime) -> tuple[ResolvedCredential, list[str]]:
    lines: list[str] = []
    got = fetch_ready(
        fetch,  # type: ignore[arg-type]
        wait,
        lines.append,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    return got, lines


def test_an_unreachable_vault_is_retried_with_backoff_until_it_answers() -> None:
    clock = FakeTime()
    down = VaultUnavailable("cannot reach Vault (ConnectionError)")
    got, lines = run(scripted(down, down, down, down, down, None), timedelta(minutes=2), clock)
    assert got is CRED
    assert clock.sleeps == [1, 2, 4, 8, 15]
    assert all("cannot reach Vault" in line and "asking again in" in line for line in lines)


def test_an_outage_longer_than_the_wait_ends_in_a_clear_error() -> None:
    clock = FakeTime()
    down = VaultUnavailable("cannot reach Vault (ConnectionError)")
    with pytest.raises(VaultUnavailable, match=r"still unreachable after --wait 20s"):
        run(scripted(*[down] * 20), timedelta(seconds=20), clock)
    assert sum(clock.sleeps) == 20, "it used the whole wait and no more"
    assert max(clock.sleeps) <= OUTAGE_MAX


def test_without_a_wait_nothing_is_retried() -> None:
    clock = FakeTime()
    with pytest.raises(VaultUnavailable, match="cannot reach Vault"):
        run(scripted(VaultUnavailable("cannot reach Vault")), timedelta(0), clock)
    assert clock.sleeps == []


def test_outage_then_not_ready_then_ready() -> None:
    clock = FakeTime()
    down = VaultUnavailable("cannot reach Vault")
    later = NotReadyYet("no ready credential yet", NOW, timedelta(seconds=7))
    got, lines = run(scripted(down, down, later, None), timedelta(minutes=1), clock)
    assert got is CRED
    assert clock.sleeps == [1, 2, 7.25]
    assert "waiting for a ready credential" in lines[-1]


def test_final_answers_are_not_retried() -> None:
    clock = FakeTime()
    with pytest.raises(NotFoundError, match="no stack named"):
        run(scripted(NotFoundError("no stack named 'x'")), timedelta(minutes=1), clock)
    assert clock.sleeps == []
