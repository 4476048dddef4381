"""``/healthz``'s rule and body (sidecar.health), without a daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sidecar.health import RETRY_AFTER_FAILURE, Health, healthz

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TICK = timedelta(hours=1)


def test_a_leader_is_healthy_while_its_ticks_are_recent() -> None:
    health = Health(leader=True, last_tick=NOW - TICK * 2 - RETRY_AFTER_FAILURE)
    assert healthz(health, NOW, TICK, None)[0] == 200
    late = Health(leader=True, last_tick=NOW - TICK * 3 - RETRY_AFTER_FAILURE)
    assert healthz(late, NOW, TICK, None)[0] == 503
    assert healthz(Health(leader=True), NOW, TICK, None)[0] == 503  # no tick yet


def test_a_standby_is_healthy_unless_it_failed() -> None:
    assert healthz(Health(), NOW, TICK, None)[0] == 200
    assert healthz(Health(last_error="Vault unavailable: x"), NOW, TICK, None)[0] == 503


def test_a_stuck_certificate_or_a_token_problem_fails() -> None:
    assert healthz(Health(certificate_stuck="expired"), NOW, TICK, None)[0] == 503
    assert healthz(Health(), NOW, TICK, {"problem": "expired"})[0] == 503
    assert healthz(Health(), NOW, TICK, {"problem": ""})[0] == 200


def test_the_body_names_only_the_kind_of_error() -> None:
    health = Health(
        leader=True,
        last_tick=NOW,
        last_error="GraphError: tenant 1234 said no",
        failing={"b", "a"},
        certificate_stuck="",
        probe_failing={"c"},
    )
    status, body = healthz(health, NOW, TICK, None)
    assert status == 200
    assert body == {
        "status": "ok",
        "leader": True,
        "last_tick": NOW.isoformat(),
        "last_error": "GraphError",
        "failing_integrations": ["a", "b"],
        "management_certificate_stuck": False,
        "vault_token": None,
        "probe_failing_integrations": ["c"],  # degraded, not failing
    }
