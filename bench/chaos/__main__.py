"""``python -m bench.chaos``: seeded fault schedules, figures to JSON and the README.

Every seed prints its number first; a failing seed replays with
``python -m bench.chaos --seeds N --days D`` (the schedule is a function of the
seed; the processes' timing is not, see the README's chaos section).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.chaos.harness import ChaosOptions, run_chaos
from bench.chaos.report import summary, update_readme


def _one(options: ChaosOptions) -> dict[str, Any]:
    def out(line: str) -> None:
        print(f"[seed {options.seed}] {line}", flush=True)

    result = run_chaos(options, out).to_json()
    if result["error"] and not result["samples"]:
        # The set-up failed (a raft cluster still settling on a busy machine), before any
        # fault: not a finding; the same seed once more.
        out(f"set-up failed ({result['error'][:120]}); running the seed again")
        result = run_chaos(options, out).to_json()
        result["setup_retried"] = True
    verdict = "ok" if result["ok"] else "FAILED"
    out(
        f"{verdict}: {sum(result['faults_injected'].values())} faults, {result['runs']} runs,"
        f" {result['invariant_checks']} checks, {len(result['violations'])} violations"
        f" in {result['real_seconds']:.0f} s"
    )
    for violation in result["violations"][:10]:
        out(f"  violation {violation}")
    if result["error"]:
        out(f"  error {result['error']}")
    return result


def _write(path: Path, figures: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--count", type=int, default=0, help="seeds first..first+count-1")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--speed", type=float, default=1440.0)
    parser.add_argument("--rate-scale", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at the same time")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="keep every process's log here")
    parser.add_argument("--update-readme", type=Path, default=None)
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds[0], args.seeds[0] + args.count)) if args.count else args.seeds
    options = [
        ChaosOptions(
            seed=s,
            days=args.days,
            speed=args.speed,
            rate_scale=args.rate_scale,
            runs_every=timedelta(minutes=20),
            logs=None if args.logs is None else args.logs / f"seed{s}",
        )
        for s in seeds
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_one, options))
    else:
        results = []
        for o in options:  # the figures so far are written after every seed
            results.append(_one(o))
            if args.out is not None:
                _write(args.out, summary(results, speed=args.speed, rate_scale=args.rate_scale))
    figures = summary(results, speed=args.speed, rate_scale=args.rate_scale)
    print(json.dumps({k: v for k, v in figures.items() if k != "seeds"}, indent=1))
    if args.out is not None:
        _write(args.out, figures)
    if args.update_readme is not None and not update_readme(args.update_readme, figures):
        print(f"no chaos markers in {args.update_readme}", file=sys.stderr)
        return 2
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
