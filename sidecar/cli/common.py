"""What every command shares: loading the configuration and turning errors into messages."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from sidecar.config import Config, load_config
from sidecar.errors import SidecarError
from sidecar.logs import configure

if TYPE_CHECKING:
    from sidecar.runtime import Runtime

P = ParamSpec("P")
R = TypeVar("R")

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="AZSIDECAR_CONFIG",
    help="TOML configuration file (default: $AZSIDECAR_CONFIG).",
)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Report the package's errors as one clear line and exit 1; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SidecarError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def load(config_path: str | None) -> Config:
    return load_config(config_path)


def runtime(config_path: str | None) -> Runtime:
    # Imported here: the runtime brings Graph, MSAL, JWT and metrics, which the
    # runner helper (`azsidecar creds` / `exec`) never uses.
    from sidecar.runtime import make_runtime  # noqa: PLC0415 - lazy, see above

    return make_runtime(load(config_path))


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    configure(level=level, fmt=fmt, stream=sys.stderr)
    logging.captureWarnings(True)
