"""Plugin processes leave no empty ``azsidecar-plugin-*`` directories behind (issue 16, point 11).

Each plugin instance used to make a temporary directory at start-up (for a CA
bundle most set-ups never write) and OpenBao stops instances without the
Cleanup call that removed it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hvac.exceptions
import pytest

from tests.plugin.conftest import start_plugin_bao


def test_plugin_instances_leave_no_temporary_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's environment, and so its plugins', names a temporary directory of our own
    # (short: the plugin's Unix socket lives there too, and socket paths have 108 bytes).
    own_tmp = Path(tempfile.mkdtemp(prefix="azt-"))
    monkeypatch.setenv("TMPDIR", str(own_tmp))
    pb = start_plugin_bao(tmp_path / "plugins")
    try:
        pb.install()
        pb.client.write_data("azure/config", data={"vault_addr": pb.server.addr, "token": "x"})
        for _ in range(3):
            with pytest.raises(hvac.exceptions.VaultError):
                pb.client.read("azure/creds/A/plan")
    finally:
        pb.server.cleanup()
    left = [p.name for p in own_tmp.glob("azsidecar-plugin-*")]
    shutil.rmtree(own_tmp, ignore_errors=True)
    assert left == []
