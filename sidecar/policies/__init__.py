"""The shipped Vault policy templates and JWT runner role, and how they are filled in.

The templates (``<name>.hcl`` beside this module, shipped in the wheel as
package data) name the deployment's values with placeholders
(``<kv_mount>``, ``<prefix>``, ``<creds_mount>``, ``<jwt_accessor>``, and the
issuer's ``<transit_mount>`` and ``<issuer_key>``, which have defaults)
because the runner policy must name the JWT mount's accessor, which exists
only once JWT auth is enabled. ``runner-role.json`` is the JWT role whose
claim mappings fill the alias metadata the runner policy reads
(``vault-config/runner-role.json`` links here).

Used by ``azsidecar policies render``, the demo and the tests; no CLI here.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from sidecar.errors import InputError

NAMES = ("sidecar", "runner", "operator", "plugin", "issuer")
SHIPPED: Traversable = files(__name__)
"""The directory of the shipped templates (a real directory for an unpacked install)."""
RUNNER_ROLE = "runner-role.json"
_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*")
_PLACEHOLDER = re.compile(r"<(kv_mount|prefix|creds_mount|jwt_accessor|transit_mount|issuer_key)>")
#: Placeholders with a default: the issuer's Transit mount and key (sidecar.issuer).
DEFAULT_VALUES = {"transit_mount": "transit", "issuer_key": "azsidecar-issuer"}


def render_policy(template: str, values: dict[str, str]) -> str:
    """Replace every placeholder; refuse values that could change a path's meaning."""
    values = {**DEFAULT_VALUES, **values}
    for key, value in values.items():
        if not _VALUE.fullmatch(value) or ".." in value:
            raise InputError(f"invalid {key} {value[:40]!r}: letters, digits, '_', '.', '-', '/'")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_all(values: dict[str, str], templates: Path | None = None) -> dict[str, str]:
    """Every policy filled in, by name: from ``templates`` if given, else the shipped ones."""
    source: Traversable = SHIPPED if templates is None else templates
    rendered = {}
    for name in NAMES:
        path = source / f"{name}.hcl"
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}; pass --templates") from exc
        rendered[name] = render_policy(text, values)
    return rendered


def template(name: str) -> str:
    """One shipped template's text, unrendered."""
    return (SHIPPED / f"{name}.hcl").read_text()


def runner_role() -> dict[str, Any]:
    """The shipped JWT role for CI runs, as the body of ``auth/jwt/role/<name>``."""
    role: dict[str, Any] = json.loads((SHIPPED / RUNNER_ROLE).read_text())
    return role
