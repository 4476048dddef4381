"""A sign-in Azure refused is a violation unless an injected fault explains it (seed 5's lead).

The figure used to count every refusal as "refused by Azure"; the harness now
records what Azure said and every fault standing, and the report keeps the
refusals a fault explains apart from those nothing explains.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bench.chaos.harness import Applied, expired_in_flight, refusal_causes
from bench.chaos.invariants import AzureView, Checker, ReadyRule, VaultView
from bench.chaos.report import readme_section, summary
from bench.chaos.schedule import Fault

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _applied(kind: str, target: str = "", hours: float = 1.0) -> Applied:
    fault = Fault(timedelta(hours=hours), kind, timedelta(minutes=30))
    start = T0 + fault.at
    return Applied(start, fault, start + fault.duration, target)


def test_only_a_deletion_of_that_integration_or_a_storm_answering_explains_a_refusal() -> None:
    deleted = _applied("op_delete_integration", "ops-1")
    other = _applied("op_delete_integration", "ops-2")
    storm = _applied("graph_5xx")
    kill = _applied("daemon_kill_mid_rotation")
    lag = _applied("stuck_replica")
    assert refusal_causes("ops-1", 401, [deleted, other, kill, lag]) == [deleted]
    assert refusal_causes("ops-1", 400, [other, storm, kill, lag]) == []
    assert refusal_causes("ops-1", 503, [storm, kill]) == [storm]


def test_a_secret_that_expired_while_the_run_was_in_flight_is_named() -> None:
    expires = T0 + timedelta(hours=24)
    asked = expires - timedelta(minutes=31)  # inside the rule (margin 30 min)
    assert expired_in_flight(asked, expires - timedelta(minutes=1), expires) == ""
    said = expired_in_flight(asked, expires + timedelta(minutes=2), expires)
    assert "0:33:00" in said and "accelerated clock" in said


def test_a_refusal_with_no_fault_is_a_violation_and_one_under_a_fault_is_reported() -> None:
    checker = Checker(
        cast(VaultView, None), cast(AzureView, None), ReadyRule(timedelta(hours=1), timedelta(0))
    )
    checker.refused(T0, "ops-1", "abcdef123456", "AADSTS700016", ["1.00..1.50 h deleted"])
    assert not checker.findings.violations and checker.findings.excused
    checker.refused(T0, "contoso", "abcdef123456", "AADSTS7000215", [])
    assert len(checker.findings.violations) == 1
    assert "refused-only-under-fault" in checker.findings.violations[0]
    assert "AADSTS7000215" in checker.findings.violations[0]
    assert checker.findings.checks["refused-only-under-fault"] == 2


def _seed(refusals: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "seed": 5,
        "days": 7.0,
        "ok": True,
        "faults_injected": {},
        "operator_actions": {},
        "checks": {},
        "failures_by_stage": {"sign-in": len(refusals)},
        "refusals": refusals,
        "runs": 10,
        "runs_failed": len(refusals),
        "handed_checked": 10,
        "samples": 1,
        "unobservable_samples": 0,
        "violations": [],
        "excused_samples": 0,
        "graph_writes_by_daemons": 0,
        "error": "",
        "real_seconds": 1.0,
    }


def test_the_figures_keep_refusals_a_fault_explains_apart() -> None:
    figures = summary(
        [_seed([{"caused_by": ["deleted"]}, {"caused_by": []}])], speed=1440, rate_scale=1
    )
    assert figures["refused_under_fault"] == 1 and figures["refused_without_fault"] == 1
    text = readme_section(figures)
    assert "**1 refused by Azure with no recorded fault to explain it**" in text
    assert "1 refused while something injected explained it" in text
    older = _seed([])  # a seed from the harness before: a refusal and no record of it
    older["failures_by_stage"] = {"sign-in": 1}
    assert summary([older], speed=1440, rate_scale=1)["refused_without_fault"] == 1
