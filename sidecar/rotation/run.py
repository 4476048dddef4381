"""Applies the planner's actions through the Graph and Vault adapters, intent first.

Creating a credential is the one step where a crash could lose something:
Azure returns a secret's text exactly once, and a certificate's private key
exists only in this process until Vault holds it. The order makes every
crash recoverable by the next tick's reconciliation (see the planner):

1. record the intent in Vault (check-and-set);
2. ``addPassword``, or for a certificate generate the key pair in memory and
   upload its certificate (``addKey``, or PATCH for the first one, as the
   plan says), with a display name carrying the intent id;
3. store the secret (the certificate as a PKCS#12 bundle) as a new KV
   version and index it;
4. clear the intent.

Crash after 1: the intent times out. After 2: the credential named after the
intent is not in Vault, so it is removed. After 3: the stored version names
the intent, so the intent is cleared.

A federated credential (#18) goes the same way, with nothing secret in it:
the intent, then ``POST federatedIdentityCredentials`` named
``azsidecar-<intent>`` (:func:`sidecar.model.federated_credential_name`) that
trusts the configured issuer (:class:`FederatedTrust`) for the subject of the
integration and the intent, then the stored :class:`FederatedVersion`, then the
intent cleared; crash points ``after_intent``, ``after_add_federated``,
``after_store``. An integration that wants federated credentials while no
``[issuer]`` is configured fails its tick with a ConfigError saying what to set.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sidecar.clock import Clock
from sidecar.crashpoints import crash_point
from sidecar.errors import (
    ConfigError,
    GraphError,
    GraphWriteUncertain,
    SidecarError,
    VaultUnavailable,
)
from sidecar.graph import CertificateCredential, CredentialGraph, KeyCredential, PasswordCredential
from sidecar.keypairs import generate_key_pair, load_bundle, pkcs12_bundle
from sidecar.lifecycle.reconcile import Verdict, confirm_destroy
from sidecar.model import (
    AzureCredential,
    CertificateVersion,
    CredentialKind,
    CredentialVersion,
    FederatedVersion,
    Intent,
    IntentKind,
    StoredCredential,
    credential_display_name,
    federated_credential_name,
    federated_subject,
)
from sidecar.probes.rule import ProbeRecord
from sidecar.rotation.planner import (
    Action,
    ClearIntent,
    CreateCertificate,
    CreateFederated,
    CreateSecret,
    DestroyStored,
    FederatedTrust,
    IntegrationState,
    RemoveAzureCredential,
    RemoveFederated,
    RemoveKeyCredential,
    federated_listed,
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
    stored_after: tuple[StoredCredential, ...] = ()  # the live credentials once the tick is done
    kind: CredentialKind = CredentialKind.SECRET  # the kind the integration wants


#: The intents of an integration's credentials (a management certificate's live elsewhere).
_INTEGRATION_INTENTS = (IntentKind.SECRET, IntentKind.CERTIFICATE, IntentKind.FEDERATED)


def require_trust(name: str, trust: FederatedTrust | None) -> FederatedTrust:
    """The configured issuer's trust; ConfigError saying what to set when there is none."""
    if trust is None:
        raise ConfigError(
            "issuer.url",
            f"integration {name} wants federated credentials, which trust azsidecar's"
            " OIDC issuer: set [issuer] url to its public https:// URL (and run"
            " `azsidecar issuer init`), or keep the integration on secrets"
            f" (`azsidecar integration set-kind {name} secret`)",
        )
    return trust


