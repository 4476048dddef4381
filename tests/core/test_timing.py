"""TimingPolicy: the defaults of the design, and every impossible combination refused."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import timedelta
from typing import Any, cast

import pytest

from sidecar.errors import ConfigError
from sidecar.timing import TimingPolicy, reader_policy

H = timedelta(hours=1)
M = timedelta(minutes=1)


def test_defaults_are_the_design_defaults() -> None:
    p = TimingPolicy()
    assert (p.tick, p.secret_lifetime, p.secret_renew_before) == (H, 24 * H, 2 * H)
    assert (p.propagation_delay, p.ready_safety_margin) == (10 * M, 30 * M)
    assert (p.cert_lifetime, p.cert_renew_before) == (timedelta(days=30), timedelta(days=7))
    assert (p.cert_switch_delay, p.lease_ttl, p.intent_timeout) == (10 * M, 90 / 60 * M, 15 * M)


def test_default_slack_absorbs_one_crash_retried_at_intent_timeout() -> None:
    p = TimingPolicy()
    assert p.rotation_slack == 20 * M
    assert p.rotation_slack + p.tick >= p.intent_timeout


# Every duration; the probe switches and counts are checked below.
DURATIONS = [
    f.name
    for f in fields(TimingPolicy)
    if isinstance(f.default, timedelta)
    or f.name in ("new_integration_floor", "certificate_lifetime", "certificate_renew_before")
]


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("value", [timedelta(0), -M], ids=["zero", "negative"])
def test_every_duration_must_be_positive(name: str, value: timedelta) -> None:
    with pytest.raises(ConfigError, match="must be positive") as err:
        TimingPolicy(**cast(dict[str, Any], {name: value}))
    assert err.value.key == name


def test_a_number_is_not_a_duration() -> None:
    with pytest.raises(ConfigError, match="must be a duration") as err:
        TimingPolicy(tick=3600)  # type: ignore[arg-type]
    assert err.value.key == "tick"


IMPOSSIBLE = [
    pytest.param(
        {"secret_renew_before": 24 * H},
        "secret_renew_before",
        "shorter than secret_lifetime",
        id="renew-window-as-long-as-lifetime",
    ),
    pytest.param(
        {"secret_lifetime": 6 * H, "secret_renew_before": 4 * H},
        "secret_renew_before",
        "half of secret_lifetime",
        id="more-than-three-secrets-would-overlap",
    ),
    pytest.param(
        {"secret_renew_before": 100 * M - timedelta(seconds=1)},
        "secret_renew_before",
        "propagation_delay \\+ ready_safety_margin \\+ tick",
        id="renewed-secret-not-ready-before-old-retires",
    ),
    pytest.param(
        {"tick": 2 * H},
        "secret_renew_before",
        "propagation_delay \\+ ready_safety_margin \\+ tick",
        id="tick-too-long-for-renew-window",
    ),
    pytest.param(
        {"intent_timeout": 10 * M},
        "intent_timeout",
        "longer than propagation_delay",
        id="intent-abandoned-while-replication-could-hide-it",
    ),
    pytest.param(
        {"cert_renew_before": timedelta(days=30)},
        "cert_renew_before",
        "shorter than cert_lifetime",
        id="cert-renew-window-as-long-as-lifetime",
    ),
    pytest.param(
        {"cert_renew_before": 70 * M},
        "cert_renew_before",
        "cert_switch_delay \\+ tick",
        id="cert-would-expire-before-switch",
    ),
]


@pytest.mark.parametrize(("changes", "key", "message"), IMPOSSIBLE)
def test_impossible_combinations_name_the_field(
    changes: dict[str, timedelta], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        TimingPolicy(**cast(dict[str, Any], changes))
    assert err.value.key == key
    assert str(err.value).startswith(f"configuration {key}:")


POSSIBLE = [
    pytest.param({"secret_renew_before": 100 * M}, id="renew-window-exactly-enough"),
    pytest.param({"secret_renew_before": 12 * H}, id="renew-at-half-life"),
    pytest.param(
        {
            "tick": 5 * M,
            "secret_lifetime": 2 * H,
            "secret_renew_before": 45 * M,
            "propagation_delay": 2 * M,
            "ready_safety_margin": 5 * M,
            "intent_timeout": 3 * M,
            "cert_lifetime": 4 * H,
            "cert_renew_before": H,
        },
        id="fast-demo-policy",
    ),
]


@pytest.mark.parametrize("changes", POSSIBLE)
def test_tight_but_possible_policies_are_accepted(changes: dict[str, timedelta]) -> None:
    policy = TimingPolicy(**cast(dict[str, Any], changes))
    assert policy.rotation_slack >= timedelta(0)


def test_replace_revalidates() -> None:
    with pytest.raises(ConfigError):
        replace(TimingPolicy(), tick=3 * H)


def test_probe_settings_are_checked() -> None:
    with pytest.raises(ConfigError) as err:
        TimingPolicy(probe_sign_ins=0)
    assert err.value.key == "probe_sign_ins"
    with pytest.raises(ConfigError) as err:
        TimingPolicy(probe_window=timedelta(seconds=30), probe_interval=M)
    assert err.value.key == "probe_window"
    # Handing out before propagation_delay is only ever an explicit choice, backed by probes.
    with pytest.raises(ConfigError) as err:
        TimingPolicy(new_integration_floor=2 * M, probes=False)
    assert err.value.key == "new_integration_floor"
    with pytest.raises(ConfigError) as err:
        TimingPolicy(new_integration_floor=11 * M)
    assert err.value.key == "new_integration_floor"
    assert TimingPolicy().new_integration_floor is None
    assert TimingPolicy().probes and not TimingPolicy().raise_delay


@pytest.mark.parametrize("minutes", [10, 31, 65, 125])
def test_a_reader_takes_any_delay_the_daemon_can_run_with(minutes: int) -> None:
    """Regression (found by the chaos schedules, #21): the plugin replaced the delay in
    the default policy, which fails validation for a delay above 30 minutes, so a plugin
    configured with the daemon's raised delay failed every read."""
    delay, margin = timedelta(minutes=minutes), timedelta(minutes=20)
    policy = reader_policy(delay, margin)
    assert (policy.propagation_delay, policy.ready_safety_margin) == (delay, margin)
    assert reader_policy() == TimingPolicy()
    if minutes > 30:  # what the plugin did before
        with pytest.raises(ConfigError):
            replace(TimingPolicy(), propagation_delay=delay)


def test_certificate_timing_defaults_to_the_secrets() -> None:
    p = TimingPolicy(secret_lifetime=48 * H, secret_renew_before=4 * H)
    assert (p.client_certificate_lifetime, p.client_certificate_renew_before) == (48 * H, 4 * H)
    q = TimingPolicy(certificate_lifetime=30 * 24 * H, certificate_renew_before=3 * 24 * H)
    assert (q.client_certificate_lifetime, q.client_certificate_renew_before) == (
        30 * 24 * H,
        3 * 24 * H,
    )
    assert (q.secret_lifetime, q.secret_renew_before) == (24 * H, 2 * H)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"certificate_renew_before": 30 * H}, "shorter than certificate_lifetime"),
        ({"certificate_lifetime": 3 * H}, "at most half of certificate_lifetime"),
        (
            {"certificate_lifetime": 24 * H, "certificate_renew_before": 90 * M},
            "propagation_delay \\+ ready_safety_margin \\+ tick",
        ),
    ],
)
def test_certificate_timing_obeys_the_secrets_inequalities(
    values: dict[str, timedelta], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        TimingPolicy(**cast(dict[str, Any], values))
    assert err.value.key == "certificate_renew_before"


def test_a_shorter_certificate_renewal_bounds_the_raised_delay() -> None:
    p = TimingPolicy(certificate_lifetime=48 * H, certificate_renew_before=100 * M)
    assert p.max_effective_delay == 100 * M - (30 * M + H)
    assert p.rotation_slack == 100 * M - (10 * M + 30 * M + H)
