"""``python -m bench [--quick] [--out DIR] [--only NAME] [--update-readme]``.

Runs the benchmarks, prints one table, writes ``results.json``,
``README-results.md`` and the PNG plots to ``--out``. With ``--only`` the
other benchmarks' figures are kept from an earlier ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import consistency, cost, issuer, latency, plots, report, scale

BENCHMARKS = ("latency", "scale", "consistency", "cost", "issuer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--only", choices=BENCHMARKS, action="append")
    parser.add_argument("--throttle-writes", type=float, default=3000)
    parser.add_argument("--throttle-per-seconds", type=float, default=150)
    parser.add_argument("--scale-sizes", type=int, nargs="*", help="e.g. 1000 (default: all)")
    parser.add_argument(
        "--update-readme", type=Path, nargs="?", const=Path("README.md"), default=None
    )
    parser.add_argument(
        "--render", action="store_true", help="only re-render table, README and plots"
    )
    args = parser.parse_args(argv)
    if args.render:
        stored = json.loads((args.out / "results.json").read_text())
        report.write(stored, args.out)
        plots.draw(stored, args.out)
        print(report.table(stored))
        if args.update_readme is not None:
            report.update_readme(args.update_readme, stored)
        return 0
    chosen = args.only or list(BENCHMARKS)
    previous = args.out / "results.json"
    results: dict[str, Any] = {}
    if args.only and previous.exists():
        results = json.loads(previous.read_text())
    results["machine"] = report.machine()
    results["quick"] = args.quick
    quota = {"writes": args.throttle_writes, "per_seconds": args.throttle_per_seconds}
    for name in chosen:
        started = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        if name == "latency":
            results["resolve"] = latency.run(args.quick)
        elif name == "scale":
            results["scale"] = scale.run(args.quick, quota, args.scale_sizes)
        elif name == "consistency":
            results["consistency"] = consistency.run(args.quick)
        elif name == "cost":
            results["cost"] = cost.run(args.quick)
        elif name == "issuer":
            results["issuer"] = issuer.run(args.quick)
        print(f"bench: {name} took {time.monotonic() - started:.0f} s", file=sys.stderr)
    report.write(results, args.out)
    plots.draw(results, args.out)
    print(report.table(results))
    if args.update_readme is not None and not report.update_readme(args.update_readme, results):
        print(f"bench: no {report.BEGIN} block in {args.update_readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
