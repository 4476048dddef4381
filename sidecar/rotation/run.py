"""Applies the planner's actions through the Graph and Vault adapters, intent first.

Creating a secret is the one step where a crash could lose something, since
Azure returns a secret's text exactly once. The order makes every crash
recoverable by the next tick's reconciliation (see the planner):

1. record the intent in Vault (check-and-set);
2. ``addPassword`` with a display name carrying the intent id;
3. store the secret as a new KV version and index it;
4. clear the intent.

Crash after 1: the intent times out. After 2: the credential named after the
intent is not in Vault, so it is removed. After 3: the stored version names
the intent, so the intent is cleared.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sidecar.clock import Clock
from sidecar.crashpoints import crash_point
from sidecar.errors import GraphError, GraphWriteUncertain, SidecarError, VaultUnavailable
from sidecar.graph import CredentialGraph
from sidecar.lifecycle.reconcile import Verdict, confirm_destroy
from sidecar.model import (
    AzureCredential,
    Intent,
    IntentKind,
    StoredCredential,
    credential_display_name,
)
from sidecar.rotation.planner import (
    Action,
    ClearIntent,
    CreateSecret,
    DestroyStored,
    IntegrationState,
    RemoveAzureCredential,
    plan,
    replan_at,
)
from sidecar.store import IntegrationRecord, SecretVersion, Store
from sidecar.timing import TimingPolicy

log = logging.getLogger(__name__)

#: How many intents one creation may spend on gateway errors before giving up.
UNCERTAIN_ATTEMPTS = 3


@dataclass
class TickReport:
    """What one integration's tick did, for logs, metrics and tests."""

    integration: str
    created: list[str] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    next_at: datetime | None = None
    stored_after: tuple[StoredCredential, ...] = ()  # the live secrets once the tick is done


def observe(
    record: IntegrationRecord, graph: CredentialGraph, store: Store, now: datetime
) -> IntegrationState:
    """Gather the planner's inputs: Vault's index and intents, Graph's listing.

    A 404 is ridden out for the lag window only while the application is young:
    an application created a day ago is on every replica, so its 404 means it is
    gone, and waiting minutes for it would stall the whole tick.
    """
    # The daemon's tick is where a credential index a crash left stale is repaired.
    stored = tuple(store.repair_credentials(record.name))
    intents, _ = store.intents(record.name)
    secret_intents = tuple(i for i in intents if i.kind == IntentKind.SECRET)
    azure: tuple[AzureCredential, ...] | None
    try:
        age = now - record.created
        young = timedelta(0) <= age < timedelta(seconds=graph.not_found_window)
        app = graph.get_application(record.app_object_id, just_created=young)
        azure = tuple(
            AzureCredential(
                key_id=p.key_id,
                display_name=p.display_name,
                start=p.start or p.end,
                end=p.end,
            )
            for p in app.passwords
        )
    except GraphError as exc:
        log.warning("cannot list the credentials of %s: %s", record.name, exc)
        azure = None
    return IntegrationState(name=record.name, stored=stored, azure=azure, intents=secret_intents)


def create_secret(
    record: IntegrationRecord,
    graph: CredentialGraph,
    store: Store,
    clock: Clock,
    policy: TimingPolicy,
) -> StoredCredential:
    """Steps 1-4 of the module docstring for one new client secret.

    ``addPassword`` is not idempotent and its secret text exists only in its
    answer, so a gateway error or lost connection after sending it
    (:class:`GraphWriteUncertain`) is not repeated as such: the credential it
    may have made is named after its intent, so it is taken back if Graph
    already lists it, and otherwise removed by reconciliation when it shows
    (the intent stays); then a new intent tries again, at most
    :data:`UNCERTAIN_ATTEMPTS` times.
    """
    for attempt in range(1, UNCERTAIN_ATTEMPTS + 1):
        intent = Intent(intent_id=uuid.uuid4().hex, created=clock.now(), kind=IntentKind.SECRET)
        store.add_intent(record.name, intent)
        crash_point("after_intent")
        end = clock.now() + policy.secret_lifetime
        name = credential_display_name(intent.intent_id)
        try:
            new = graph.add_password(record.app_object_id, name, end)
        except GraphWriteUncertain as exc:
            log.warning(
                "addPassword for %s may have happened (%s); its credential is left to"
                " reconciliation (attempt %d of %d)",
                record.name,
                exc,
                attempt,
                UNCERTAIN_ATTEMPTS,
            )
            _take_back(record, name, graph)
            if attempt == UNCERTAIN_ATTEMPTS:
                raise
            continue
        except GraphError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (404, 429):
                # Refused outright (a policy, a bad request): nothing was made, so the
                # intent goes and the next tick asks again; no retry here.
                store.clear_intent(record.name, intent.intent_id)
            raise
        break
    crash_point("after_add_password")
    secret = SecretVersion(
        client_id=record.client_id,
        secret=new.secret,
        key_id=new.key_id,
        tenant_id=record.tenant_id,
        intent_id=intent.intent_id,
        created=clock.now(),
        expires=new.end,
    )
    try:
        stored = store.store_secret(record.name, secret)
    except VaultUnavailable:
        # No answer is not a refusal: the write may have landed (a raft leader
        # commits it and dies before answering), and removing the credential
        # would leave Vault holding, and soon handing out, a secret Azure no
        # longer accepts. The intent stays; reconciliation keeps the credential
        # if Vault has its text and removes it as an orphan otherwise.
        log.warning(
            "storing the new secret of %s got no answer from Vault; its credential"
            " is left to reconciliation",
            record.name,
        )
        raise
    except SidecarError:
        # Vault refused the write, so the text is lost with this process; take
        # the credential back now rather than wait for reconciliation. The
        # intent stays as the record.
        try:
            graph.remove_password(record.app_object_id, new.key_id)
        except GraphError as exc:
            log.warning("could not remove unstored secret of %s: %s", record.name, exc)
        raise
    crash_point("after_store")
    store.clear_intent(record.name, intent.intent_id)
    return stored


