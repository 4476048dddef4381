"""The credential as a run consumes it: ``ARM_*`` variables for Terraform's azurerm provider."""

from __future__ import annotations

import json
import re
import shlex
from typing import Literal

from sidecar.answers import ResolvedCredential
from sidecar.errors import InputError

Format = Literal["env", "dotenv", "json"]

#: Characters a value may hold in ``env`` and ``dotenv`` output. Every field is a GUID or
#: an Azure client secret (letters, digits, ``~._-``), so anything else means a record
#: that was altered: it is refused, not escaped, because each consumer of these files
#: (``eval``, ``set -a; . file``, ``docker --env-file``, dotenv libraries) unquotes
#: differently.
_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]*")


def _checked(name: str, value: str) -> str:
    if not _SAFE.fullmatch(value):
        raise InputError(
            f"{name} holds characters that are unsafe in shell or dotenv output;"
            " the stored record was altered: ask an operator to correct it"
            " (or use --format json)"
        )
    return value


def arm_variables(cred: ResolvedCredential) -> dict[str, str]:
    """``ARM_SUBSCRIPTION_ID`` is left out when neither stack nor integration names one."""
    env = {
        "ARM_CLIENT_ID": cred.client_id,
        "ARM_CLIENT_SECRET": cred.client_secret.reveal(),
        "ARM_TENANT_ID": cred.tenant_id,
    }
    if cred.subscription_id:
        env["ARM_SUBSCRIPTION_ID"] = cred.subscription_id
    return env


def _iso(cred: ResolvedCredential, name: str) -> str:
    return str(getattr(cred, name).isoformat().replace("+00:00", "Z"))


def _dotenv_value(name: str, value: str) -> str:
    """Bare, as every dotenv reader takes it; single-quoted only when it starts with ``~``,
    which ``set -a; . file`` would otherwise expand to a home directory."""
    value = _checked(name, value)
    return f"'{value}'" if value.startswith("~") else value


def render(cred: ResolvedCredential, fmt: Format) -> str:
    """``env``: shell ``export`` lines for ``eval``; ``dotenv``: KEY='value' lines; ``json``:
    the same fields as the plugin's ``creds`` response (JSON-escaped, ASCII only)."""
    if fmt == "json":
        data = {
            "client_id": cred.client_id,
            "client_secret": cred.client_secret.reveal(),
            "tenant_id": cred.tenant_id,
            "subscription_id": cred.subscription_id,
            "integration": cred.integration,
            "key_id": cred.key_id,
            "created_at": _iso(cred, "created"),
            "expires_at": _iso(cred, "expires"),
            "safe_until": _iso(cred, "safe_until"),
        }
        return json.dumps(data, indent=2) + "\n"
    variables = arm_variables(cred)
    if fmt == "env":
        return "".join(f"export {k}={shlex.quote(_checked(k, v))}\n" for k, v in variables.items())
    return "".join(f"{k}={_dotenv_value(k, v)}\n" for k, v in variables.items())
