"""``integrations/`` (list) and ``integrations/<name>`` (read), read-only."""

from __future__ import annotations

from sidecar.plugin.framework import Path
from sidecar.plugin.listing import ListingHelp, listing_paths
from sidecar.plugin.mount import KVMount

HELP = ListingHelp(
    folder="integrations",
    noun="integration",
    list_synopsis="List the Azure integrations.",
    list_description="The names of the integrations (Entra ID applications) the sidecar keeps.",
    read_synopsis="An integration's tenant, subscription, application and consent state.",
    read_description="""
What the sidecar knows about the integration's Entra ID application. Never
shows a secret: the client secrets are only ever handed out by creds/.
""",
)


def path_integrations(backend: KVMount) -> list[Path]:
    return listing_paths(backend, HELP)
