"""Doctor's checks of the management application: its certificate, Graph, orphans."""

from __future__ import annotations

from sidecar.certs.renewal import RECOVERY
from sidecar.clock import Clock
from sidecar.config import Config
from sidecar.doctor.check import Check, days
from sidecar.errors import GraphError, SidecarError, VaultError
from sidecar.graph import GraphClient
from sidecar.management import (
    ManagementNotInitialised,
    choose_active,
    load_certificates,
    load_identity,
)
from sidecar.orphans import find_orphans
from sidecar.store import Store


def management(store: Store, clock: Clock, config: Config) -> tuple[list[Check], bool]:
    """The management certificate's validity; True if Graph can be tried with it."""
    try:
        identity = load_identity(store)
    except ManagementNotInitialised as exc:
        return [Check("fail", str(exc), "azsidecar management init (see the README)")], False
    except VaultError as exc:
        return [Check("fail", f"cannot read the management identity: {exc}")], False
    now = clock.now()
    certificates = load_certificates(store)
    active = choose_active(certificates, now, config.timing)
    if active is None:
        if not certificates:
            return [Check("fail", "no management certificate in Vault", RECOVERY)], False
        newest = max(certificates, key=lambda c: c.not_after)
        if newest.not_after <= now:
            line = (
                f"management certificate expired {days(now - newest.not_after)} ago"
                f" ({newest.not_after:%Y-%m-%d %H:%M} UTC): the daemon cannot sign in to Graph"
            )
        else:
            line = f"management certificate not valid before {newest.not_before:%Y-%m-%d %H:%M}"
        return [Check("fail", line, RECOVERY)], False
    left = active.not_after - now
    line = (
        f"management application {identity.client_id}: certificate"
        f" {active.thumbprint[:12]}... valid until"
        f" {active.not_after:%Y-%m-%d %H:%M} UTC ({days(left)} left)"
    )
    overdue = left < config.timing.cert_renew_before - config.timing.tick * 2
    newer = [c for c in certificates if c.not_after > active.not_after]
    if overdue and not newer:
        return [
            Check(
                "warn",
                line + "; its renewal is overdue",
                "is the daemon running and leader? see its /healthz and logs",
            )
        ], True
    return [Check("ok", line)], True


def graph_reachable(graph: GraphClient, app_object_id: str, client_id: str) -> Check:
    try:
        app = graph.get_application(app_object_id)
    except GraphError as exc:
        fix = (
            "check azure.graph_url / azure.login_url and the network; a 401/403 means the"
            " certificate or the Graph permission Application.ReadWrite.OwnedBy (with admin"
            " consent, and the application owning itself) is missing"
        )
        return Check("fail", f"Graph: {exc}", fix)
    return Check(
        "ok",
        f"Graph reachable: signed in as {client_id}; its application holds"
        f" {len(app.keys)} certificate(s)",
    )


def orphaned_applications(graph: GraphClient, store: Store, prefix: str) -> Check:
    """Applications named ``prefix-*`` that no integration records (see ``sidecar.orphans``)."""
    try:
        found = find_orphans(graph, store, prefix)
    except SidecarError as exc:
        return Check("warn", f"cannot look for orphaned applications: {exc}")
    if not found:
        return Check("ok", f"no orphaned applications named {prefix}-*")
    names = ", ".join(a.display_name for a in found[:5])
    return Check(
        "warn",
        f"{len(found)} application(s) named {prefix}-* that no integration records: {names}",
        "azsidecar integration reconcile --delete (left by a gateway timeout or a crash)",
    )
