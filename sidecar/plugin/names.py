"""Checks on names taken from request paths, and the filter for what paths show."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sidecar.errors import InputError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SECRET_KEY = re.compile(r"secret|password|private|token|credential", re.IGNORECASE)


def check_name(value: object, what: str) -> str:
    """A stack or integration name: one safe path segment, never ``..``."""
    text = value if isinstance(value, str) else ""
    if not _NAME.fullmatch(text) or ".." in text:
        shown = text[:64] if text.isprintable() else repr(text[:64])
        raise InputError(
            f"invalid {what} name {shown!r}: use 1-128 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return text


def public_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop any field whose name suggests a secret; defence in depth for read paths."""
    return {k: v for k, v in data.items() if not _SECRET_KEY.search(k)}
