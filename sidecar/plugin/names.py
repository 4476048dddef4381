"""The filter for what read paths show; name checks live in :mod:`sidecar.answers`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SECRET_KEY = re.compile(r"secret|password|private|token|credential", re.IGNORECASE)


def public_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop any field whose name suggests a secret; defence in depth for read paths."""
    return {k: v for k, v in data.items() if not _SECRET_KEY.search(k)}
