"""``stacks/`` (list) and ``stacks/<name>`` (read): a stack's attachments, read-only."""

from __future__ import annotations

from sidecar.plugin.framework import Path
from sidecar.plugin.listing import ListingHelp, listing_paths
from sidecar.plugin.mount import KVMount

HELP = ListingHelp(
    folder="stacks",
    noun="stack",
    list_synopsis="List the stacks known to the sidecar.",
    list_description="The names of the stacks that have integrations attached.",
    read_synopsis="A stack's read (plan) and write (apply) integrations.",
    read_description="""
Shows which integration serves phase plan (read) and phase apply (write), and
the subscription override if any. Never shows a secret.
""",
)


def path_stacks(backend: KVMount) -> list[Path]:
    return listing_paths(backend, HELP)
