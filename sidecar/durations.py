"""Durations as operators write them: ``90s``, ``10m``, ``1h30m``, ``7d`` or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

from sidecar.errors import InputError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | int | float) -> timedelta:
    """Parse a duration; raises InputError that shows the accepted forms."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise InputError(f"not a duration: {str(text)[:40]!r}; use e.g. 90s, 10m, 1h30m, 7d")
    try:
        return _parse(text)
    except (OverflowError, ValueError) as exc:
        raise InputError(f"not a usable duration: {str(text)[:40]!r} ({exc})") from exc


def _parse(text: str | int | float) -> timedelta:
    if isinstance(text, int | float):
        if not text >= 0:  # also refuses NaN
            raise InputError(f"duration must not be negative: {text}")
        return timedelta(seconds=text)
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return timedelta(seconds=float(value))
    pos, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise InputError(f"not a duration: {text[:40]!r}; use e.g. 90s, 10m, 1h30m, 7d")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The shortest exact form, e.g. ``1h30m``; negative durations get a leading ``-``."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
