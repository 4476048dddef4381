"""Does the caller's own login name the stack and phase it asks for?

The runner policy takes stack and phase from the entity alias, and an alias'
metadata is whatever the *latest* login with the same user claim wrote. Two
runs whose JWTs share that claim (a CI ``sub`` such as ``repo:org/repo:ref:main``
used for plan and apply, or for two stacks) share one alias, so an earlier
run's token would be let through to the later run's path. A token's own
metadata, by contrast, is fixed when that token logs in. So the plugin and the
resolver check it too: a token whose login recorded a stack or a phase may
read only that stack and phase. Tokens whose login records neither (AppRole,
tokens an operator makes) are governed by their policy alone.

Pure: the metadata comes from the caller's adapter (token lookup).
"""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.model import Phase

STACK_KEY = "stack"
PHASE_KEY = "phase"
OTHER_LOGIN = (
    "this token's login names a different stack or phase than the path asks for;"
    " log in again for this stack and phase (the runner policy follows the latest"
    " login sharing the JWT's user claim)"
)


def scope_refusal(metadata: Mapping[str, str], stack: str, phase: Phase) -> str | None:
    """None if the login admits ``stack``/``phase``, else why not (no values echoed)."""
    if STACK_KEY not in metadata and PHASE_KEY not in metadata:
        return None
    if metadata.get(STACK_KEY) != stack or metadata.get(PHASE_KEY) != str(phase):
        return OTHER_LOGIN
    return None
