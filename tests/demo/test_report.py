"""The demo's pure parts: its timing per lag profile, metrics parsing, the tables."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.config import load_config
from sidecar.demo.emulator_admin import EmulatorEndpoints
from sidecar.demo.orchestration import Demo, DemoOptions, daemon_config, demo_timing
from sidecar.demo.report import parse_metrics, summary, table
from sidecar.demo.runs import RunResult, RunTally
from sidecar.demo.vault_setup import VaultSetup, plugin_config
from sidecar.durations import parse_duration
from sidecar.emulator.replicas import PROFILES
from sidecar.model import Phase
from sidecar.sensitive import Sensitive


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_propagation_delay_bounds_every_lag_profile(profile: str) -> None:
    worst = timedelta(seconds=PROFILES[profile].max_lag)
    policy = demo_timing(worst.total_seconds())  # constructing it validates it
    assert policy.propagation_delay > worst
    assert policy.lease_ttl == timedelta(hours=1)
    if worst < timedelta(minutes=10):
        assert policy.propagation_delay == timedelta(minutes=10)
        assert policy.secret_renew_before == timedelta(hours=2)


def test_metrics_are_summed_per_integration() -> None:
    text = "\n".join(
        [
            "# TYPE azsidecar_rotations_total counter",
            'azsidecar_rotations_total{integration="a"} 2.0',
            'azsidecar_rotations_total{integration="b"} 1.0',
            "# TYPE azsidecar_secret_removals_total counter",
            'azsidecar_secret_removals_total{reason="expired"} 3.0',
            "# TYPE azsidecar_management_certificate_renewals_total counter",
            "azsidecar_management_certificate_renewals_total 2.0",
        ]
    )
    counts = parse_metrics(text + "\n")
    assert counts.rotations == {"a": 2, "b": 1}
    assert (counts.total_rotations, counts.removals, counts.certificate_renewals) == (3, 3, 2)


def test_summary_counts_authentication_failures_apart() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    tally = RunTally()
    tally.add(
        [
            RunResult(at, "s", Phase.PLAN, "plugin", "a", True),
            RunResult(at, "s", Phase.APPLY, "resolver", "b", False, "sign-in", "AADSTS7000215"),
            RunResult(at, "s", Phase.APPLY, "plugin", "b", False, "credential", "NotReady"),
        ]
    )
    text = "\n".join(summary([], parse_metrics(""), tally, 1, 2.0))
    assert re.search(r"runs that failed to authenticate to Azure\s+1$", text, re.M)
    assert re.search(r"runs that failed otherwise\s+1$", text, re.M)
    assert "1 x sign-in: AADSTS7000215" in text


def test_table_aligns_numbers_right() -> None:
    lines = table(["name", "n"], [["a", 5], ["bbb", 12]])
    assert lines[2] == "  a      5" and lines[3] == "  bbb   12"


def test_daemon_config_quotes_and_formats_durations() -> None:
    text = daemon_config({"timing": {"lease_ttl": timedelta(hours=1)}, "daemon": {"x": 'a"b'}})
    assert 'lease_ttl = "1h"' in text
    assert 'x = "a\\"b"' in text


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_daemon_gets_the_demos_timing_for_every_lag_profile(
    profile: str, tmp_path: Path
) -> None:
    """Regression (found by the chaos schedules, #21): the daemon's TOML lacked
    ``missing_grace``, so for a lag profile whose intent timeout outgrows the default
    grace (stuck-2h) the daemon refused its configuration and the demo could not start."""
    policy = demo_timing(PROFILES[profile].max_lag)
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    endpoints = EmulatorEndpoints(
        "https://127.0.0.1:1", "https://127.0.0.1:1", "https://127.0.0.1:1", str(ca)
    )
    demo = Demo(DemoOptions(logs=tmp_path / "logs"), print)
    try:
        config = demo._product_config("http://127.0.0.1:8200", endpoints, policy)
        setup = VaultSetup(
            addr="http://127.0.0.1:8200",
            jwt_key=rsa.generate_private_key(public_exponent=65537, key_size=1024),
            jwt_accessor="auth_jwt_0",
            sidecar_token=Sensitive("t"),
            plugin_token=Sensitive("t"),
            operator_token=Sensitive("t"),
        )
        clock = {"factor": 2880.0, "origin_virtual": 1.8e9, "origin_real": 1.7e9}
        sections = demo._daemon_sections(config, clock, setup, 9101, 9102)
    finally:
        shutil.rmtree(demo.workdir, ignore_errors=True)
    path = tmp_path / "daemon.toml"
    path.write_text(daemon_config(sections))
    assert load_config(path, env={}).timing == policy


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_plugin_hands_out_by_the_daemons_ready_rule(profile: str) -> None:
    """Regression (found by the chaos schedules, #21): ``azure/config`` lacked the
    durations, so with a slow lag profile the plugin handed a new secret out after its
    default 10 minutes while the daemon and the resolver waited the raised delay."""
    policy = demo_timing(PROFILES[profile].max_lag)
    setup = VaultSetup(
        addr="http://127.0.0.1:8200",
        jwt_key=rsa.generate_private_key(public_exponent=65537, key_size=1024),
        jwt_accessor="auth_jwt_0",
        sidecar_token=Sensitive("t"),
        plugin_token=Sensitive("t"),
        operator_token=Sensitive("t"),
    )
    data = plugin_config(setup, policy)
    assert parse_duration(data["propagation_delay"]) == policy.propagation_delay
    assert parse_duration(data["ready_safety_margin"]) == policy.ready_safety_margin
