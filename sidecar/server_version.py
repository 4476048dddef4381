"""Does the Vault / OpenBao server refuse wildcards in identity-template values?

The runner policy is one templated path, ``<mount>/creds/{{...stack}}/{{...phase}}``.
On servers without the guard (OpenBao before 2.6.1, GH-3401 / GHSA-59w7-v8rr-pr4p;
HashiCorp Vault before about 1.20), a JWT whose ``stack`` claim is ``+`` renders
``<mount>/creds/+/plan``, which matches every stack. The plugin and the resolver
check each token's own login metadata against the path it asks for, which closes
this on any version; the server's guard is a second wall. Pure: takes the version
text ``sys/health`` reports.
"""

from __future__ import annotations

import re

#: First releases that reject ``+`` and ``*`` in identity-template values.
OPENBAO_GUARDED = (2, 6, 1)
VAULT_GUARDED = (1, 20, 0)

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse(version: str) -> tuple[int, int, int] | None:
    found = _VERSION.match(version.strip())
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def wildcard_guard(version: str) -> bool | None:
    """True if the server rejects wildcard template values, False if not, None if unknown.

    OpenBao's releases are 2.x and later, HashiCorp Vault's 1.x.
    """
    parsed = parse(version)
    if parsed is None:
        return None
    return parsed >= (OPENBAO_GUARDED if parsed[0] >= 2 else VAULT_GUARDED)
