"""A kill mid-rotation meets a rotation: the armed daemon renews at once and stays armed.

Before, the armed standby ran the usual timing, so a rotation had to fall due in
the few emulated minutes between its takeover and the fault's end: 1 of 10 armed
kills over seeds 1 to 5 reached their step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.chaos.harness import Chaos, chaos_timing, eager_sections
from bench.chaos.schedule import Fault
from sidecar.config import load_config
from sidecar.demo.orchestration import daemon_config
from sidecar.lifecycle.actions import Create
from sidecar.model import AzureCredential, StoredCredential
from sidecar.rotation.planner import IntegrationState, plan


def _sections() -> dict[str, dict[str, object]]:
    policy = chaos_timing()
    return {
        "timing": {
            "propagation_delay": policy.propagation_delay,
            "secret_renew_before": policy.secret_renew_before,
            "intent_timeout": policy.intent_timeout,
            "missing_grace": policy.missing_grace,
            "lease_ttl": policy.lease_ttl,
        }
    }


def test_the_armed_daemon_config_validates_and_renews_a_secret_made_minutes_ago(
    tmp_path: Path,
) -> None:
    usual = chaos_timing()
    sections = _sections()
    path = tmp_path / "eager.toml"
    path.write_text(daemon_config(eager_sections(sections, usual)))
    eager = load_config(str(path), env={}).timing  # validates, as the daemon does
    assert sections["timing"]["secret_renew_before"] == usual.secret_renew_before  # untouched

    now = datetime(2026, 12, 1, tzinfo=UTC)
    made = now - timedelta(minutes=2)  # the freshest secret the usual timing can have
    expires = made + usual.secret_lifetime
    state = IntegrationState(
        name="i",
        stored=(StoredCredential(1, "k", "intent", made, expires),),
        azure=(AzureCredential("k", "azsidecar:i", made, expires),),
        intents=(),
    )
    assert not any(isinstance(a, Create) for a in plan(state, usual, now))
    assert any(isinstance(a, Create) for a in plan(state, eager, now))


def test_the_standby_stays_armed_until_it_can_have_taken_the_lease_over() -> None:
    policy = chaos_timing()
    short = Fault(timedelta(hours=2), "daemon_kill_mid_rotation", timedelta(minutes=5))
    armed = Chaos._armed_for(short, policy)
    assert armed >= policy.lease_ttl + policy.lease_ttl / 3  # the lease runs out, then a renewal
    long = Fault(timedelta(hours=2), "daemon_kill_mid_rotation", timedelta(hours=3))
    assert Chaos._armed_for(long, policy) == timedelta(hours=3)
