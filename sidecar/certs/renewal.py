"""Applies the certificate planner's decisions: renew, remove old keys, reconcile.

A renewal is ordered like a secret rotation, so a crash at any point is
repaired by the next tick: record the intent, make a key pair in memory,
``addKey`` (display name after the intent, proof signed by the active key),
store certificate and key in Vault, clear the intent. The new certificate is
used only ``cert_switch_delay`` after upload (see the planner), and the old
key is removed (``removeKey``, proof signed by the new key) once the new one
is active.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from sidecar.certs.planner import (
    CertificatePlan,
    CertificateState,
    RemoveKey,
    RenewCertificate,
    Stuck,
    plan,
)
from sidecar.clock import Clock
from sidecar.crashpoints import crash_point
from sidecar.errors import GraphError
from sidecar.graph import CredentialGraph
from sidecar.lifecycle.actions import ClearIntent, DestroyStored
from sidecar.management import (
    CertificateVersion,
    ManagementIdentity,
    generate_key_pair,
    load_certificates,
    store_certificate,
)
from sidecar.model import AzureKey, Intent, IntentKind, credential_display_name
from sidecar.ready import choose_active
from sidecar.store import Store
from sidecar.timing import TimingPolicy

log = logging.getLogger(__name__)

RECOVERY = (
    "manual recovery: create a new certificate, add it to the management application"
    " in the Azure portal (Certificates & secrets) or with PATCH /applications/{id}"
    " keyCredentials, then run `azsidecar management init --cert ... --key ...`"
    " (or --pkcs12) with the same identity"
)


@dataclass
class CertificateReport:
    renewed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    stuck: str = ""


def observe(
    store: Store, graph: CredentialGraph, identity: ManagementIdentity
) -> tuple[CertificateState, list[CertificateVersion]]:
    certificates = load_certificates(store)
    azure: tuple[AzureKey, ...] | None
    try:
        app = graph.get_application(identity.app_object_id)
        azure = tuple(
            AzureKey(
                key_id=k.key_id,
                thumbprint=k.thumbprint,
                display_name=k.display_name,
                start=k.start or k.end,
                end=k.end,
            )
            for k in app.keys
        )
    except GraphError as exc:
        log.warning("cannot list the management application's keys: %s", exc)
        azure = None
    intents = tuple(i for i in store.certificate_intents() if i.kind == IntentKind.CERTIFICATE)
    state = CertificateState(
        stored=tuple(c.summary() for c in certificates), azure=azure, intents=intents
    )
    return state, certificates


def renew(
    store: Store,
    graph: CredentialGraph,
    identity: ManagementIdentity,
    signer: CertificateVersion,
    clock: Clock,
    policy: TimingPolicy,
) -> CertificateVersion:
    intent = Intent(uuid.uuid4().hex, clock.now(), IntentKind.CERTIFICATE)
    store.add_certificate_intent(intent)
    crash_point("cert_after_intent")
    pair = generate_key_pair("azsidecar-management", clock.now(), policy.cert_lifetime)
    key = graph.add_key(
        identity.app_object_id,
        pair.cert_der,
        credential_display_name(intent.intent_id),
        signer.credential(),
    )
    crash_point("cert_after_add_key")
    stored = store_certificate(
        store, pair, key_id=key.key_id, uploaded_at=clock.now(), intent_id=intent.intent_id
    )
    crash_point("cert_after_store")
    store.clear_certificate_intent(intent.intent_id)
    return stored


def destroy_certificate(store: Store, version: int) -> None:
    store.destroy_certificate(version)


def tick(
    store: Store,
    graph: CredentialGraph,
    identity: ManagementIdentity,
    clock: Clock,
    policy: TimingPolicy,
) -> CertificateReport:
    """One certificate tick: observe, plan, apply. Never raises for a stuck certificate."""
    report = CertificateReport()
    now = clock.now()
    stored = load_certificates(store)
    if choose_active([c.summary() for c in stored], now, policy) is None:
        # Without a valid certificate Graph cannot be reached to look.
        decision: CertificatePlan | Stuck = plan(
            CertificateState(tuple(c.summary() for c in stored), None, ()), policy, now
        )
        assert isinstance(decision, Stuck)
        report.stuck = decision.reason
        log.error("the management certificate is stuck: %s; %s", decision.reason, RECOVERY)
        return report
    state, certificates = observe(store, graph, identity)
    decision = plan(state, policy, clock.now())
    if isinstance(decision, Stuck):
        report.stuck = decision.reason
        log.error("the management certificate is stuck: %s; %s", decision.reason, RECOVERY)
        return report
    apply(decision, certificates, store, graph, identity, clock, policy, report)
    return report


def apply(
    decision: CertificatePlan,
    certificates: list[CertificateVersion],
    store: Store,
    graph: CredentialGraph,
    identity: ManagementIdentity,
    clock: Clock,
    policy: TimingPolicy,
    report: CertificateReport,
) -> None:
    by_version = {c.version: c for c in certificates}
    active = by_version[decision.active.version]
    for action in decision.actions:
        match action:
            case RemoveKey(key_id=key_id, reason=reason):
                graph.remove_key(identity.app_object_id, key_id, active.credential())
                report.removed.append(key_id)
                log.info("removed a management key from Azure: %s", reason)
            case DestroyStored(version=version, reason=reason):
                destroy_certificate(store, version)
                report.destroyed.append(version)
                log.info("destroyed management certificate v%d: %s", version, reason)
            case ClearIntent(intent_id=intent_id, reason=reason):
                store.clear_certificate_intent(intent_id)
                report.cleared.append(intent_id)
                log.info("cleared a certificate intent: %s", reason)
            case RenewCertificate(reason=reason):
                new = renew(store, graph, identity, active, clock, policy)
                report.renewed.append(new.thumbprint)
                log.info(
                    "uploaded management certificate v%d (%s), used from %s: %s",
                    new.version,
                    new.thumbprint,
                    (new.uploaded_at + policy.cert_switch_delay).isoformat(),
                    reason,
                )