def observe(
    record: IntegrationRecord,
    graph: CredentialGraph,
    store: Store,
    now: datetime,
    policy: TimingPolicy | None = None,
    trust: FederatedTrust | None = None,
) -> IntegrationState:
    """Gather the planner's inputs: Vault's index, intents and probes, Graph's listings.

    A 404 is ridden out for the lag window only while the application is young:
    an application created a day ago is on every replica, so its 404 means it is
    gone, and waiting minutes for it would stall the whole tick. Probe records
    are read (with ``policy.probes``) only while the integration holds more
    than one kind, where they decide when the old kind is retired.
    """
    # The daemon's tick is where a credential index a crash left stale is repaired.
    stored = tuple(store.repair_credentials(record.name))
    intents, _ = store.intents(record.name)
    ours = tuple(i for i in intents if i.kind in _INTEGRATION_INTENTS)
    federated_held = [c for c in stored if c.kind is CredentialKind.FEDERATED]
    probes: dict[int, ProbeRecord] = {}
    several = any(c.kind is not record.kind for c in stored) or len(federated_held) > 1
    if policy is not None and policy.probes and several:
        probes = store.probes(record.name)
    wants_federated = (
        record.kind is CredentialKind.FEDERATED
        or bool(federated_held)
        or any(i.kind is IntentKind.FEDERATED for i in ours)
    )
    azure: tuple[AzureCredential, ...] | None
    keys: tuple[AzureCredential, ...] | None
    federated: tuple[AzureCredential, ...] | None = None
    try:
        age = now - record.created
        young = timedelta(0) <= age < timedelta(seconds=graph.not_found_window)
        app = graph.get_application(record.app_object_id, just_created=young)
        azure = tuple(_listed(p) for p in app.passwords)
        keys = tuple(_listed(k) for k in app.keys)
    except GraphError as exc:
        log.warning("cannot list the credentials of %s: %s", record.name, exc)
        azure = keys = None
    if wants_federated and azure is not None:
        try:
            listed = graph.list_federated_credentials(record.app_object_id, just_created=young)
            federated = tuple(federated_listed(f.key_id, f.name) for f in listed)
        except GraphError as exc:
            log.warning("cannot list the federated credentials of %s: %s", record.name, exc)
    return IntegrationState(
        name=record.name,
        stored=stored,
        azure=azure,
        intents=ours,
        kind=record.kind,
        keys=keys,
        probes=probes,
        federated=federated,
        trust=trust,
        trusts=_trusts(record, store, federated_held),
    )


def _trusts(
    record: IntegrationRecord, store: Store, held: list[StoredCredential]
) -> dict[int, FederatedTrust]:
    """What each stored federated version trusts, as Vault holds it."""
    found: dict[int, FederatedTrust] = {}
    for c in held:
        version = store.credential_version(record.name, c.version)
        if isinstance(version, FederatedVersion):
            found[c.version] = FederatedTrust(version.issuer, version.audience)
    return found


def _listed(credential: PasswordCredential | KeyCredential) -> AzureCredential:
    return AzureCredential(
        key_id=credential.key_id,
        display_name=credential.display_name,
        start=credential.start or credential.end,
        end=credential.end,
    )


def _begin(record: IntegrationRecord, store: Store, clock: Clock, kind: IntentKind) -> Intent:
    """Step 1: the intent, written before anything is made in Azure."""
    intent = Intent(intent_id=uuid.uuid4().hex, created=clock.now(), kind=kind)
    store.add_intent(record.name, intent)
    crash_point("after_intent")
    return intent


@contextlib.contextmanager
def _refusal_clears(record: IntegrationRecord, store: Store, intent: Intent) -> Iterator[None]:
    """Around a creating Graph call: refused outright (a policy, a bad request, a limit),
    nothing was made, so the intent goes and the next tick asks again; no retry here.
    An unclear answer (:class:`GraphWriteUncertain`) keeps the intent for reconciliation."""
    try:
        yield
    except GraphWriteUncertain:
        raise
    except GraphError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (404, 429):
            store.clear_intent(record.name, intent.intent_id)
        raise


def _store_new(
    record: IntegrationRecord,
    store: Store,
    intent: Intent,
    made: CredentialVersion,
    take_back: Callable[[], object],
) -> StoredCredential:
    """Steps 3-4: store the new credential's version, then clear its intent.

    No answer from Vault is not a refusal: the write may have landed (a raft
    leader commits it and dies before answering), and removing the credential
    would leave Vault holding, and soon handing out, one Azure no longer
    accepts. The intent stays; reconciliation keeps the credential if Vault
    has it and removes it as an orphan otherwise. A refusal means what was
    made in Azure is lost with this process (a secret's text, a private key):
    ``take_back`` removes it now rather than wait for reconciliation, and the
    intent stays as the record.
    """
    noun = made.kind.noun
    try:
        stored = store.store_secret(record.name, made)
    except VaultUnavailable:
        log.warning(
            "storing the new %s of %s got no answer from Vault; it is left to reconciliation",
            noun,
            record.name,
        )
        raise
    except SidecarError:
        try:
            take_back()
        except GraphError as exc:
            log.warning("could not remove the unstored %s of %s: %s", noun, record.name, exc)
        raise
    crash_point("after_store")
    store.clear_intent(record.name, intent.intent_id)
    return stored


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
        intent = _begin(record, store, clock, IntentKind.SECRET)
        end = clock.now() + policy.secret_lifetime
        name = credential_display_name(intent.intent_id)
        try:
            with _refusal_clears(record, store, intent):
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
    return _store_new(
        record,
        store,
        intent,
        secret,
        lambda: graph.remove_password(record.app_object_id, new.key_id),
    )


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


