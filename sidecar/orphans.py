"""Applications in Azure that no integration records: what a lost write leaves behind.

A ``POST /applications`` answered by a gateway error may have created the
application anyway; the product looks for it by display name before creating
again, but a replica that lags past the look can hide it, and a crash between
the create and the record does the same. Such an application is owned by the
management application, multi-tenant, and named ``<app_name_prefix>-...``;
no ``delete`` would ever reach it. This module finds them (pure) and removes
them (through Graph); ``azsidecar integration reconcile`` and ``doctor`` use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.errors import GraphError
from sidecar.graph import Application, GraphClient
from sidecar.store import IntegrationRecord, Store

log = logging.getLogger(__name__)


def orphaned(
    apps: Iterable[Application], records: Iterable[IntegrationRecord], prefix: str
) -> list[Application]:
    """Our applications (named ``prefix-...``) that no integration records.

    An application whose display name is that of a record still being created
    (no object id yet) is not an orphan: resuming the creation adopts it.
    """
    recorded = set()
    pending = set()
    for r in records:
        if r.app_object_id:
            recorded.add(r.app_object_id)
        else:
            pending.add(r.display_name)
    marker = f"{prefix}-"
    return [
        a
        for a in apps
        if a.display_name.startswith(marker)
        and a.object_id not in recorded
        and a.display_name not in pending
    ]


@dataclass(frozen=True)
class Reconciled:
    found: list[Application]
    removed: list[Application]


def find_orphans(graph: GraphClient, store: Store, prefix: str) -> list[Application]:
    """List our applications in Graph and compare with every integration record."""
    apps = graph.list_applications(prefix=f"{prefix}-")
    records = [store.integration(name)[0] for name in store.integration_names()]
    return orphaned(apps, records, prefix)


def remove_orphans(graph: GraphClient, store: Store, prefix: str, *, delete: bool) -> Reconciled:
    """Find orphans and, with ``delete``, remove them from Azure."""
    found = find_orphans(graph, store, prefix)
    removed: list[Application] = []
    if delete:
        # Records are read again: a concurrent `integration create` may have
        # recorded one of them since the listing.
        records = [store.integration(name)[0] for name in store.integration_names()]
        for app in orphaned(found, records, prefix):
            try:
                if graph.delete_application(app.object_id):
                    removed.append(app)
                    log.info("deleted orphaned application %s (%s)", app.display_name, app.app_id)
            except GraphError as exc:
                log.warning("could not delete orphaned application %s: %s", app.display_name, exc)
    return Reconciled(found=found, removed=removed)
