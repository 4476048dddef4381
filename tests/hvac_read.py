"""``client.read`` and ``list`` as the tests use them: the JSON body, or None if missing.

hvac's stubs also allow a ``requests.Response`` (for adapters that return one);
the JSON adapter every test uses never does.
"""

from __future__ import annotations

from typing import Any

import hvac


def read_json(client: hvac.Client, path: str) -> Any:
    """``client.read(path)``, typed as what the JSON adapter returns."""
    return client.read(path)


def list_json(client: hvac.Client, path: str) -> Any:
    """``client.list(path)``, typed as what the JSON adapter returns."""
    return client.list(path)
