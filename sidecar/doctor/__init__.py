"""``azsidecar doctor``: is this installation able to hand runs a working credential?

Each check looks at one thing and returns a :class:`Check`: a status, one line
saying what it saw, and for a problem, what to do. Checks only read: the only
write-like act is a sign-in with an integration's ready secret, which is how
consent is observed (Azure answers AADSTS700016 to an application that no
administrator installed in the tenant). Nothing secret is ever printed.

The checks run in order and later ones are skipped when what they need is
missing (no Vault, no management identity), so the first failure is the one
to fix first.

The checks are grouped by what they look at: :mod:`.vault` (the server, the KV
mount, the plugin), :mod:`.token` (the daemon's Vault token), :mod:`.management`
(the management application and Graph), :mod:`.integrations` (each
integration's ready secret and consent), :mod:`.lag` (the lag the daemon's probes
measured) and :mod:`.daemon` (a running daemon's
``/healthz``); :mod:`.run` runs them in order. They reach Vault only through
:mod:`sidecar.vault` and Microsoft only through :mod:`sidecar.graph`.
"""

from sidecar.doctor.check import Check, Status, days
from sidecar.doctor.daemon import daemon_health
from sidecar.doctor.integrations import integration
from sidecar.doctor.lag import observed_lag
from sidecar.doctor.management import graph_reachable, management, orphaned_applications
from sidecar.doctor.run import run_checks, summary
from sidecar.doctor.token import daemon_paths, token_capabilities, token_lifetime
from sidecar.doctor.vault import kv_version, plugin, template_wildcard_guard, vault_health

__all__ = [
    "Check",
    "Status",
    "daemon_health",
    "daemon_paths",
    "days",
    "graph_reachable",
    "integration",
    "kv_version",
    "management",
    "observed_lag",
    "orphaned_applications",
    "plugin",
    "run_checks",
    "summary",
    "template_wildcard_guard",
    "token_capabilities",
    "token_lifetime",
    "vault_health",
]
