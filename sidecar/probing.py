"""The daemon's probe loop: sign in with unverified secrets and store what happened.

Wiring only: what is due and what a result means come from
:mod:`sidecar.probes.rule`; the sign-in is :func:`sidecar.graph.probe_sign_in`
(injected, so the daemon's tests use the emulator through it). The leader
alone probes: ``guard`` (the lease check) runs before every round, and a lost
lease stops the loop at once. Probing a secret stops when it is verified or
no longer live (removed, destroyed); the integration leaves the watch list
when none of its secrets needs probing.

Where probes sign in (see the README, "Verified readiness"): in the
customer's tenant, where runs sign in and where admin consent creates the
application's service principal; an inconclusive answer there (no consent
yet: Entra refuses a tenant without the service principal, AADSTS700016 /
7000229) is retried in the platform's own tenant, which answers only if the
application has a service principal there too (creating an application
through Graph makes none). Inconclusive rounds count for nothing and back
off to every :data:`INCONCLUSIVE_BACKOFF` intervals. Sources: a multi-tenant
application "requires a service principal in each tenant", created on
consent (https://learn.microsoft.com/entra/architecture/service-accounts-principal);
the application object's password credentials are not copied to a
customer's service principal, so every tenant checks the one application
object (https://learn.microsoft.com/answers/questions/821587/azure-ad-key-credential).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from sidecar import metrics
from sidecar.clock import Clock
from sidecar.errors import NotReadyError, SidecarError, VaultNotFound
from sidecar.graph import CertificateCredential
from sidecar.issuer.documents import TokenRequest
from sidecar.issuer.signing import Issuer
from sidecar.keypairs import load_bundle
from sidecar.model import CertificateVersion, CredentialKind, FederatedVersion, StoredCredential
from sidecar.probes import lag, rule
from sidecar.probes.rule import ProbeRecord, ProbeState
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, Store
from sidecar.timing import TimingPolicy

log = logging.getLogger(__name__)

#: Rounds that learnt nothing are retried this many probe intervals later.
INCONCLUSIVE_BACKOFF = 5

#: ``(tenant_id, client_id, secret) -> True | False | None`` (refused / inconclusive).
SignIn = Callable[[str, str, Sensitive], bool | None]

#: ``(tenant_id, client_id, certificate) -> True | False | None``, for certificate credentials.
CertificateSignIn = Callable[[str, str, CertificateCredential], bool | None]

#: ``(tenant_id, integration, version) -> True | False | None``, for federated credentials.
FederatedSignIn = Callable[[str, str, FederatedVersion], bool | None]

#: The ``stack`` and ``phase`` claims of a probe's token: no run's, plainly.
PROBE_STACK = "azsidecar-probe"
PROBE_PHASE = "probe"


def federated_sign_in(
    issuer: Issuer, sign_in: Callable[[str, str, Sensitive], bool | None]
) -> FederatedSignIn:
    """A federated probe: a token the issuer signs for the version, then ``sign_in`` with it.

    ``sign_in(tenant, client_id, assertion)`` is
    :func:`sidecar.graph.probe_sign_in_federated`. The token carries the
    version's subject and audience and says it is a probe (:data:`PROBE_STACK`,
    :data:`PROBE_PHASE`). While no key version has been published long
    enough to sign (:class:`NotReadyError`), or Transit cannot be read, the
    probe is inconclusive: it says nothing about the credential's replication.
    """

    def probe(tenant: str, integration: str, version: FederatedVersion) -> bool | None:
        request = TokenRequest(
            subject=version.subject,
            stack=PROBE_STACK,
            phase=PROBE_PHASE,
            integration=integration,
            audience=version.audience,
        )
        try:
            token = issuer.sign_token(request)
        except NotReadyError:
            return None
        except SidecarError as exc:
            log.warning("cannot sign a probe token for %s: %s", integration, exc)
            return None
        return sign_in(tenant, version.client_id, token.token)

    return probe


class ProbingStopped(SidecarError):
    """Probing stopped because this daemon no longer holds the leader lease."""


class ProbeExecutor:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        policy: TimingPolicy,
        sign_in: SignIn,
        home_tenant: str,
        guard: Callable[[], None] | None = None,
        sign_in_certificate: CertificateSignIn | None = None,
        sign_in_federated: FederatedSignIn | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.sign_in = sign_in
        self.sign_in_certificate = sign_in_certificate
        self.sign_in_federated = sign_in_federated
        self.home_tenant = home_tenant
        self.guard = guard
        self.watch: set[str] = set()
        self.failing: set[str] = set()
        self.sign_ins = 0
        self.known: set[str] = set()
        self._listed: datetime | None = None
        self._attempted: dict[tuple[str, int], datetime] = {}
        self._lock = threading.Lock()

    # -- what to probe -------------------------------------------------------------

    def adopt(self, name: str, stored: Iterable[StoredCredential]) -> None:
        """Give every young secret of ``name`` without a record a pending one.

        Only secrets the time rule has not released yet are adopted, so a
        record never takes back a secret runs may already hold. Certificates
        and federated credentials are adopted only by an executor that can
        sign in with them.
        """
        if not self.policy.probes:
            return
        now = self.clock.now()
        records = self.store.probes(name)
        young = [
            c
            for c in stored
            if c.version not in records
            and now < c.created + self.policy.propagation_delay
            and self._can_sign_in(c.kind)
        ]
        if not young:
            if any(not rule.verified(r, self.policy) for r in records.values()):
                self._watch(name)
            return
        samples, _ = self.store.lag_samples()
        delay = lag.raised_delay(samples, self.policy)
        for credential in young:
            self._guard()
            self.store.save_probe(name, rule.pending(credential.version, delay))
        self._watch(name)

    def _can_sign_in(self, kind: CredentialKind) -> bool:
        if kind is CredentialKind.CERTIFICATE:
            return self.sign_in_certificate is not None
        if kind is CredentialKind.FEDERATED:
            return self.sign_in_federated is not None
        return True

    def discover(self) -> None:
        """Adopt the secrets of integrations not seen before (one LIST, every interval).

        ``integration create`` stores a new integration's first secret without the
        daemon; it is adopted here while still young. A name counts as seen only
        once it has a secret, so one listed mid-creation is looked at again.
        """
        now = self.clock.now()
        if self._listed is not None and now - self._listed < self.policy.probe_interval:
            return
        self._listed = now
        for name in self.store.integration_names():
            if name in self.known:
                continue
            stored = self.store.credentials(name, repair=False)
            if stored:
                self.adopt(name, stored)
                self.known.add(name)

    def _watch(self, name: str) -> None:
        with self._lock:
            self.watch.add(name)

    # -- the loop --------------------------------------------------------------------

    def run_due(self) -> datetime | None:
        """Probe what is due; returns when the next probe is (None: nothing to probe)."""
        if not self.policy.probes:
            return None
        self.discover()
        wakes: list[datetime] = []
        with self._lock:
            names = sorted(self.watch)
        for name in names:
            try:
                wake = self.probe_integration(name)
            except ProbingStopped:
                raise
            except VaultNotFound:
                wake = None
            except SidecarError as exc:
                log.warning("probing the secrets of %s failed: %s", name, exc)
                wake = self.clock.now() + self.policy.probe_interval
            if wake is None:
                with self._lock:
                    self.watch.discard(name)
                self.failing.discard(name)
            else:
                wakes.append(wake)
        metrics.PROBE_FAILING.set(len(self.failing))
        return min(wakes, default=None)

    def probe_integration(self, name: str) -> datetime | None:
        record, _ = self.store.integration(name)
        live = {c.version: c for c in self.store.credentials(name, repair=False)}
        records = self.store.probes(name)
        wakes: list[datetime] = []
        failing = False
        for version, found in sorted(records.items()):
            probe = found
            credential = live.get(version)
            if credential is None:
                continue  # removed: its record goes with its index entry
            verdict = rule.state(probe, credential.created, self.policy, self.clock.now())
            if verdict is ProbeState.UNVERIFIABLE:
                # The time rule released it without evidence, and runs may hold it: a
                # probe now could only take it back. Unverifiable is final.
                continue
            due = rule.next_probe_at(probe, self.policy)
            if due is None:
                continue
            tried = self._attempted.get((name, version))
            if tried is not None:
                due = max(due, tried + INCONCLUSIVE_BACKOFF * self.policy.probe_interval)
            if due <= self.clock.now():
                probe = self._round(record, credential, probe)
            state = rule.state(probe, credential.created, self.policy, self.clock.now())
            failing |= state is ProbeState.FAILING
            following = rule.next_probe_at(probe, self.policy)
            tried = self._attempted.get((name, version))
            if following is not None and tried is not None:
                following = max(
                    following, tried + INCONCLUSIVE_BACKOFF * self.policy.probe_interval
                )
            if following is not None:
                wakes.append(following)
        if failing:
            self.failing.add(name)
        else:
            self.failing.discard(name)
        return min(wakes, default=None)

    def _round(
        self, record: IntegrationRecord, credential: StoredCredential, probe: ProbeRecord
    ) -> ProbeRecord:
        """``probe_sign_ins`` sign-ins, each on a new connection, then one write."""
        self._guard()
        sign_in = self._sign_in_with(record, credential)
        before = probe
        for _ in range(self.policy.probe_sign_ins):
            answer = sign_in(record.tenant_id)
            self.sign_ins += 1
            if answer is None and self.home_tenant != record.tenant_id:
                # No service principal in the customer's tenant yet (no consent):
                # the platform's own tenant, if the application has one there.
                answer = sign_in(self.home_tenant)
                self.sign_ins += 1
            if answer is None:
                metrics.PROBE_SIGN_INS.labels("inconclusive").inc()
                continue
            now = self.clock.now()
            metrics.PROBE_SIGN_INS.labels("ok" if answer else "refused").inc()
            probe = rule.observe(probe, answer, now)
            late = now >= credential.created + rule.effective_delay(probe, self.policy)
            if not answer and late:
                metrics.PROBE_LATE_FAILURES.inc()
                log.warning(
                    "%s version %d of %s is refused at sign-in %s after creation, past"
                    " its propagation delay; it stays unready and the previous one stays"
                    " in use",
                    credential.kind.noun,
                    credential.version,
                    record.name,
                    now - credential.created,
                )
        if probe == before:
            # Every answer inconclusive (no consent yet, throttled, unreachable):
            # nothing learnt; try again less often so the cost stays bounded.
            self._attempted[(record.name, credential.version)] = self.clock.now()
            return probe
        self._attempted.pop((record.name, credential.version), None)
        self._guard()
        if not self.store.save_probe(record.name, probe):
            return probe
        if rule.verified(probe, self.policy):
            self._measured(record.name, credential, probe)
        return probe

    def _sign_in_with(
        self, record: IntegrationRecord, credential: StoredCredential
    ) -> Callable[[str], bool | None]:
        """One sign-in in a tenant with the stored credential, whatever its kind."""
        found = self.store.credential_version(record.name, credential.version)
        if isinstance(found, CertificateVersion):
            certificate_sign_in = self.sign_in_certificate
            if certificate_sign_in is None:
                return lambda tenant: None  # cannot sign in with it: inconclusive
            pair = load_bundle(found.pfx, found.pfx_password)
            signer = CertificateCredential(pair.cert_pem, pair.key_pem, pair.thumbprint)
            return lambda tenant: certificate_sign_in(tenant, record.client_id, signer)
        if isinstance(found, FederatedVersion):
            federated = self.sign_in_federated
            if federated is None:
                return lambda tenant: None  # cannot sign in with it: inconclusive
            return lambda tenant: federated(tenant, record.name, found)
        secret = found.secret
        return lambda tenant: self.sign_in(tenant, record.client_id, secret)

    def _measured(self, name: str, credential: StoredCredential, probe: ProbeRecord) -> None:
        sample = lag.sample_of(probe, credential.created)
        if sample is None:
            return
        metrics.LAG_FIRST_SUCCESS.observe(sample.first_success)
        metrics.LAG_LAST_FAILURE.observe(sample.last_failure)
        log.info(
            "%s version %d of %s verified: first sign-in after %.0f s, last refusal"
            " after %.0f s, %d sign-ins",
            credential.kind.noun,
            credential.version,
            name,
            sample.first_success,
            sample.last_failure,
            probe.sign_ins,
        )
        try:
            self.store.append_lag_sample(sample)
        except SidecarError as exc:
            log.warning("could not record the measured lag: %s", exc)

    def _guard(self) -> None:
        if self.guard is None:
            return
        try:
            self.guard()
        except SidecarError as exc:
            raise ProbingStopped(f"stopped probing: {exc}") from exc
