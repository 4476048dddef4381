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
variables: a run has no business with the runner's Vault token, nor any
credential variable of the azurerm provider the helper did not set itself
(an inherited ``ARM_CLIENT_SECRET`` would otherwise sit beside a certificate).

A certificate reaches the child as a file (:func:`private_file`): a PKCS#12
bundle in a new directory only this user may enter (0700), itself readable
only by this user (0600), removed with its directory once the child has
exited -- also when the child was killed, or the helper got SIGTERM, SIGINT
or SIGHUP while the file existed (the signal ends the helper through its
clean-up, with 128 + the signal). Only SIGKILL of the helper itself leaves it
behind, in the temporary directory (``TMPDIR``) of the runner's user.
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
    from pathlib import Path

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
#: The azurerm provider's credential variables: the child gets only those the helper sets.
CREDENTIAL_VARIABLES = (
    "ARM_CLIENT_SECRET",
    "ARM_CLIENT_SECRET_FILE_PATH",
    "ARM_CLIENT_CERTIFICATE",
    "ARM_CLIENT_CERTIFICATE_PATH",
    "ARM_CLIENT_CERTIFICATE_PASSWORD",
    "ARM_USE_OIDC",
    "ARM_OIDC_TOKEN",
)
#: Whole families of them, whatever a provider version adds (``ARM_OIDC_TOKEN_FILE_PATH``,
#: ``ARM_OIDC_REQUEST_URL``, ...): an inherited one would sit beside the credential we set.
CREDENTIAL_PREFIXES = ("ARM_OIDC_", "ARM_CLIENT_SECRET", "ARM_CLIENT_CERTIFICATE")
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
    dropped = (*DROPPED, *CREDENTIAL_VARIABLES)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in dropped and not k.startswith(CREDENTIAL_PREFIXES)
    }
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


class _Ended(BaseException):
    """A forwarded signal reached the helper while a private file existed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _end(signum: int, frame: FrameType | None) -> None:
    raise _Ended(signum)


@contextlib.contextmanager
def private_file(name: str, content: bytes) -> Iterator[Path]:
    """``content`` in a new 0600 file ``name`` in a new 0700 directory, removed on the way out.

    While it exists, SIGTERM, SIGINT and SIGHUP end the helper through this
    clean-up (:func:`run` forwards them to the child meanwhile, and the child's
    end returns here). Signals are held while the file and directory are removed.
    """
    # Only a certificate run writes a file: every other run spares tempfile's imports.
    import tempfile  # noqa: PLC0415 - lazy, see above
    from pathlib import Path  # noqa: PLC0415 - lazy, see above

    previous = {sig: signal.signal(sig, _end) for sig in FORWARDED}
    directory: str | None = None
    try:
        directory = tempfile.mkdtemp(prefix="azsidecar-")  # 0700, ours alone
        path = Path(directory) / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        yield path
    except _Ended as ended:
        raise SystemExit(128 + ended.signum) from None
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            if directory is not None:
                _remove_tree(Path(directory))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def _remove_tree(directory: Path) -> None:
    """Our directory holds only the files we wrote; the child may have added some."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            _remove_tree(entry)
        else:
            entry.unlink(missing_ok=True)
    directory.rmdir()