def _take_back(record: IntegrationRecord, display_name: str, graph: CredentialGraph) -> None:
    """Remove the credential an uncertain ``addPassword`` made, if a replica lists it now."""
    try:
        app = graph.get_application(record.app_object_id, fresh=True)
        for p in app.passwords:
            if p.display_name == display_name:
                graph.remove_password(record.app_object_id, p.key_id)
                log.info("removed the unanswered client secret of %s", record.name)
    except GraphError as exc:
        log.info("could not look for the unanswered secret of %s yet: %s", record.name, exc)


def _confirm_destroy(
    record: IntegrationRecord,
    action: DestroyStored,
    graph: CredentialGraph,
    store: Store,
    clock: Clock,
) -> Verdict:
    """Read what :func:`confirm_destroy` asks for, until it decides.

    Each confirming read goes out on a fresh connection, because a front end
    keeps a keep-alive connection on one directory replica: re-reading on the
    pooled connection would ask the same lagging replica twice.
    """
    stored = {c.version: c for c in store.credentials(record.name)}.get(action.version)
    expires = None if stored is None else stored.expires
    now = clock.now()
    reads: list[frozenset[str] | None] = []
    while (verdict := confirm_destroy(action, expires, now, reads)) is Verdict.READ_AGAIN:
        try:
            app = graph.get_application(record.app_object_id, fresh=True)
        except GraphError:
            reads.append(None)
            continue
        reads.append(frozenset(p.key_id for p in app.passwords))
    return verdict


def apply_actions(
    record: IntegrationRecord,
    actions: list[Action],
    graph: CredentialGraph,
    store: Store,
    clock: Clock,
    policy: TimingPolicy,
    report: TickReport,
) -> None:
    for action in actions:
        match action:
            case RemoveAzureCredential(key_id=key_id, reason=reason):
                graph.remove_password(record.app_object_id, key_id)
                report.removed.append((key_id, reason))
                log.info("removed a client secret of %s from Azure: %s", record.name, reason)
            case DestroyStored(version=version, reason=reason, confirm_reads=confirm_reads):
                if confirm_reads and (
                    _confirm_destroy(record, action, graph, store, clock) is Verdict.KEEP
                ):
                    log.warning(
                        "version %d of %s is listed again by Graph; not destroying it",
                        version,
                        record.name,
                    )
                    continue
                store.destroy_secret(record.name, version)
                report.destroyed.append(version)
                log.info("destroyed version %d of %s: %s", version, record.name, reason)
            case ClearIntent(intent_id=intent_id, reason=reason):
                store.clear_intent(record.name, intent_id)
                report.cleared.append(intent_id)
                log.info("cleared intent of %s: %s", record.name, reason)
            case CreateSecret(reason=reason):
                stored = create_secret(record, graph, store, clock, policy)
                report.created.append(stored.key_id)
                log.info(
                    "created a client secret for %s (version %d): %s",
                    record.name,
                    stored.version,
                    reason,
                )


def rotate(
    record: IntegrationRecord,
    graph: CredentialGraph,
    store: Store,
    clock: Clock,
    policy: TimingPolicy,
) -> TickReport:
    """One integration's tick: observe, plan, apply."""
    state = observe(record, graph, store, clock.now())
    report = TickReport(integration=record.name)
    actions = plan(state, policy, clock.now())
    apply_actions(record, actions, graph, store, clock, policy, report)
    # When the plan could next change on Vault's state alone (a renewal coming
    # due, an intent timing out), so a crashed renewal is retried before the tick.
    intents, _ = store.intents(record.name)
    report.stored_after = tuple(store.credentials(record.name))
    after = IntegrationState(
        name=record.name,
        stored=report.stored_after,
        azure=None,
        intents=tuple(i for i in intents if i.kind == IntentKind.SECRET),
    )
    report.next_at = replan_at(after, policy, clock.now())
    return report
