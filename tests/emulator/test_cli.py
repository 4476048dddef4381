"""``azsidecar emulator serve`` as a process, and the ``scenario`` demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests
from click.testing import CliRunner

from sidecar.cli.main import main


def test_serve_prints_json_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sidecar.cli.main import main; main()",
            "emulator",
            "serve",
            "--port",
            "0",
            "--ca-dir",
            str(tmp_path / "ca"),
            "--state-file",
            str(tmp_path / "state.json"),
            "--replicas",
            "2",
            "--lag-profile",
            "heavy",
            "--clock-factor",
            "60",
            "--seed",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["base_url"].startswith("https://127.0.0.1:")
        assert Path(line["ca_path"]) == tmp_path / "ca" / "ca.pem"
        session = requests.Session()
        session.trust_env = False
        session.verify = line["ca_path"]
        clock = session.get(f"{line['base_url']}/_emulator/clock").json()
        assert clock["mode"] == "accelerated" and clock["factor"] == 60
        replication = session.get(f"{line['base_url']}/_emulator/replication").json()
        assert replication["replicas"] == 2 and replication["profile"]["name"] == "heavy"
        session.post(f"{line['base_url']}/_emulator/tenants", json={"displayName": "T"})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    snapshot = json.loads((tmp_path / "state.json").read_text())
    assert [t["displayName"] for t in snapshot["tenants"]] == ["T"]


def test_scenario_runs_and_exits_zero() -> None:
    result = CliRunner().invoke(main, ["emulator", "scenario"])
    assert result.exit_code == 0, result.output
    assert "AADSTS7000215" in result.output
    assert "AADSTS7000222" in result.output
    assert "summary:" in result.output
