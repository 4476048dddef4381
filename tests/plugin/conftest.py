"""A real OpenBao dev server with the plugin installed through ``azsidecar plugin install``."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
from click.testing import CliRunner

from sidecar.cli.plugin import plugin as plugin_cli
from sidecar.devstack.openbao import OpenBaoDevServer, find_bao
from sidecar.model import DEFAULT_CREDS_MOUNT
from sidecar.vault import connect

# The tests mount the plugin at a name of their choosing, not the default (azsidecar/).
MOUNT = "azure"


@dataclass
class PluginBao:
    server: OpenBaoDevServer
    client: hvac.Client
    plugin_dir: Path

    def bao(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the ``bao`` CLI against this server; the token travels in the environment."""
        env = dict(os.environ, BAO_ADDR=self.server.addr, BAO_TOKEN=self.server.root_token)
        result = subprocess.run(
            [find_bao(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"bao {args[:2]} failed: {result.stderr[-800:]}")
        return result

    def install(self, mount: str = MOUNT) -> list[str]:
        """``azsidecar plugin install``, then run the commands it prints."""
        result = CliRunner().invoke(plugin_cli, ["install", "--plugin-dir", str(self.plugin_dir)])
        assert result.exit_code == 0, result.output
        commands = [line for line in result.output.splitlines() if line.startswith("bao ")]
        assert len(commands) == 2, result.output
        for command in commands:
            argv = shlex.split(command)[1:]
            argv = [a.replace(f"-path={DEFAULT_CREDS_MOUNT}", f"-path={mount}") for a in argv]
            self.bao(*argv)
        return commands

    def plugin_pids(self) -> list[int]:
        """Live plugin processes started by this server."""
        assert self.server.process is not None
        return plugin_children(self.server.process.pid)


def _stat(pid: int) -> tuple[int, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def plugin_alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z"


def plugin_children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[0] != parent or stat[1] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"sidecar.plugin" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate: object, timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start


def start_plugin_bao(plugin_dir: Path) -> PluginBao:
    plugin_dir.mkdir(parents=True, exist_ok=True)
    server = OpenBaoDevServer(plugin_dir=str(plugin_dir)).start()
    client = connect(server.addr, token=server.root_token)
    return PluginBao(server=server, client=client, plugin_dir=plugin_dir)


@pytest.fixture(scope="module")
def plugin_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginBao]:
    """One OpenBao per test module, plugin registered and enabled at ``azure/``."""
    pb = start_plugin_bao(tmp_path_factory.mktemp("plugins"))
    try:
        pb.install()
        yield pb
    finally:
        pb.server.cleanup()


@pytest.fixture
def fresh_plugin_bao(tmp_path: Path) -> Iterator[PluginBao]:
    """An OpenBao of its own, for tests that kill processes."""
    pb = start_plugin_bao(tmp_path / "plugins")
    try:
        pb.install()
        yield pb
    finally:
        pb.server.cleanup()
