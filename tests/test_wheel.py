"""The built wheel, installed in a fresh virtualenv outside the repository, runs the CLI.

Nothing here may read the checkout: the wheel is built from a copy of the
sources, installed without the editable project on the path (its dependencies
come from the project's virtualenv through a ``.pth`` line, so no network), and
every command runs from an empty temporary directory.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from sidecar.cli.main import main
from sidecar.devstack.openbao import OpenBaoDevServer, find_bao
from sidecar.policies import NAMES, render_all, runner_role
from sidecar.vault import connect

# 15-26 s on 2 busy cores (build, venv, install, one OpenBao): not marked slow.
REPO = Path(__file__).resolve().parents[1]

# Run inside the installed virtualenv: every command path of the CLI with `--help`.
_WALK = """
import json, sys
import click
from click.testing import CliRunner
import sidecar, sidecar.policies
from sidecar.cli.main import main

def paths(command, prefix, ctx):
    yield prefix
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from paths(sub, [*prefix, name], click.Context(sub, parent=ctx, info_name=name))

helps = {}
for path in paths(main, [], click.Context(main, info_name="azsidecar")):
    result = CliRunner().invoke(main, [*path, "--help"])
    helps[" ".join(path)] = [result.exit_code, result.output.splitlines()[:1]]
json.dump({
    "sidecar": sidecar.__file__,
    "templates": str(sidecar.policies.SHIPPED),
    "runner_role": sidecar.policies.runner_role(),
    "helps": helps,
}, sys.stdout)
"""


def command_paths(command: click.Command, prefix: list[str], ctx: click.Context) -> Iterator[str]:
    """Every command path of the repository's CLI, as the installed one must list them."""
    yield " ".join(prefix)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            child = click.Context(sub, parent=ctx, info_name=name)
            yield from command_paths(sub, [*prefix, name], child)


@dataclass
class Installed:
    venv: Path
    cwd: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def azsidecar(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.venv / "bin" / "azsidecar", *args)


def _build_wheel(tmp: Path) -> Path:
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "sidecar",
        source / "sidecar",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    dist = tmp / "dist"
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"),
            *("--no-build-isolation", "-w", str(dist), str(source)),
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("azsidecar-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.resolve().is_relative_to(REPO)
    wheel = _build_wheel(tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"),
            *("--no-deps", "--no-index", str(wheel)),
        ],
        check=True,
        timeout=300,
    )
    # The locked dependencies, from the project's virtualenv; a path line in a .pth
    # file does not run that directory's own .pth files, so the editable install of
    # the project stays out of sys.path.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    cwd = tmp / "cwd"
    cwd.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "VAULT_", "BAO_"))
    }
    return Installed(venv=venv, cwd=cwd, env=env)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    result = installed.run(installed.python, "-c", _WALK)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert Path(found["sidecar"]).is_relative_to(installed.venv), found["sidecar"]
    assert Path(found["templates"]).is_relative_to(installed.venv), found["templates"]
    assert found["runner_role"] == runner_role()  # the JWT role the demo and bootstrap write


def test_every_command_has_help_in_the_installed_wheel(installed: Installed) -> None:
    top = installed.azsidecar("--help")
    assert top.returncode == 0, top.stderr[-2000:]
    assert top.stdout.startswith("Usage: azsidecar"), top.stdout
    result = installed.run(installed.python, "-c", _WALK)
    assert result.returncode == 0, result.stderr[-2000:]
    helps = json.loads(result.stdout)["helps"]
    expected = list(command_paths(main, [], click.Context(main, info_name="azsidecar")))
    assert sorted(helps) == sorted(expected)
    assert len(expected) > len(main.list_commands(click.Context(main)))
    for path, (code, first) in helps.items():
        assert code == 0, (path, first)
        assert first and first[0].startswith("Usage: "), (path, first)


def test_policies_render_uses_the_shipped_templates(installed: Installed) -> None:
    out = installed.cwd / "policies"
    result = installed.azsidecar(
        "policies", "render", "--jwt-accessor", "auth_jwt_1234", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = render_all(
        {
            "jwt_accessor": "auth_jwt_1234",
            "kv_mount": "secret",
            "prefix": "azsidecar",
            "creds_mount": "azsidecar",
        }
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(f"azsidecar-{n}.hcl" for n in NAMES)
    for name, text in expected.items():
        assert (out / f"azsidecar-{name}.hcl").read_text() == text, name
    printed = installed.azsidecar("policies", "render", "--jwt-accessor", "acc")
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert 'path "secret/metadata/azsidecar/credentials/*"' in printed.stdout


def test_plugin_install_registers_a_plugin_openbao_runs(installed: Installed) -> None:
    plugin_dir = installed.cwd / "plugins"
    result = installed.azsidecar("plugin", "install", "--plugin-dir", str(plugin_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    wrapper = (plugin_dir / "azsidecar").read_text()
    assert shlex.quote(str(installed.python)) in wrapper
    commands = [line for line in result.stdout.splitlines() if line.startswith("bao ")]
    assert len(commands) == 2, result.stdout
    server = OpenBaoDevServer(plugin_dir=str(plugin_dir)).start()
    try:
        env = dict(installed.env, BAO_ADDR=server.addr, BAO_TOKEN=server.root_token)
        for command in commands:
            done = subprocess.run(
                [find_bao(), *shlex.split(command)[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-2000:]
        health = connect(server.addr, token=server.root_token).read("azsidecar/health")
        assert isinstance(health, dict), health
        assert health["data"]["status"] == "not configured"
    finally:
        server.cleanup()
