"""Running the run's command with the credential in its environment only.

The variables go into the child's environment, never its arguments (which
every local user can read in the process list). The helper stays the
child's parent so a CI system that signals the helper reaches the child:
SIGTERM, SIGINT and SIGHUP are forwarded, and the helper exits with the
child's code, or 128 + the signal that killed it.

A Ctrl-C at a terminal already reaches the child directly (same foreground
process group); forwarding it too would make Terraform see a second
interrupt, which means "abandon the run", so such signals are not forwarded.

The helper holds the credential and its Vault token in memory, so before it
reads either it makes itself undumpable: not dumpable, so no core file whatever
the core limit and no ptrace or /proc/<pid>/mem by other processes of the user
(``PR_SET_DUMPABLE`` 0), and a core limit of 0 (``RLIMIT_CORE``; the soft limit,
which the kernel applies and the child inherits: its environment holds the
secret too; the hard limit is left so a later process may still raise it).
The child gets the ``ARM_*`` variables but none of the helper's Vault login
variables: a run has no business with the runner's Vault token.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from sidecar.errors import InputError

if TYPE_CHECKING:
    import subprocess

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_TTY_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
#: Login secrets the helper may have been given that the child has no use for.
DROPPED = (
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "AZSIDECAR_VAULT_TOKEN",
    "AZSIDECAR_VAULT_TOKEN_FILE",
    "AZSIDECAR_VAULT_SECRET_ID",
    "AZSIDECAR_VAULT_SECRET_ID_FILE",
    "AZSIDECAR_VAULT_ROLE_ID",
    "VAULT_WRAPPED_TOKEN",
)
_PR_SET_DUMPABLE = 4


def forbid_core_dumps() -> None:
    """No core file of this process or its children; not dumpable by ptrace or /proc."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    # This process's own symbols, libc's among them: no ctypes.util.find_library,
    # which runs `ldconfig -p` in a subprocess on every call (milliseconds per run).
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None:  # not Linux
        return
    if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _child_already_got_it(signum: int) -> bool:
    if signum not in _TTY_SIGNALS:
        return False
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _forwarding(child: subprocess.Popen[bytes]) -> Iterator[None]:
    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is None and not _child_already_got_it(signum):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def child_environment(variables: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(variables)
    return env


def run(argv: Sequence[str], variables: Mapping[str, str]) -> int:
    """Run ``argv`` with ``variables`` added to the environment; returns the exit status."""
    if not argv:
        raise InputError("give the command to run after --, e.g. -- terraform apply")
    # Only ``exec`` starts a child: ``creds``, which every job runs, does not import it.
    import subprocess  # noqa: PLC0415 - lazy, see above

    env = child_environment(variables)
    try:
        child = subprocess.Popen(list(argv), env=env)
    except (FileNotFoundError, PermissionError) as exc:
        raise InputError(f"cannot run {argv[0]!r}: {exc.strerror}") from exc
    finally:
        # The child has its copy; keep no more in the helper than the caller's.
        env.clear()
        del env
        gc.collect()
    with _forwarding(child):
        code = child.wait()
    return 128 - code if code < 0 else code
