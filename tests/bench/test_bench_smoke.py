"""A fast run of every benchmark (``python -m bench --quick``) so they do not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_runs_every_benchmark_and_reports(tmp_path: Path) -> None:
    """One test, so that pytest-xdist runs the benchmarks once, not once per worker."""
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    quick = (out, json.loads((out / "results.json").read_text()), done.stdout)
    check_sections(quick)
    check_latency(quick)
    check_scale(quick)
    check_consistency(quick)
    check_cost_and_plots(quick)


def check_sections(quick: tuple[Path, dict[str, Any], str]) -> None:
    _, results, table = quick
    assert {"machine", "resolve", "scale", "consistency", "cost", "issuer"} <= set(results)
    assert results["machine"]["cores"] >= 1 and "OpenBao" in results["machine"]["openbao"]
    assert "| benchmark |" in table and "fraction of throttle ceiling" in table


def check_latency(quick: tuple[Path, dict[str, Any], str]) -> None:
    resolve, table = quick[1]["resolve"], quick[2]
    assert set(resolve["modes"]) == {"sequential", "concurrent"}
    for mode in resolve["modes"].values():
        methods = mode["methods"]
        assert {"kv", "plugin", "resolver", "creds"} <= set(methods)
        for figures in methods.values():
            assert figures["requests"] > 0 and figures["errors"] == 0
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
            assert figures["throughput_rps"] > 0
        assert methods["kv"]["p50_ratio"] == 1.0
        assert methods["plugin"]["p50_ratio"] > 0 and methods["resolver"]["p99_ratio"] > 0
        assert methods["kv"]["requests"] >= 100
    assert resolve["modes"]["concurrent"]["plan"]["clients"] == 8
    assert set(resolve["goals"]) == {"plugin", "resolver"}
    assert "resolve latency, 8 concurrent" in table and "req/s" in table


def check_scale(
    quick: tuple[Path, dict[str, Any], str],
) -> None:
    [case] = quick[1]["scale"]["cases"]
    assert case["complete"] and case["rotations"] == case["integrations"]
    assert case["graph"]["errors"] == 0
    assert case["graph"]["reads_per_rotation"] >= 1
    # One intent written and cleared, the secret version and its index, and the new
    # version's pending probe record (verified readiness: written when the daemon
    # adopts its renewal, so readers wait for the probes).
    assert case["vault"]["writes_per_rotation"] == pytest.approx(5, abs=0.5)
    assert case["wall_emulated_s"] > 0
    assert 0 < case["daemon"]["peak_rss_mib"] < 500


def check_consistency(
    quick: tuple[Path, dict[str, Any], str],
) -> None:
    consistency = quick[1]["consistency"]
    table = consistency["results"]
    for profile in ("default", "heavy"):
        assert table["azsidecar"][profile]["failures"] == 0
        assert table["azsidecar"][profile]["runs"] > 10_000
    assert table["azsidecar-tuned"]["stuck-replica"]["failures"] == 0
    assert table["mint-in-run"]["default"]["failure_rate"] > 0.3
    assert 0 < table["mint+sleep60"]["default"]["failure_rate"] < 0.3
    assert all(check["agrees"] for check in consistency["validation"].values())
    check_certificate_consistency(consistency)
    check_federated_consistency(consistency)


def check_certificate_consistency(consistency: dict[str, Any]) -> None:
    """Issue 19: certificate integrations, the product's and a run uploading its own."""
    table = consistency["results"]
    for strategy in ("azsidecar-certificate", "upload-cert-in-run"):
        assert set(table[strategy]) == set(table["azsidecar"])
        for row in table[strategy].values():
            assert row["runs"] > 10_000
    for profile, secret in table["azsidecar"].items():
        certificate = table["azsidecar-certificate"][profile]
        if secret["failures"] == 0:
            assert certificate["failures"] == 0, profile
        assert certificate["events"]["remove:certificate"] > 0, profile
    assert table["upload-cert-in-run"]["default"]["failure_rate"] > 0.3
    upload = consistency["validation"]["upload-cert-in-run"]
    assert upload["agrees"] and set(upload["http_errors"]) == {"AADSTS700027"}


def check_federated_consistency(consistency: dict[str, Any]) -> None:
    """Issue 18: federated integrations, the product's and a run creating its own."""
    table, new = consistency["results"], consistency["new_integrations"]
    for strategy in ("azsidecar-federated", "create-fic-in-run"):
        assert set(table[strategy]) == set(table["azsidecar"])
        assert set(new[strategy]) == set(table["azsidecar"])
        for row in table[strategy].values():
            assert row["runs"] > 10_000
    for profile, row in table["azsidecar-federated"].items():
        assert row["failures"] == 0, profile
        assert new["azsidecar-federated"][profile]["failures"] == 0, profile
    naive = table["create-fic-in-run"]["default"]
    assert naive["failure_rate"] > 0.3
    # Without deleting its credential, every run of an application after its 20th is refused.
    runs_per_application = naive["runs"] // consistency["parameters"]["integrations"]
    assert naive["events"]["refused-at-cap-without-delete"] == consistency["parameters"][
        "integrations"
    ] * (runs_per_application - consistency["parameters"]["federated_cap"])
    create = consistency["validation"]["create-fic-in-run"]
    assert create["agrees"] and set(create["http_errors"]) == {"AADSTS70021"}
    assert create["http_created_before_cap"] == consistency["parameters"]["federated_cap"]


def check_cost_and_plots(quick: tuple[Path, dict[str, Any], str]) -> None:
    out, results, _ = quick
    cost = results["cost"]
    assert cost["cpu_s"] > 0 and cost["passes"] >= 1
    assert cost["cpu_s_per_day_per_1000"] > 0 and cost["token_requests"] >= 1
    for name in ("consistency_failures.png", "consistency_age.png"):
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    section = (out / "README-results.md").read_text()
    assert section.startswith("## Benchmark results") and results["machine"]["cpu"] in section
