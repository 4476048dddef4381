"""What the demo prints: progress lines and the closing summary table. Pure formatting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from sidecar.demo.runs import RunTally


@dataclass(frozen=True)
class DaemonCounts:
    """The daemon's own counters, read from its ``/metrics``."""

    rotations: dict[str, int]
    removals: int
    certificate_renewals: int
    rotation_failures: int

    @property
    def total_rotations(self) -> int:
        return sum(self.rotations.values())


def parse_metrics(text: str) -> DaemonCounts:
    rotations: dict[str, int] = {}
    removals = renewals = failures = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "azsidecar_rotations_total":
                name = sample.labels.get("integration", "")
                rotations[name] = rotations.get(name, 0) + int(sample.value)
            elif sample.name == "azsidecar_secret_removals_total":
                removals += int(sample.value)
            elif sample.name == "azsidecar_management_certificate_renewals_total":
                renewals += int(sample.value)
            elif sample.name == "azsidecar_rotation_failures_total":
                failures += int(sample.value)
    return DaemonCounts(rotations, removals, renewals, failures)


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


PROGRESS_HEADER = (
    f"  {'emulated time':<17} {'hour':>5} {'real':>7} {'rotations':>9} {'cert renewals':>13}"
    f" {'runs':>6} {'failed':>6}"
)


def progress_line(
    now: datetime, hour: float, real_seconds: float, counts: DaemonCounts, tally: RunTally
) -> str:
    return (
        f"  {when(now):<17} {hour:>5.1f} {real_seconds:>6.1f}s {counts.total_rotations:>9}"
        f" {counts.certificate_renewals:>13} {tally.runs:>6} {len(tally.failed):>6}"
    )


@dataclass(frozen=True)
class IntegrationRow:
    name: str
    tenant: str
    phase: str
    rotations: int
    held_in_azure: int
    runs: int
    failed: int


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A plain text table, numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str], row: Sequence[object] | None = None) -> str:
        parts = []
        for i, value in enumerate(values):
            numeric = row is not None and isinstance(row[i], int | float)
            parts.append(value.rjust(widths[i]) if numeric else value.ljust(widths[i]))
        return "  " + "  ".join(parts).rstrip()

    out = [line(list(headers)), "  " + "  ".join("-" * w for w in widths)]
    out += [line(cell, row) for cell, row in zip(cells, rows, strict=True)]
    return out


def summary(
    rows: Sequence[IntegrationRow],
    counts: DaemonCounts,
    tally: RunTally,
    management_keys: int,
    hours: float,
) -> list[str]:
    failed = tally.failed
    auth_failed = [r for r in failed if r.auth_failure]
    lines = [
        f"Summary: {hours:g} emulated hours",
        "",
        *table(
            ["integration", "tenant", "phase", "rotations", "secrets in Azure", "runs", "failed"],
            [
                [r.name, r.tenant[:8], r.phase, r.rotations, r.held_in_azure, r.runs, r.failed]
                for r in rows
            ],
        ),
        "",
        *table(
            ["", "count"],
            [
                [
                    "secret rotations (after each integration's first secret)",
                    counts.total_rotations,
                ],
                ["expired secrets removed from Azure", counts.removals],
                ["management certificate renewals", counts.certificate_renewals],
                ["management certificates held in Azure", management_keys],
                ["runs (plan + apply, plugin + resolver)", tally.runs],
                [
                    "  through the plugin (bao read azsidecar/creds/...)",
                    len(tally.by(path="plugin")),
                ],
                ["  through the gRPC resolver", len(tally.by(path="resolver"))],
                ["runs that failed to authenticate to Azure", len(auth_failed)],
                ["runs that failed otherwise", len(failed) - len(auth_failed)],
                ["failed daemon ticks (retried)", counts.rotation_failures],
            ],
        ),
    ]
    if failed:
        lines += ["", "Failures:"]
        lines += [f"  {n} x {reason}" for reason, n in tally.failure_reasons().most_common(10)]
    return lines
