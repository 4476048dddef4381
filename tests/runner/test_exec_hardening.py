"""`azsidecar exec`: no Vault token for the child, no core file of the helper (issue 16, point 8).

The helper holds the credential and its Vault login in memory. A forced SEGV
with `ulimit -c unlimited` used to write both to a core file, and the child
(and its children) inherited VAULT_TOKEN / BAO_TOKEN. The helper runs here as
its own process, logged in with a JWT against the real OpenBao and plugin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sidecar.runner.child import DROPPED
from tests.runner.conftest import RunnerWorld, seed, write_file

LOGIN_VARIABLES = {
    "VAULT_TOKEN": "s.runner-token-must-not-leak",
    "BAO_TOKEN": "s.runner-token-must-not-leak",
    "AZSIDECAR_VAULT_TOKEN": "s.runner-token-must-not-leak",
    "AZSIDECAR_VAULT_SECRET_ID": "secret-id-must-not-leak",
}


@pytest.fixture
def seeded(world: RunnerWorld) -> RunnerWorld:
    seed(world.store, datetime.now(UTC))
    return world


def _helper(world: RunnerWorld, tmp_path: Path, child: str) -> subprocess.Popen[bytes]:
    jwt_file = write_file(tmp_path / "ci.jwt", world.jwt("A", "plan"))
    argv = [
        sys.executable,
        "-c",
        "from sidecar.cli.creds import exec_; exec_()",
        "--stack",
        "A",
        "--phase",
        "plan",
        "--jwt-file",
        str(jwt_file),
        "--role",
        "azsidecar-runner",
        "--mount",
        "azure",
        "--",
        sys.executable,
        "-c",
        child,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env |= {k: v for k, v in world.env().items() if v is not None}
    env |= LOGIN_VARIABLES
    # As the reproduction did: `ulimit -c unlimited`, then the helper. (As
    # unlimited as this process's hard limit allows: in-process CLI tests may have
    # lowered it; without CAP_SYS_RESOURCE it cannot go back up.)
    shell = ["sh", "-c", 'ulimit -c "$(ulimit -H -c)" && exec "$@"', "sh", *argv]
    return subprocess.Popen(shell, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)


def test_the_child_sees_the_credential_and_no_vault_login(
    seeded: RunnerWorld, tmp_path: Path
) -> None:
    out = tmp_path / "seen.json"
    child = (
        "import json, os, sys; from pathlib import Path;"
        f"Path({str(out)!r}).write_text(json.dumps(dict(os.environ)))"
    )
    helper = _helper(seeded, tmp_path, child)
    assert helper.wait(timeout=60) == 0
    seen = json.loads(out.read_text())
    assert seen["ARM_CLIENT_SECRET"] == "secret-of-I1"
    for name in LOGIN_VARIABLES:
        assert name in DROPPED and name not in seen
    assert not any("must-not-leak" in value for value in seen.values())


def test_the_helper_cannot_dump_core_even_with_ulimit_unlimited(
    seeded: RunnerWorld, tmp_path: Path
) -> None:
    out = tmp_path / "limits.txt"
    # The child reads the helper's limits, then crashes it as a SEGV would.
    child = (
        "import os, signal, time; from pathlib import Path;"
        f"Path({str(out)!r}).write_text(Path(f'/proc/{{os.getppid()}}/limits').read_text());"
        "os.kill(os.getppid(), signal.SIGSEGV); time.sleep(1)"
    )
    helper = _helper(seeded, tmp_path, child)
    assert helper.wait(timeout=60) == -signal.SIGSEGV
    core_line = next(line for line in out.read_text().splitlines() if "core file" in line)
    assert core_line.split()[4] == "0", core_line  # the soft limit, the one the kernel applies
    cores = [p.name for p in tmp_path.iterdir() if p.name.startswith("core")]
    assert cores == []


def test_the_helper_makes_itself_not_dumpable() -> None:
    code = (
        "import ctypes; from sidecar.runner.child import forbid_core_dumps;"
        "libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0);"  # PR_GET_DUMPABLE
        "forbid_core_dumps(); print(before, libc.prctl(3, 0, 0, 0, 0))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["1", "0"]
