"""The demo's child processes: each in a session of its own, all stopped at the end.

A child started here leads a new process group, so stopping it reaches what
it started too (OpenBao's plugin processes). Children also get a parent-death
signal, so even a demo killed with SIGKILL leaves no emulator or daemon behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sidecar.devstack.openbao import private_log
from sidecar.errors import SidecarError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the demo dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


def azsidecar_argv(*args: str) -> list[str]:
    """This installation's CLI, by interpreter path (no reliance on PATH)."""
    return [sys.executable, "-m", "sidecar.cli.main", *args]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Children:
    """Every process the demo started, stopped in reverse order by :meth:`stop_all`."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        *,
        stdout: IO[bytes] | None = None,
    ) -> Child:
        """Start ``argv`` with stderr (and stdout unless given) in ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        with private_log(log_path) as handle:
            process = subprocess.Popen(
                argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=stdout or handle,
                stderr=handle,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 (no threads run yet)
            )
        child = Child(name, process, log_path)
        self.started.append(child)
        return child

    def on_stop(self, stop: Callable[[], None]) -> None:
        """Also run ``stop`` (e.g. OpenBao's own stop) at :meth:`stop_all`."""
        self._stops.append(stop)

    def stop(self, child: Child, timeout: float = 10.0) -> int | None:
        """SIGTERM the child's process group, then SIGKILL what is left; its exit code."""
        if child.alive():
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.name, timeout)
        _signal_group(child.pid, signal.SIGKILL)  # stragglers in its group
        if child.alive():
            child.process.wait(timeout=timeout)
        return child.process.returncode

    def stop_all(self) -> None:
        for child in reversed(self.started):
            try:
                self.stop(child)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("could not stop %s: %s", child.name, exc)
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                log.warning("could not stop a process: %s", exc)
        self._stops.clear()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, child: Child | None = None
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (and the child's log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if child is not None and not child.alive():
            raise DemoError(f"{child.name} exited ({child.process.returncode}): {child.tail()}")
        time.sleep(0.05)
    detail = f": {child.tail()}" if child is not None else ""
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


class DemoError(SidecarError):
    """The demo could not set up or run; the message says what failed."""
