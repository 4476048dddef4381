"""`azsidecar demo --logs DIR` keeps its logs private and the root token out of them (point 10).

The demo keeps OpenBao's directory under the log directory and starts the
other processes with `Children`, as here. The dev server's banner used to put
the root token into a 0644 log, and the root token reached the plugin process
through the server's environment (OpenBao passes its environment to plugins).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import hvac.exceptions
import pytest

from sidecar.demo.orchestration import Demo, DemoOptions
from sidecar.vault import connect
from tests.plugin.conftest import PluginBao, plugin_children, wait_for


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_log_directories_and_files_are_private_and_hold_no_root_token(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    demo = Demo(DemoOptions(logs=logs), lambda line: None)
    server = demo._start_openbao()  # as `azsidecar demo` does: OpenBao's directory in the logs
    try:
        assert server.process is not None
        pb = PluginBao(
            server, connect(server.addr, token=server.root_token), demo.workdir / "plugins"
        )
        pb.install()
        pb.client.write_data("azure/config", data={"vault_addr": server.addr, "token": "x"})
        with contextlib.suppress(hvac.exceptions.VaultError):
            pb.client.list("azure/stacks")  # starts the plugin process
        wait_for(lambda: plugin_children(server.process.pid) != [], 10)
        child = demo.children.start("emulator", ["sh", "-c", "echo started >&2"], {"PATH": "/bin"})
        child.process.wait(timeout=10)
        for pid in plugin_children(server.process.pid):
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert server.root_token.encode() not in environ
            assert b"DEV_ROOT_TOKEN_ID" not in environ
        log = server.log_path.read_text()
        assert "Root Token: [redacted]" in log
        assert server.root_token not in log
    finally:
        demo.children.stop_all()
        server.stop()
    assert _mode(logs) == 0o700
    assert _mode(logs / "openbao") == 0o700
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"bao.log", "emulator.log"}
    for path in files:
        assert _mode(path) == 0o600, path
        assert server.root_token not in path.read_text(errors="replace")
