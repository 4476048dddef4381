"""Fixed GUIDs for test records: every id field is checked to be a GUID when read."""

from __future__ import annotations

import uuid


def guid(label: str) -> str:
    """The same GUID for the same label, so expectations can name it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"azsidecar-test:{label}"))
