"""The chaos figures: totals over seeds, and the README section between its markers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bench.report import machine

BEGIN, END = "<!-- chaos:results -->", "<!-- /chaos:results -->"


def summary(results: list[dict[str, Any]], *, speed: float, rate_scale: float) -> dict[str, Any]:
    faults: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    under = sum(1 for r in results for x in r.get("refusals", []) if x.get("caused_by"))
    for r in results:
        faults.update(r["faults_injected"])
        ops.update(r["operator_actions"])
        checks.update(r["checks"])
        stages.update(r["failures_by_stage"])
    return {
        "machine": machine(),
        "seeds_run": [r["seed"] for r in results],
        "days_per_seed": results[0]["days"] if results else 0,
        "speed": speed,
        "rate_scale": rate_scale,
        "seeds_ok": sum(1 for r in results if r["ok"]),
        "faults_injected": dict(sorted(faults.items())),
        "operator_actions": dict(sorted(ops.items())),
        "runs": sum(r["runs"] for r in results),
        "runs_failed": sum(r["runs_failed"] for r in results),
        "failures_by_stage": dict(sorted(stages.items())),
        # Sign-ins Azure refused: apart, those an injected fault explains (chaos.json's
        # per-seed "refusals" say which) and the rest (each a violation; a seed from a
        # harness that kept no "refusals" has all of its refusals counted here).
        "refused_under_fault": under,
        "refused_without_fault": stages["sign-in"] - under,
        "handed_checked": sum(r["handed_checked"] for r in results),
        "samples": sum(r["samples"] for r in results),
        "unobservable_samples": sum(r["unobservable_samples"] for r in results),
        "invariant_checks": sum(checks.values()),
        "checks": dict(sorted(checks.items())),
        "violations": sum(len(r["violations"]) for r in results),
        "excused_samples": sum(r["excused_samples"] for r in results),
        "graph_writes_by_daemons": sum(r["graph_writes_by_daemons"] for r in results),
        "errors": [f"seed {r['seed']}: {r['error']}" for r in results if r["error"]],
        "real_seconds": round(sum(r["real_seconds"] for r in results), 1),
        "seeds": results,
    }


def readme_section(f: dict[str, Any]) -> str:
    m = f["machine"]
    injected = f["faults_injected"]
    faults = ", ".join(
        f"{k} {v}"
        for k, v in injected.items()
        if not k.startswith(("skipped_", "armed_", "crashed_"))
    )
    crashed = sum(v for k, v in injected.items() if k.startswith("crashed_"))
    steps = ", ".join(k.removeprefix("crashed_") for k in injected if k.startswith("crashed_"))
    armed = sum(v for k, v in injected.items() if k.startswith("armed_"))
    skipped = sum(v for k, v in injected.items() if k.startswith("skipped_"))
    ops = ", ".join(f"{k} {v}" for k, v in f["operator_actions"].items())
    checks = ", ".join(f"{k} {v}" for k, v in f["checks"].items())
    stages = ", ".join(f"{k} {v}" for k, v in f["failures_by_stage"].items()) or "none"
    seeds = f["seeds_run"]
    under = f.get("refused_under_fault", 0)
    signin = f["failures_by_stage"].get("sign-in", 0) - under
    arm = f["failures_by_stage"].get("arm", 0)
    return (
        f"Measured by `make chaos` here ({m['cores']} shared cores, {m['openbao']},"
        f" {m['date']}, commit {m['commit']}): **{len(seeds)} seed(s)** ({seeds[0]}..{seeds[-1]})"
        f" of **{f['days_per_seed']:g} emulated days** each at {f['speed']:g}x"
        f" (fault rates x{f['rate_scale']:g}), {f['real_seconds'] / 60:.0f} real minutes;"
        f" {f['seeds_ok']} of {len(seeds)} seeds passed.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| faults injected, by type | {faults} |\n"
        f"| kills mid-rotation | the next leader died at a rotation step {crashed} times"
        f" ({steps or 'none'}); armed but no rotation came before the fault ended {armed}"
        f" times; faults skipped because their target was already down: {skipped} |\n"
        f"| operator actions | {ops} |\n"
        f"| runs (plugin + resolver, signing in) | {f['runs']}; {f['runs_failed']} failed"
        f" ({stages}): Vault cut or electing, the resolver's daemon killed, or a brand-new"
        f" integration not ready yet (top reasons per seed in chaos.json);"
        f" **{signin} refused by Azure with no recorded fault to explain it** (the harness"
        f" now counts each as a violation), {under} refused while something injected"
        " explained it (the operator"
        " deleting the integration during the run, a storm answering the sign-in, or the"
        f" secret expiring while a run was held up at {f['speed']:g}x; each listed in"
        " chaos.json);"
        f" {arm} refused by ARM |\n"
        f"| credentials handed to runs and checked | {f['handed_checked']} |\n"
        f"| samples of every attached stack | {f['samples']} ({f['unobservable_samples']}"
        " with Vault itself unreachable) |\n"
        f"| invariant checks | {f['invariant_checks']} ({checks}) |\n"
        f"| Graph writes by daemons checked against the lease | {f['graph_writes_by_daemons']} |\n"
        f"| samples in documented windows (reported, not counted) | {f['excused_samples']} |\n"
        f"| **invariant violations** | **{f['violations']}** |\n"
        f"| harness errors | {len(f['errors'])} |\n"
    )


def update_readme(readme: Path, figures: dict[str, Any]) -> bool:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{readme_section(figures)}{END}{tail}")
    return True