def create_certificate(
    record: IntegrationRecord,
    graph: CredentialGraph,
    store: Store,
    clock: Clock,
    policy: TimingPolicy,
    proof_version: int | None,
) -> StoredCredential:
    """Steps 1-4 of the module docstring for one new certificate credential.

    The key pair is made here, in memory; the private key leaves the process
    only inside the encrypted PKCS#12 bundle written to Vault. ``addKey`` is
    proven by the stored certificate ``proof_version``; without one the
    certificate goes in by PATCH of the whole collection. An ``addKey`` that
    got no clear answer is looked for by thumbprint (:meth:`GraphClient.add_key`);
    if it is not found the intent stays and reconciliation removes the key
    should it show, since its private key is gone with this attempt.
    """
    intent = _begin(record, store, clock, IntentKind.CERTIFICATE)
    name = credential_display_name(intent.intent_id)
    pair = generate_key_pair(
        f"azsidecar-{record.name}", clock.now(), policy.client_certificate_lifetime
    )
    try:
        with _refusal_clears(record, store, intent):
            if proof_version is None:
                key = graph.patch_add_key(record.app_object_id, pair.cert_der, name)
            else:
                signer = _signer(record, store, proof_version)
                key = graph.add_key(record.app_object_id, pair.cert_der, name, signer)
    except GraphWriteUncertain as exc:
        log.warning(
            "the certificate upload for %s may have happened (%s); its key is left to"
            " reconciliation",
            record.name,
            exc,
        )
        raise
    crash_point("after_add_key")
    bundle = pkcs12_bundle(pair, name)
    certificate = CertificateVersion(
        client_id=record.client_id,
        tenant_id=record.tenant_id,
        key_id=key.key_id,
        thumbprint=pair.thumbprint,
        intent_id=intent.intent_id,
        created=clock.now(),
        expires=min(key.end, pair.not_after),
        pfx=bundle.pfx,
        pfx_password=bundle.password,
    )
    # Its own private key proves the key's removal.
    own = CertificateCredential(pair.cert_pem, pair.key_pem, pair.thumbprint, key.key_id)
    return _store_new(
        record,
        store,
        intent,
        certificate,
        lambda: graph.remove_key(record.app_object_id, key.key_id, own),
    )


def create_federated(
    record: IntegrationRecord,
    graph: CredentialGraph,
    store: Store,
    clock: Clock,
    trust: FederatedTrust,
) -> StoredCredential:
    """Steps 1-4 of the module docstring for one new federated identity credential.

    Nothing of it is secret and its name is unique on the application, so an
    answer lost on the way is settled by :meth:`GraphClient.add_federated_credential`
    (it looks the credential up by name); if it stays unsettled the intent
    stays and reconciliation removes the credential should it show. ``created``
    is when Graph accepted it, from which readiness counts.
    """
    intent = _begin(record, store, clock, IntentKind.FEDERATED)
    name = federated_credential_name(intent.intent_id)
    subject = federated_subject(record.name, intent.intent_id)
    try:
        with _refusal_clears(record, store, intent):  # e.g. the 20-credential limit
            added = graph.add_federated_credential(
                record.app_object_id, name, trust.issuer, subject, trust.audience
            )
    except GraphWriteUncertain as exc:
        log.warning(
            "the federated credential of %s may have been created (%s); it is left to"
            " reconciliation",
            record.name,
            exc,
        )
        raise
    accepted = clock.now()
    crash_point("after_add_federated")
    version = FederatedVersion(
        client_id=record.client_id,
        tenant_id=record.tenant_id,
        key_id=added.key_id,
        name=name,
        issuer=trust.issuer,
        subject=subject,
        audience=trust.audience,
        intent_id=intent.intent_id,
        created=accepted,
    )
    return _store_new(
        record,
        store,
        intent,
        version,
        lambda: graph.remove_federated_credential(record.app_object_id, added.key_id),
    )


