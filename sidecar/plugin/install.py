"""Put the plugin where OpenBao can run it: an executable wrapper in the plugin
directory that execs this installation's Python, with absolute paths.

OpenBao runs only commands inside its ``plugin_directory`` and checks the
SHA-256 of that file, so the wrapper is what gets registered.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from sidecar.errors import InputError
from sidecar.model import DEFAULT_CREDS_MOUNT

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Installed:
    name: str
    path: Path
    sha256: str


def wrapper_script(python: str) -> str:
    return (
        "#!/bin/sh\n"
        "# azsidecar secrets-engine plugin for OpenBao/Vault, from `azsidecar plugin install`\n"
        f"exec {shlex.quote(python)} -I -m sidecar.plugin\n"
    )


def install_wrapper(plugin_dir: str, name: str, python: str | None = None) -> Installed:
    """Write ``<plugin_dir>/<name>`` atomically; return its path and SHA-256."""
    if not _NAME.fullmatch(name):
        raise InputError(f"invalid plugin name {name[:64]!r}: letters, digits, '_' and '-'")
    directory = Path(plugin_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    body = wrapper_script(os.path.abspath(python or sys.executable)).encode()
    temp = directory / f".{name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    os.chmod(temp, 0o755)  # noqa: S103 (OpenBao must execute it; it holds no secret)
    os.replace(temp, target)
    return Installed(name=name, path=target, sha256=hashlib.sha256(body).hexdigest())


def registration_commands(installed: Installed, mount: str = DEFAULT_CREDS_MOUNT) -> list[str]:
    return [
        f"bao plugin register -sha256={installed.sha256} -command={installed.name}"
        f" secret {installed.name}",
        f"bao secrets enable -path={mount} {installed.name}",
    ]
