"""The ``azsidecar`` console script.

Every command is :data:`sidecar.cli.main.main`, the click group, except the
runner helper's plain command lines: ``azsidecar creds`` / ``exec`` run at the
start of every CI job, so when :func:`sidecar.cli.runner_argv.parse` reads one
exactly as click would, it runs here without importing click (issue 17), and
ends as click's standalone mode would: a :class:`~sidecar.errors.SidecarError`
becomes ``Error: <message>`` on standard error and exit status 1, Ctrl-C
``Aborted!`` and 1, a closed pipe a quiet 1. Help, usage errors and every other
command are click's.

A lean run ends with :func:`os._exit` once its exit handlers (:mod:`atexit`:
logging's flush) have run and standard output and error are flushed: tearing
down the interpreter's modules, which nothing here needs, would otherwise add
a good tenth to the run's CPU time. No thread is left to wait for (the token
upkeep of ``--wait`` is stopped before the command returns); if one were, the
run ends the ordinary way.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import IO, Any

from sidecar.cli.runner_argv import COMMANDS, parse


def main() -> None:
    args = sys.argv[1:]
    params = parse(args[0], args[1:], os.environ) if _lean_ok(args) else None
    if params is None:
        from sidecar.cli.main import main as group  # noqa: PLC0415 - only when needed

        group()
        return
    _run_lean(args[0], params)


def _lean_ok(args: list[str]) -> bool:
    """The command is the runner helper's and nothing asks for click's own machinery."""
    if not args or args[0] not in COMMANDS:
        return False
    if any(key.startswith("_") and key.endswith("_COMPLETE") for key in os.environ):
        return False  # shell completion
    return all(_plain_stream(s) for s in (sys.stdout, sys.stderr))


def _plain_stream(stream: IO[str] | None) -> bool:
    """A text stream click would use as it is (not one it wraps or cannot write to)."""
    if stream is None:
        return False
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        import codecs  # noqa: PLC0415 - already loaded by the interpreter

        return codecs.lookup(encoding).name != "ascii"
    except LookupError:
        return False


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except Exception:  # click says False for any failure
        return False


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """:func:`click.echo` for text: ANSI escapes dropped unless a terminal; then a flush."""
    stream = sys.stderr if err else sys.stdout
    out = message + "\n" if nl else message
    if not out:
        stream.flush()
        return
    if "\033" in out and not _isatty(stream):
        import re  # noqa: PLC0415 - only for text holding an escape

        out = re.sub(r"\033\[[0-?]*[ -/]*[@-~]", "", out)
    stream.write(out)
    stream.flush()


class _Pacified:
    """click's ``_PacifyFlushWrapper``: a stream whose flush ignores a closed pipe."""

    def __init__(self, wrapped: IO[str]) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        try:
            self.wrapped.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def _run_lean(command: str, params: dict[str, Any]) -> None:
    try:
        _run_lean_command(command, params)
    except SystemExit as done:
        _end(done)
        raise
    _end(SystemExit(0))


def _end(done: SystemExit) -> None:
    """Exit now with ``done``'s status, as the interpreter would but without its teardown."""
    import atexit  # noqa: PLC0415 - already loaded by the interpreter
    import threading  # noqa: PLC0415 - already loaded (the Vault login)

    code = done.code
    if not (code is None or isinstance(code, int)):
        return  # a message to print: the interpreter does it
    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return  # a thread to wait for: the interpreter does it
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return  # as the interpreter would report it
    os._exit(code or 0)


def _run_lean_command(command: str, params: dict[str, Any]) -> None:
    from sidecar.cli.runner_commands import print_creds, run_command  # noqa: PLC0415
    from sidecar.errors import SidecarError  # noqa: PLC0415

    try:
        try:
            if command == "exec":
                run_command(params.pop("command"), params, echo)
            fmt = params.pop("fmt")
            print_creds(fmt, params, echo)
        except SidecarError as exc:
            echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except (EOFError, KeyboardInterrupt):
            echo(err=True)
            echo("Aborted!", err=True)
            sys.exit(1)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            sys.stdout = _Pacified(sys.stdout)
            sys.stderr = _Pacified(sys.stderr)
            sys.exit(1)
    except (EOFError, KeyboardInterrupt):
        sys.exit(1)
