"""The results as one table, as JSON, and as the README's results section.

``results.json`` holds every figure; the table and the README section are
rendered from it alone, so they never disagree. The README block sits
between ``<!-- bench:results -->`` and ``<!-- /bench:results -->``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import issuer
from sidecar.devstack.openbao import find_bao

BEGIN, END = "<!-- bench:results -->", "<!-- /bench:results -->"
Row = tuple[str, str, str, str]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    bao = ""
    try:
        bao = subprocess.run(
            [find_bao(), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except Exception:
        bao = "unknown"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "openbao": bao,
        "platform": platform.platform(),
        "commit": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _lags(result: dict[str, Any]) -> str:
    true, seen = result["true_lag_s"], result["observed_last_failure_s"]
    return (
        f"true p50/p99/max {true['p50']:.0f}/{true['p99']:.0f}/{true['max']:.0f} s; "
        f"observed (last refusal) {seen['p50']:.0f}/{seen['p99']:.0f}/{seen['max']:.0f} s"
    )


def _probes(result: dict[str, Any]) -> str:
    per = result["probes_per_rotation"]
    failing = result.get("probe_failing_minutes", 0)
    return (
        f"{per['mean']:.0f} sign-ins per rotation (max {per['max']}); "
        f"health degraded {failing:,} integration-minutes"
    )


def _rate(result: dict[str, Any]) -> str:
    if result["failures"] == 0:
        upper = result.get("failure_rate_upper95")
        bound = f", <{100 * upper:.5f}% at 95%" if upper else ""
        return f"0 of {result['runs']:,}{bound}"
    return f"{_pct(result['failure_rate'], 3)} ({result['failures']:,} of {result['runs']:,})"


RESOLVE_METHODS = {
    "kv": "raw KV v2 read (the floor)",
    "plugin": "plugin: read azure/creds/S/P",
    "resolver": "gRPC resolver",
    "creds": "`azsidecar creds` end to end",
    "creds wheel": "`azsidecar creds` end to end, installed from a wheel",
    "bao": "`bao read` of the plugin path (a runner's floor)",
    "resolver cold": "diagnostic: resolver reading the index every call",
    "kv x4": "diagnostic: its 4 KV reads, from the client",
    "capabilities": "diagnostic: capabilities-self, kept-alive",
    "authorise": "diagnostic: the resolver's token check",
    "plugin hop": "diagnostic: plugin round trip, no KV",
}


def _resolve_rows(resolve: dict[str, Any] | None) -> list[Row]:
    """One row per way to the credential and mode: p50 / p99, ratios to the raw KV read."""
    if not resolve:
        return [("resolve latency", "plugin / resolver / raw KV", "not measured yet", "8.1")]
    out: list[Row] = []
    goals = resolve.get("goals", {})
    modes = resolve["modes"]
    for mode in sorted(modes, key=lambda m: modes[m]["plan"]["clients"]):
        summary = modes[mode]
        clients = summary["plan"]["clients"]
        label = (
            "resolve latency, sequential"
            if clients == 1
            else f"resolve latency, {clients} concurrent"
        )
        for method, measure in RESOLVE_METHODS.items():
            figures = summary["methods"].get(method)
            if figures is None:
                continue
            value = f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms"
            if clients > 1:
                value += f", {_num(figures['throughput_rps'], 0)} req/s"
            side = f"n={figures['requests']:,}"
            if figures["errors"]:
                side += f", {figures['errors']} FAILED"
            if method != "kv":
                side += f"; x{figures['p50_ratio']:.2f} / x{figures['p99_ratio']:.2f} of raw KV"
            goal = goals.get(method)
            if goal is not None:
                verdict = "met" if goal.get(mode) else "MISSED"
                side += f"; goal p50 <= {goal['p50_ratio_max']:g}x: {verdict}"
            goal_key = {"creds": "creds_goals", "creds wheel": "creds_wheel_goals"}.get(method)
            creds_goal = resolve.get(goal_key, {}).get(mode) if goal_key else None
            if creds_goal is not None:
                verdict = "met" if creds_goal["met"] else "MISSED"
                side += f"; goal p50 <= {creds_goal['p50_ms_max']:g} ms: {verdict}"
            out.append((label, measure, value, side))
    return out


def rows(results: dict[str, Any]) -> list[Row]:
    """(benchmark, measure, value, goal / comparison) for every figure."""
    out: list[Row] = []
    out += _resolve_rows(results.get("resolve"))
    for case in (results.get("scale") or {}).get("cases", []):
        label = f"scale: {case['description']}"
        throttle, daemon = case["throttle"], case["daemon"]
        out += [
            (label, "wall time (emulated s)", _num(case["wall_emulated_s"]), ""),
            (
                label,
                "Graph calls / rotation",
                _num(case["graph"]["calls_per_rotation"], 2),
                f"{_num(case['graph']['throttled_per_rotation'], 2)} of them 429",
            ),
            (label, "Vault writes / rotation", _num(case["vault"]["writes_per_rotation"], 2), ""),
            (
                label,
                "fraction of throttle ceiling",
                _pct(throttle["fraction_of_ceiling"]),
                f">= 80%; limited by {throttle['limited_by']}",
            ),
            (
                label,
                "daemon peak RSS (MiB)",
                _num(daemon["peak_rss_mib"]),
                "<= 200 MB at 10,000" if case["integrations"] >= 10000 else "",
            ),
            (
                label,
                "daemon CPU ms / rotation",
                _num(daemon["cpu_ms_per_rotation"]),
                f"{_num(daemon['rotations_per_real_s'])} rotations per real s",
            ),
        ]
    consistency = results.get("consistency")
    if consistency:
        table = consistency["results"]
        for strategy, profiles in table.items():
            for profile, result in profiles.items():
                label = f"consistency: {strategy}"
                note = f"{result['waited']:,} run-minutes waited" if result.get("waited") else ""
                capped = result["events"].get("refused-at-cap-without-delete")
                if capped:
                    note = f"{capped:,} refused at the 20-credential cap if runs kept theirs"
                out.append((label, f"failed sign-ins, {profile}", _rate(result), note))
                if "probes_per_rotation" in result:
                    out.append((label, f"lag, {profile}", _lags(result), _probes(result)))
        for strategy, profiles in consistency.get("new_integrations", {}).items():
            for profile, result in profiles.items():
                first = result["minutes_to_first_credential"]
                out.append(
                    (
                        f"new integration: {strategy}",
                        f"first credential, {profile}",
                        f"p50 {first.get('p50', 0):.0f} min, max {first.get('max', 0):.0f} min",
                        f"runs failed {_rate(result)}",
                    )
                )
        for strategy, rows in consistency.get("experiments", {}).items():
            verdict = rows.get("zero_failures_on_every_profile")
            out.append(
                (
                    f"experiment: {strategy}",
                    "zero failures on every profile",
                    "yes" if verdict else "no: not the default",
                    "rotations and new integrations",
                )
            )
            for profile, row in rows.items():
                if isinstance(row, dict):
                    out.append(
                        (
                            f"experiment: {strategy}",
                            f"rotations, {profile}",
                            _rate(row["rotations"]),
                            f"new integrations {_rate(row['new_integrations'])}",
                        )
                    )
        for strategy, check in consistency["validation"].items():
            out.append(
                (
                    f"consistency: {strategy}",
                    "HTTP emulator check (default)",
                    f"{_pct(check['http_failure_rate'])} of {check['http_runs']}",
                    f"simulated {_pct(check['simulated_failure_rate'])}, "
                    + ("agrees" if check["agrees"] else "DISAGREES")
                    + (
                        f"; Graph refused credential {check['http_created_before_cap'] + 1}"
                        if "http_created_before_cap" in check
                        else ""
                    ),
                )
            )
    cost = results.get("cost")
    if cost:
        schedule = cost["schedule"]
        out += [
            (
                "cost",
                "daemon CPU s / day / 1,000 integrations",
                _num(cost["cpu_s_per_day_per_1000"], 0),
                f"steady state after the start-up pass; {cost['window_s']:.0f} s at clock "
                f"x{cost['clock_factor']:.0f} scaled to a day; "
                f"{_num(cost['passes_per_day'], 1)} passes/day",
            ),
            (
                "cost",
                "CPU s / pass / 1,000",
                _num(cost["cpu_s_per_pass_per_1000"], 2),
                f"hourly passes only would be "
                f"{_num(schedule['hourly_only_cpu_s_per_day_per_1000'], 0)} CPU s/day",
            ),
            (
                "cost",
                "daemon RSS at rest (MiB)",
                _num(cost["rss_at_rest_mib"]),
                f"peak {_num(cost['peak_rss_mib'])}",
            ),
        ]
    out += issuer.rows(results.get("issuer"))
    return out


def table(results: dict[str, Any]) -> str:
    header: Row = ("benchmark", "measure", "value", "goal / side by side")
    body = rows(results)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in body),
    ]
    return "\n".join(lines)


def readme_section(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    lines = [
        "## Benchmark results",
        "",
        f"Measured by `make bench` on {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB, Python {m.get('python', '?')}, "
        f"{m.get('openbao', '?')} ({m.get('date', '?')}, commit {m.get('commit', '?')}). "
        "Absolute times on a shared machine are noise; compare the rows measured side by side.",
        "",
        table(results),
        "",
        "![failed sign-ins per strategy and lag profile](bench/results/consistency_failures.png)",
        "![age of the ready secret at use](bench/results/consistency_age.png)",
    ]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (out / "README-results.md").write_text(readme_section(results))


def update_readme(readme: Path, results: dict[str, Any]) -> bool:
    """Replace the marked block in ``readme``; False if the markers are absent."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{readme_section(results)}{END}{tail}")
    return True
