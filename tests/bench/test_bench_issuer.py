"""``python -m bench --quick --only issuer``: the issuer's figures reach the table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_issuer_bench_reports_signing_and_jwks_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "issuer", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())["issuer"]
    assert result["sign_token"]["n"] == 30
    assert 0 < result["sign_token"]["p50_ms"] <= result["sign_token"]["p95_ms"]
    assert [e["threads"] for e in result["endpoint"]] == [1, 4]
    assert all(e["rps"] > 0 and e["errors"] == 0 for e in result["endpoint"])
    assert "sign_token (Transit key read + sign)" in done.stdout
    assert "JWKS endpoint, 4 client thread(s)" in done.stdout
