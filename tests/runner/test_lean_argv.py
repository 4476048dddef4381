"""The console script's lean path for ``creds`` / ``exec`` reads argv exactly as click does.

:func:`sidecar.cli.runner_argv.parse` either gives the very parameters click's
commands receive, or ``None`` (click then handles the command line, help and
errors included). Its option table is checked against the click commands, so
an option added to one and not the other fails here (issue 17).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from sidecar.cli.creds import creds, exec_
from sidecar.cli.runner_argv import FORMAT, OPTIONS, parse

COMMANDS = {"creds": creds, "exec": exec_}
_UNSET = getattr(click.core, "UNSET", None)
BASE = ("--stack", "A", "--phase", "plan")


def _click_params(name: str, args: list[str]) -> dict[str, Any]:
    with COMMANDS[name].make_context(name, list(args)) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize("name", ["creds", "exec"])
def test_the_option_table_is_the_click_commands(name: str) -> None:
    declared = [p for p in COMMANDS[name].params if isinstance(p, click.Option)]
    table = [*OPTIONS, FORMAT] if name == "creds" else list(OPTIONS)
    assert [p.name for p in declared] == [o.dest for o in table]
    for param, opt in zip(declared, table, strict=True):
        assert (param.opts, param.secondary_opts) == ([opt.flag], [])
        # click 8.2+ marks "no default" with a sentinel, which reaches the command as None.
        default = None if param.default is _UNSET else param.default
        assert (param.required, default, param.envvar) == (opt.required, opt.default, opt.envvar)
        assert (param.nargs, param.multiple, param.is_flag, param.count) == (1, False, False, False)
        kind = param.type
        if opt.choices is not None:
            assert isinstance(kind, click.Choice) and tuple(kind.choices) == opt.choices
            assert kind.case_sensitive
        elif opt.path:
            assert isinstance(kind, click.Path)
            assert (kind.exists, kind.dir_okay, kind.file_okay) == (opt.must_exist, False, True)
            assert not (kind.writable or kind.executable or kind.resolve_path or kind.allow_dash)
            assert kind.readable and kind.type is None
        else:
            assert kind is click.STRING
        assert param.callback is None
    arguments = [p.name for p in COMMANDS[name].params if isinstance(p, click.Argument)]
    assert arguments == (["command"] if name == "exec" else [])


@pytest.fixture
def files(tmp_path: Path) -> Iterator[dict[str, str]]:
    made = {}
    for what in ("jwt", "token", "ca", "config", "role", "secret"):
        path = tmp_path / what
        path.write_text("x")
        made[what] = str(path)
    made["dir"] = str(tmp_path)
    made["missing"] = str(tmp_path / "nope")
    unreadable = tmp_path / "unreadable"
    unreadable.write_text("x")
    unreadable.chmod(0)
    made["unreadable"] = str(unreadable)
    yield made
    unreadable.chmod(0o600)


def _lean_cases(f: dict[str, str]) -> list[tuple[str, list[str]]]:
    every = [
        *BASE,
        "--wait",
        "15m",
        "--mount",
        "azure",
        "--via",
        "plugin",
        "--resolver",
        "r:1",
        "--resolver-ca",
        f["ca"],
        "--auth",
        "jwt",
        "--token-file",
        f["token"],
        "--jwt-file",
        f["jwt"],
        "--role",
        "azsidecar-runner",
        "--jwt-mount",
        "ci",
        "--role-id-file",
        f["role"],
        "--secret-id-file",
        f["secret"],
        "--config",
        f["config"],
    ]
    return [
        ("creds", [*BASE]),
        ("creds", ["--phase", "apply", "--stack", "web"]),
        ("creds", [*every, "--format", "json"]),
        ("creds", ["--stack=A", "--phase=plan", "--format=dotenv", "--wait=", "--mount="]),
        ("creds", [*BASE, "--"]),
        ("creds", [*BASE, "--jwt-file", f["missing"], "--token-file", ""]),
        ("exec", [*every, "--", "terraform", "plan"]),
        ("exec", [*BASE, "terraform", "apply", "-auto-approve", "--help", "--", "x"]),
        ("exec", [*BASE, "--", "--stack", "-h"]),
        ("exec", ["--phase=apply", "--stack=s", "sh"]),
    ]


def _fallback_cases(f: dict[str, str]) -> list[tuple[str, list[str]]]:
    return [
        ("creds", []),
        ("creds", ["--help"]),
        ("creds", [*BASE, "-h"]),
        ("creds", ["--stack", "A"]),
        ("creds", [*BASE, "--phase", "apply"]),
        ("creds", [*BASE[:3], "later"]),
        ("creds", [*BASE, "--format", "yaml"]),
        ("creds", [*BASE, "--via", "Plugin"]),
        ("creds", [*BASE, "--wait"]),
        ("creds", [*BASE, "--wait", "-1s"]),
        ("creds", [*BASE, "--sta", "B"]),
        ("creds", [*BASE, "extra"]),
        ("creds", [*BASE, "--", "extra"]),
        ("creds", [*BASE, "--resolver-ca", f["missing"]]),
        ("creds", [*BASE, "--jwt-file", f["dir"]]),
        ("creds", [*BASE, "--config", f["unreadable"]]),
        ("creds", ["-", *BASE]),
        ("exec", [*BASE]),
        ("exec", [*BASE, "--"]),
        ("exec", [*BASE, "--format", "json", "--", "true"]),
        ("exec", [*BASE, "--bogus", "--", "true"]),
        ("exec", ["--stack", "A", "--", "--phase", "plan", "true"]),
        ("exec", [*BASE, "-", "true"]),
        ("stack", ["list"]),
    ]


def test_the_lean_reading_is_click_s(files: dict[str, str]) -> None:
    for name, args in _lean_cases(files):
        lean = parse(name, args, {})
        assert lean is not None, (name, args)
        assert lean == _click_params(name, args), (name, args)


def test_anything_unusual_is_left_to_click(files: dict[str, str]) -> None:
    for name, args in _fallback_cases(files):
        if files["unreadable"] in args and os.access(files["unreadable"], os.R_OK):
            continue  # root reads it anyway, and so does click
        assert parse(name, args, {}) is None, (name, args)


def test_the_configuration_variable_is_read_as_click_reads_it(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for value, lean in ((files["config"], True), ("", True), (files["dir"], False)):
        monkeypatch.setenv("AZSIDECAR_CONFIG", value)
        environ = {"AZSIDECAR_CONFIG": value}
        got = parse("creds", list(BASE), environ)
        assert (got is not None) == lean, value
        if got is not None:
            assert got == _click_params("creds", list(BASE))
        given = parse("creds", [*BASE, "--config", files["config"]], environ)
        assert given == _click_params("creds", [*BASE, "--config", files["config"]])


# -- the console script, end to end (no Vault listens: the run fails at the read) ----------


def _script() -> Path:
    script = Path(sys.executable).parent / "azsidecar"
    if not script.exists():
        pytest.skip("no azsidecar console script beside this interpreter")
    return script


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "AZSIDECAR_"))
    }
    return env | {"AZSIDECAR_VAULT_ADDR": "http://127.0.0.1:9", "VAULT_TOKEN": "hvs.t"} | extra


_CLICK = "import sys; from sidecar.cli.main import main; sys.argv[0] = 'azsidecar'; main()"


@pytest.mark.parametrize(
    "args",
    [
        ["creds", *BASE],
        ["creds", *BASE, "--format", "json", "--wait", "soon"],
        ["creds", "--stack", "a/b", "--phase", "plan"],
        ["creds", *BASE, "--auth", "jwt"],
        ["exec", *BASE, "--", "true"],
        ["creds", "--stack", "A"],
        ["creds", "--help"],
        ["exec", "--help"],
        ["exec", *BASE],
    ],
)
def test_the_console_script_says_what_click_says(args: list[str]) -> None:
    """Output, errors and exit status are the same through the lean path as through click."""
    script = _script()
    lean = subprocess.run(
        [sys.executable, str(script), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    through_click = subprocess.run(
        [sys.executable, "-c", _CLICK, *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (lean.returncode, lean.stdout, lean.stderr) == (
        through_click.returncode,
        through_click.stdout,
        through_click.stderr,
    )
    assert lean.returncode != 0 or "--help" in args


def test_a_lean_run_still_runs_exit_handlers_and_flushes(tmp_path: Path) -> None:
    """The lean path skips the interpreter's teardown, not what programs expect at exit."""
    marker = tmp_path / "atexit-ran"
    code = (
        "import atexit, sys; from pathlib import Path;"
        f"atexit.register(Path({str(marker)!r}).write_text, 'yes');"
        "sys.stdout.write('buffered, no newline');"
        "sys.argv = ['azsidecar', 'creds', '--stack', 'A', '--phase', 'plan'];"
        "from sidecar.cli.entry import main; main()"
    )
    env = {k: v for k, v in _env().items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and done.stderr.startswith("Error: Vault at http://127.0.0.1:9")
    assert done.stdout == "buffered, no newline"
    assert marker.read_text() == "yes"
