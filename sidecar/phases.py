"""A run's phases and the plugin's default mount: the words of every creds path.

Kept apart from :mod:`sidecar.model` (which re-exports both) so that the runner
helper, which needs only these, does not build the record classes at each start
(issue 17).
"""

from __future__ import annotations

from enum import StrEnum

#: Where the plugin is mounted and the path (``<mount>/creds/<stack>/<phase>``) that
#: authorises runners, plugin and resolver alike. Not ``azure``: HashiCorp's own Azure
#: engine is conventionally mounted there, and in a resolver-only Vault its policies
#: (``azure/creds/<role>``) would grant every stack's credential through the resolver.
DEFAULT_CREDS_MOUNT = "azsidecar"


class Phase(StrEnum):
    PLAN = "plan"
    APPLY = "apply"

    @property
    def role(self) -> str:
        """The stack field that names the phase's integration: ``read`` or ``write``."""
        return "read" if self is Phase.PLAN else "write"