def _signer(record: IntegrationRecord, store: Store, version: int) -> CertificateCredential:
    """The stored certificate ``version`` as a key that signs a proof of possession."""
    found = store.credential_version(record.name, version)
    if not isinstance(found, CertificateVersion):
        raise SidecarError(f"credentials/{record.name} v{version} is not a certificate")
    pair = load_bundle(found.pfx, found.pfx_password)
    return CertificateCredential(pair.cert_pem, pair.key_pem, pair.thumbprint, found.key_id)


def remove_certificate(
    record: IntegrationRecord, graph: CredentialGraph, store: Store, action: RemoveKeyCredential
) -> None:
    """``removeKey`` proven by the stored version the plan names, or PATCH without one."""
    if action.proof_version is None:
        graph.patch_remove_key(record.app_object_id, action.key_id)
    else:
        signer = _signer(record, store, action.proof_version)
        graph.remove_key(record.app_object_id, action.key_id, signer)


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
    federated = stored is not None and stored.kind is CredentialKind.FEDERATED
    now = clock.now()
    reads: list[frozenset[str] | None] = []
    while (verdict := confirm_destroy(action, expires, now, reads)) is Verdict.READ_AGAIN:
        try:
            if federated:
                found = graph.list_federated_credentials(record.app_object_id, fresh=True)
                listed = {f.key_id for f in found}
            else:
                app = graph.get_application(record.app_object_id, fresh=True)
                listed = {p.key_id for p in app.passwords} | {k.key_id for k in app.keys}
        except GraphError:
            reads.append(None)
            continue
        reads.append(frozenset(listed))
    return verdict


def apply_actions(
    record: IntegrationRecord,
    actions: list[Action],
    graph: CredentialGraph,
    store: Store,
    clock: Clock,
    policy: TimingPolicy,
    report: TickReport,
    trust: FederatedTrust | None = None,
) -> None:
    for action in actions:
        match action:
            # The federated kind's actions are subclasses of the shared ones too.
            case RemoveFederated(key_id=key_id, reason=reason):
                graph.remove_federated_credential(record.app_object_id, key_id)
                report.removed.append((key_id, reason))
                log.info("removed a federated credential of %s: %s", record.name, reason)
            case CreateFederated(reason=reason):
                wanted = require_trust(record.name, trust)
                stored = create_federated(record, graph, store, clock, wanted)
                report.created.append(stored.key_id)
                log.info(
                    "created a federated credential for %s (version %d): %s",
                    record.name,
                    stored.version,
                    reason,
                )
            # A certificate's actions are subclasses of the shared ones: matched first.
            case RemoveKeyCredential(key_id=key_id, reason=reason):
                remove_certificate(record, graph, store, action)
                report.removed.append((key_id, reason))
                log.info("removed a certificate of %s from Azure: %s", record.name, reason)
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
            case CreateCertificate(reason=reason, proof_version=proof_version):
                stored = create_certificate(record, graph, store, clock, policy, proof_version)
                report.created.append(stored.key_id)
                log.info(
                    "created a certificate for %s (version %d): %s",
                    record.name,
                    stored.version,
                    reason,
                )
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
    trust: FederatedTrust | None = None,
) -> TickReport:
    """One integration's tick: observe, plan, apply.

    ``trust`` is the configured issuer's (None without ``[issuer]``); an
    integration that wants federated credentials without one fails here,
    before anything is read or written.
    """
    if record.kind is CredentialKind.FEDERATED:
        require_trust(record.name, trust)
    state = observe(record, graph, store, clock.now(), policy, trust)
    report = TickReport(integration=record.name, kind=record.kind)
    actions = plan(state, policy, clock.now())
    apply_actions(record, actions, graph, store, clock, policy, report, trust)
    # When the plan could next change on Vault's state alone (a renewal coming
    # due, an intent timing out), so a crashed renewal is retried before the tick.
    intents, _ = store.intents(record.name)
    report.stored_after = tuple(store.credentials(record.name))
    after = IntegrationState(
        name=record.name,
        stored=report.stored_after,
        azure=None,
        intents=tuple(i for i in intents if i.kind in _INTEGRATION_INTENTS),
        kind=record.kind,
        trust=trust,
        trusts=state.trusts,
    )
    report.next_at = replan_at(after, policy, clock.now())
    return report
