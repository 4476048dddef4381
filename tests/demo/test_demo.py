"""`azsidecar demo`, shortened: exit 0, no failed run, a summary, and no process left behind.

Every process the demo starts inherits a marker variable from it; after the
demo has exited, no process on the machine may still carry the marker.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

MARKER = "SIDECAR_DEMO_TEST_RUN"


def processes_with(marker: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] == "Z":
            continue
        if marker.encode() in environ.split(b"\0"):
            found.append((int(entry.name), cmdline[:120]))
    return found


def demo_env(run_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZSIDECAR_", "VAULT_"))}
    env[MARKER] = run_id
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _number(pattern: str, output: str, flags: int = 0) -> int:
    """The first group of ``pattern`` in the demo's report, as an int."""
    found = re.search(pattern, output, flags)
    assert found is not None, pattern
    return int(found[1])


def wait_gone(marker: str, timeout: float = 10.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    left = processes_with(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_with(marker)
    return left


def test_demo_runs_a_day_with_a_rotation_and_no_failed_run() -> None:
    run_id = uuid.uuid4().hex
    marker = f"{MARKER}={run_id}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli.main", "demo", "--hours", "26", "--speed", "3600"],
        env=demo_env(run_id),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    took = time.monotonic() - started
    output = result.stdout
    print(f"\ndemo --hours 26 --speed 3600: {took:.1f} s\n{output[-2500:]}")
    assert result.returncode == 0, output[-3000:] + result.stderr[-3000:]
    assert re.search(r"runs that failed to authenticate to Azure\s+0\b", output)
    assert re.search(r"runs that failed otherwise\s+0\b", output)
    runs = _number(r"runs \(plan \+ apply, plugin \+ resolver\)\s+(\d+)", output)
    assert runs == 26 * 6 * 4  # a slot every 10 emulated minutes, four runs each
    rotations = _number(r"secret rotations .*?\s(\d+)$", output, re.M)
    assert rotations >= 2, "each integration's first secret was renewed before it expired"
    renewals = _number(r"management certificate renewals\s+(\d+)", output)
    assert renewals >= 1
    for name in ("contoso-read", "fabrikam-write"):
        assert re.search(rf"^\s+{name}\s+\w+\s+(plan|apply)\s+\d+\s+\d+\s+\d+\s+0$", output, re.M)
    assert "Every process the demo started has been stopped" in output
    assert wait_gone(marker) == []
    # Secrets and tokens never reach the output.
    assert "PRIVATE KEY" not in output + result.stderr
    assert "hvs." not in output and "s." + "root" not in output


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_demo_stops_everything_when_interrupted(inherited: str) -> None:
    """``ignored``: started with SIGINT ignored, as a non-interactive shell starts
    ``azsidecar demo &`` (and as a test runner's worker may be): Ctrl-C still stops it."""
    run_id = uuid.uuid4().hex
    marker = f"{MARKER}={run_id}"
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli.main", "demo", "--hours", "48", "--speed", "1000"],
        env=demo_env(run_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint if inherited == "ignored" else None,  # noqa: PLW1509
    )
    assert process.stdout is not None
    seen = []
    try:
        deadline = time.monotonic() + 90
        for line in process.stdout:
            seen.append(line)
            if line.startswith("Running from") or time.monotonic() > deadline:
                break
        assert any(line.startswith("Running from") for line in seen), "".join(seen)[-2000:]
        assert len(processes_with(marker)) >= 4  # bao, its plugin, the emulator, the daemon
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest
    assert wait_gone(marker) == []
