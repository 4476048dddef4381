"""The emulated clock: real, accelerated (reproducible from three numbers) and manual."""

from __future__ import annotations

import pytest

from sidecar.emulator import Clock
from sidecar.emulator.clock import iso, parse_time
from tests.emulator.conftest import World


class FakeWall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_accelerated_clock_is_reproducible_from_origin_and_factor() -> None:
    wall = FakeWall(1000.0)
    clock = Clock("accelerated", factor=60, origin_virtual=5000.0, origin_real=1000.0, wall=wall)
    wall.now = 1010.0
    assert clock.now() == 5600.0
    data = clock.to_dict()
    other = Clock(
        "accelerated",
        factor=data["factor"],
        origin_virtual=data["origin_virtual"],
        origin_real=data["origin_real"],
        wall=wall,
    )
    assert other.now() == clock.now()


def test_manual_clock_moves_only_when_told() -> None:
    wall = FakeWall(0.0)
    clock = Clock("manual", origin_virtual=100.0, wall=wall)
    wall.now = 50.0
    assert clock.now() == 100.0
    clock.advance(30)
    assert clock.now() == 130.0
    clock.set(parse_time("2030-01-01T00:00:00Z"))
    assert iso(clock.now()) == "2030-01-01T00:00:00Z"


def test_real_clock_becomes_offset_when_set() -> None:
    wall = FakeWall(10.0)
    clock = Clock("real", wall=wall)
    clock.advance(3600)
    wall.now = 20.0
    assert clock.now() == 3620.0 and clock.mode == "accelerated"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01T12:00:00.1234567Z", 1714564800.123456),
        ("2024-05-01T14:00:00+02:00", 1714564800.0),
        ("1714564800", 1714564800.0),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected)


def test_clock_admin_api(world: World) -> None:
    url = f"{world.emu.base_url}/_emulator/clock"
    before = world.http.get(url).json()
    assert before["mode"] == "manual" and set(before) >= {
        "now",
        "iso",
        "factor",
        "origin_virtual",
        "origin_real",
    }
    after = world.http.post(url, json={"advance": 90}).json()
    assert after["now"] == pytest.approx(before["now"] + 90)
    at = world.http.post(url, json={"set": "2031-02-03T04:05:06Z"}).json()
    assert at["iso"] == "2031-02-03T04:05:06Z"
    fast = world.http.post(url, json={"factor": 100}).json()
    assert fast["mode"] == "accelerated" and fast["factor"] == 100
    assert world.http.post(url, json={"factor": -1}).status_code == 400
