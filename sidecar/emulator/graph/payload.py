"""Reading Graph request bodies and query options the way Graph refuses bad ones."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from flask import request

from sidecar.emulator.clock import parse_time
from sidecar.emulator.responses import BadRequest

MAX_TOP = 999
DEFAULT_TOP = 100
FILTER = re.compile(r"^\s*(displayName|appId|id)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
STARTSWITH = re.compile(
    r"^\s*startswith\(\s*displayName\s*,\s*'((?:[^']|'')*)'\s*\)\s*$", re.IGNORECASE
)
_BAD_JSON = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and "
    "payload is of valid JSON format."
)


def body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(_BAD_JSON) from exc
    if not isinstance(data, dict):
        raise BadRequest(_BAD_JSON)
    return data


def time_field(data: dict[str, Any], name: str, default: float) -> float:
    value = data.get(name)
    if value is None:
        return default
    try:
        return parse_time(value)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"Invalid value specified for property '{name}' of resource.") from exc


def str_field(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"Property '{name}' is required.")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid value specified for property '{name}' of resource.")
    return value


def skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def page_offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError(token)
        return max(0, int(text[2:]))
    except ValueError as exc:
        raise BadRequest("Invalid $skiptoken.") from exc
