"""The chaos schedule is a pure function of its seed, and its faults overlap."""

from __future__ import annotations

from datetime import timedelta

from bench.chaos.schedule import RATES, overlapping, schedule


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    assert schedule(7, 7) == schedule(7, 7)
    assert schedule(7, 7) != schedule(8, 7)


def test_a_week_mixes_every_kind_with_overlapping_faults_inside_the_horizon() -> None:
    faults = schedule(3, 7)
    kinds = {f.kind for f in faults}
    assert len(kinds) >= len(RATES) - 2, sorted(set(RATES) - kinds)
    assert overlapping(faults)
    assert all(timedelta(hours=1) <= f.at and f.end < timedelta(days=7) for f in faults)
    assert faults == sorted(faults)


def test_every_seed_of_twenty_has_overlaps_and_daemon_and_vault_faults() -> None:
    for seed in range(20):
        faults = schedule(seed, 7)
        kinds = {f.kind for f in faults}
        assert overlapping(faults), seed
        assert {"daemon_kill", "vault_unreachable"} <= kinds, (seed, kinds)
