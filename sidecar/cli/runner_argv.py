"""The runner helper's command line read without click, when that is unambiguous.

``azsidecar creds`` / ``exec`` run at the start of every CI job, and importing
click and building its command tree is a good part of what a call costs
(issue 17). :func:`parse` reads the plain command lines CI jobs use -- known
long options, each with its value, valid choices, usable files, every required
option, and for ``exec`` the command -- into exactly the parameters click would
pass the command. Anything else (``--help``, a short option, an unknown or
repeated option, a bad choice, a missing value, ...) answers ``None``: the
console script then hands the command line to click, which says what it has
always said. ``tests/runner/test_lean_argv.py`` holds the two readings equal,
and :data:`OPTIONS` equal to the click commands' parameters.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from typing import Any

from sidecar.phases import DEFAULT_CREDS_MOUNT, Phase

#: Commands read here: the console script's first argument.
COMMANDS = ("creds", "exec")


class Opt:
    """One option as its click declaration has it (long name, parameter, default, type)."""

    __slots__ = ("choices", "default", "dest", "envvar", "flag", "must_exist", "path", "required")

    def __init__(
        self,
        flag: str,
        dest: str,
        *,
        default: str | None = None,
        required: bool = False,
        choices: tuple[str, ...] | None = None,
        path: bool = False,
        must_exist: bool = False,
        envvar: str | None = None,
    ) -> None:
        self.flag = flag
        self.dest = dest
        self.default = default
        self.required = required
        self.choices = choices
        self.path = path  # click.Path(dir_okay=False)
        self.must_exist = must_exist
        self.envvar = envvar


#: The options of both commands, in :mod:`sidecar.cli.creds`'s order.
OPTIONS = (
    Opt("--stack", "stack", required=True),
    Opt("--phase", "phase", required=True, choices=tuple(p.value for p in Phase)),
    Opt("--wait", "wait", default="0s"),
    Opt("--mount", "mount", default=DEFAULT_CREDS_MOUNT),
    Opt("--via", "via", default="auto", choices=("auto", "plugin", "resolver")),
    Opt("--resolver", "resolver_addr"),
    Opt("--resolver-ca", "resolver_ca", path=True, must_exist=True),
    Opt("--auth", "method", default="auto", choices=("auto", "token", "jwt", "approle")),
    Opt("--token-file", "token_file", path=True),
    Opt("--jwt-file", "jwt_file", path=True),
    Opt("--role", "jwt_role"),
    Opt("--jwt-mount", "jwt_mount"),
    Opt("--role-id-file", "role_id_file", path=True),
    Opt("--secret-id-file", "secret_id_file", path=True),
    Opt("--config", "config_path", path=True, envvar="AZSIDECAR_CONFIG"),
)
#: ``creds`` only.
FORMAT = Opt("--format", "fmt", default="env", choices=("env", "dotenv", "json"))


def options_of(command: str) -> tuple[Opt, ...]:
    return (*OPTIONS, FORMAT) if command == "creds" else OPTIONS


def _usable_path(value: str, must_exist: bool) -> bool:
    """What ``click.Path(dir_okay=False)`` accepts without complaint."""
    try:
        st = os.stat(value)
    except OSError:
        return not must_exist
    return not stat.S_ISDIR(st.st_mode) and os.access(value, os.R_OK)


def _acceptable(opt: Opt, value: str) -> bool:
    if opt.choices is not None and value not in opt.choices:
        return False
    return not opt.path or _usable_path(value, opt.must_exist)


def parse(command: str, args: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The parameters click would pass ``command`` for ``args``; ``None``: ask click.

    For ``exec`` the parameters include ``command``, the tuple to run.
    """
    if command not in COMMANDS:
        return None
    by_flag = {opt.flag: opt for opt in options_of(command)}
    given: dict[str, str] = {}
    rest: list[str] | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest = list(args[i + 1 :])
            break
        if not arg.startswith("-") and command == "exec":
            rest = list(args[i:])  # the first argument ends the options (then all is COMMAND)
            break
        flag, equals, value = arg.partition("=")
        opt = by_flag.get(flag)
        if opt is None or opt.dest in given:
            return None  # not one of ours, a short option, a repeat, an argument to creds
        if not equals:
            if i + 1 >= len(args):
                return None
            i += 1
            value = args[i]
        if value.startswith("-"):
            return None  # click takes it as the value; rare enough to leave to click
        given[opt.dest] = value
        i += 1
    if command == "creds" and rest:
        return None
    if command == "exec" and not rest:
        return None
    params: dict[str, Any] = {}
    for opt in options_of(command):
        found = given.get(opt.dest)
        if found is None and opt.envvar:
            found = environ.get(opt.envvar) or None  # click ignores an empty variable
        if found is None:
            if opt.required:
                return None
            params[opt.dest] = opt.default
        elif _acceptable(opt, found):
            params[opt.dest] = found
        else:
            return None
    if command == "exec":
        params["command"] = tuple(rest or ())
    return params
