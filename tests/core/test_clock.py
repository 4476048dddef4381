"""Clocks: aware UTC everywhere, accelerated time reproducible across processes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sidecar.clock import AcceleratedClock, Clock, ManualClock, SystemClock, require_utc

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_every_clock_satisfies_the_protocol() -> None:
    clocks: list[Clock] = [SystemClock(), AcceleratedClock(T0, 60.0), ManualClock(T0)]
    for clock in clocks:
        assert clock.now().utcoffset() == timedelta(0)


def test_system_clock_is_aware_wall_time() -> None:
    before = datetime.now(UTC)
    assert before <= SystemClock().now() <= datetime.now(UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        require_utc(datetime(2030, 1, 1))


def test_other_offsets_are_normalised_to_utc() -> None:
    plus_two = datetime(2030, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert require_utc(plus_two) == T0
    assert require_utc(plus_two).tzinfo is UTC


def test_accelerated_clock_runs_factor_times_faster() -> None:
    clock = AcceleratedClock(T0, factor=3600.0, origin_real=time.time() - 2.0)
    assert T0 + timedelta(hours=2) <= clock.now() < T0 + timedelta(hours=2, minutes=5)


def test_accelerated_clock_is_reproducible_from_its_three_numbers() -> None:
    first = AcceleratedClock(T0, factor=1000.0)
    second = AcceleratedClock(first.origin_virtual, first.factor, first.origin_real)
    assert abs(first.now() - second.now()) < timedelta(seconds=5)


def test_accelerated_sleep_takes_virtual_seconds() -> None:
    clock = AcceleratedClock(T0, factor=10_000.0)
    before, started = clock.now(), time.monotonic()
    clock.sleep(100.0)
    assert time.monotonic() - started < 1.0
    assert clock.now() - before >= timedelta(seconds=100)


@pytest.mark.parametrize("factor", [0.0, -1.0])
def test_accelerated_clock_needs_a_positive_factor(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        AcceleratedClock(T0, factor)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T0)
    assert clock.now() == T0 == clock.now()
    assert clock.advance(timedelta(minutes=5)) == T0 + timedelta(minutes=5)
    assert clock.advance(30) == T0 + timedelta(minutes=5, seconds=30)
    clock.set(T0 + timedelta(days=1))
    assert clock.now() == T0 + timedelta(days=1)


def test_manual_sleep_advances_instantly() -> None:
    clock = ManualClock(T0)
    started = time.monotonic()
    clock.sleep(86_400)
    assert clock.now() == T0 + timedelta(days=1)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda c: c.advance(-1), id="advance-negative"),
        pytest.param(lambda c: c.set(T0 - timedelta(seconds=1)), id="set-into-past"),
    ],
)
def test_manual_clock_never_goes_back(move: object) -> None:
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="cannot go back"):
        move(clock)  # type: ignore[operator]
    assert clock.now() == T0
