"""What the long-running tool commands (``demo``, ``soak``) share: stopping cleanly.

SIGTERM and SIGHUP unwind like Ctrl-C, so every child process a command
started is stopped on the way out, and the command exits 130 saying so.

Ctrl-C (SIGINT) is taken back explicitly: a process inherits an ignored
SIGINT from its parent (a non-interactive shell starts ``cmd &`` that way, and
so does any supervisor or test runner that ignores it), and Python then never
raises KeyboardInterrupt, so the command would run on after ``kill -INT``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import TypeVar

import click

from sidecar.durations import parse_duration
from sidecar.errors import InputError

_T = TypeVar("_T")


_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(Exception):
    """SIGTERM or SIGHUP: unwind like Ctrl-C so every child process is stopped."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def positive_duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """A click callback: ``10m``, ``4h``... and never zero or negative."""
    try:
        delta = parse_duration(value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from exc
    if delta <= timedelta(0):
        raise click.BadParameter("must be positive")
    return delta


def run_interruptibly(what: str, run: Callable[[], _T]) -> _T:
    """``run()``, turning Ctrl-C, SIGTERM and SIGHUP into exit 130 once it has unwound.

    ``what`` names the command in the message ("the demo").
    """
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)
    try:
        return run()
    except (KeyboardInterrupt, _Stop) as exc:
        click.echo(f"\ninterrupted ({exc or 'Ctrl-C'}); every process {what} started is stopped")
        sys.exit(130)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
