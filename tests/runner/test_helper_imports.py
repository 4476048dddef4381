"""The runner helper loads only what its path needs (issue 17).

``azsidecar creds`` / ``exec`` run at the start of every CI job, so their import
time is paid on every run: the daemon's world (Graph, MSAL, JWT, metrics, the
emulator's web stack), gRPC (only with ``--resolver``) and hvac with requests
and urllib3 (the runner speaks to Vault with :mod:`sidecar.vault_http`) must
stay out. Through the console script, a plain ``creds`` / ``exec`` command line
does not even load click (:mod:`sidecar.cli.entry`), and ``creds``, which starts
no child, does not load :mod:`subprocess`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Packages the runner helper never needs (without --resolver).
HEAVY = (
    "msal",
    "jwt",
    "werkzeug",
    "prometheus_client",
    "grpc",
    "google.protobuf",
    "hvac",
    "requests",
    "urllib3",
    "sidecar.vault",
    "sidecar.model",  # ten record dataclasses: the runner needs only sidecar.phases
    "sidecar.graph",
    "sidecar.runtime",
    "sidecar.daemon",
    "sidecar.management",
    "sidecar.metrics",
    "sidecar.emulator",
    "sidecar.rotation",
    "sidecar.certs",
    "sidecar.store",
    "sidecar.resolve",
    "sidecar.plugin",
    "sidecar.resolver",
)

_PROBE = """
import json, sys
from sidecar.cli.main import main
try:
    main(sys.argv[2:], prog_name="azsidecar", standalone_mode=False)
except BaseException as exc:
    print("exited:", type(exc).__name__, exc, file=sys.stderr)
heavy = tuple(json.loads(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.startswith(
    tuple(h + "." for h in heavy)))))
"""


def _env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "AZSIDECAR_"))
    }
    # Nothing listens there: the run fails fast after taking the whole path up to the read.
    return env | {"AZSIDECAR_VAULT_ADDR": "http://127.0.0.1:9", "VAULT_TOKEN": "hvs.test"}


def _loaded(*args: str) -> tuple[list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("creds", "--help"),
        ("creds", "--stack", "A", "--phase", "plan", "--format", "json"),
        ("creds", "--stack", "A", "--phase", "apply", "--via", "plugin"),
        ("exec", "--stack", "A", "--phase", "plan", "--", "true"),
    ],
)
def test_the_runner_path_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    loaded, stderr = _loaded(*args)
    assert loaded == [], stderr
    if "--help" not in args:
        assert "cannot reach Vault" in stderr  # the run went as far as the read


def test_the_console_script_imports_nothing_heavy() -> None:
    script = Path(sys.executable).parent / "azsidecar"
    if not script.exists():
        pytest.skip("no azsidecar console script beside this interpreter")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), "creds", "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--stack" in done.stdout
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    heavy = sorted(n for n in names if n in HEAVY or n.startswith(tuple(h + "." for h in HEAVY)))
    assert heavy == []


#: Not loaded by the console script's lean path for a plain creds / exec command line.
LEAN_HEAVY = (*HEAVY, "click")


def _script_loads(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    script = Path(sys.executable).parent / "azsidecar"
    if not script.exists():
        pytest.skip("no azsidecar console script beside this interpreter")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    return names, done


@pytest.mark.parametrize(
    "args",
    [
        ("creds", "--stack", "A", "--phase", "plan", "--format", "json"),
        ("creds", "--stack", "A", "--phase", "apply", "--via", "plugin", "--wait", "0s"),
        ("exec", "--stack", "A", "--phase", "plan", "--", "true"),
    ],
)
def test_the_console_script_runs_the_helper_without_click(args: tuple[str, ...]) -> None:
    names, done = _script_loads(*args)
    assert done.returncode == 1 and "cannot reach Vault" in done.stderr  # went as far as the read
    heavy = sorted(
        n for n in names if n in LEAN_HEAVY or n.startswith(tuple(h + "." for h in LEAN_HEAVY))
    )
    assert heavy == []
    if args[0] == "creds":
        assert "subprocess" not in names  # only exec starts a child


def test_the_console_script_still_uses_click_for_everything_else() -> None:
    names, done = _script_loads("creds", "--stack", "A")
    assert done.returncode == 2 and "Missing option '--phase'" in done.stderr
    assert "click" in names


#: Modules the lean creds / exec path once loaded and does without (issue 17): the issuer
#: (config reads its section without it), urllib.request (the transport is http.client's),
#: tempfile and shutil (only a certificate run writes a file), pathlib, logging (nothing
#: is logged unless logging was set up), tomllib (only with a config file), subprocess
#: (only exec starts a child).
LEAN_STDLIB_UNUSED = (
    "sidecar.issuer",
    "urllib.request",
    "tempfile",
    "shutil",
    "pathlib",
    "logging",
    "tomllib",
    "subprocess",
)

_LEAN_PROBE = """
import atexit, json, sys
heavy = tuple(json.loads(sys.argv[1]))
sys.argv = ["azsidecar", *sys.argv[2:]]

@atexit.register
def report():  # the lean path ends with os._exit, after the exit handlers
    print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.startswith(
        tuple(h + "." for h in heavy)))))

from sidecar.cli.entry import main
main()
"""


@pytest.mark.parametrize(
    "args",
    [
        ("creds", "--stack", "A", "--phase", "plan", "--format", "json"),
        ("creds", "--stack", "A", "--phase", "apply", "--via", "plugin", "--wait", "0s"),
        ("exec", "--stack", "A", "--phase", "plan", "--", "true"),
    ],
)
def test_the_lean_path_loads_only_what_it_needs(args: tuple[str, ...]) -> None:
    """The console script's lean path, without site (no editable install's import hook,
    which loads pathlib itself): none of LEAN_STDLIB_UNUSED, nor anything heavy."""
    import sidecar  # noqa: PLC0415 - only to find the package

    unused = (*LEAN_HEAVY, *LEAN_STDLIB_UNUSED)
    package_root = str(Path(sidecar.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LEAN_PROBE, json.dumps(unused), *args],
        env=_env() | {"PYTHONPATH": package_root},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "cannot reach Vault" in done.stderr, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == []  # exec too: it failed before starting its child
