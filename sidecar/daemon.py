"""The rotation daemon: wiring of the clock, the lease, the planner and the adapters.

Each loop: hold or take the leader lease; when a tick is due (at start-up,
then every ``tick``), rotate every integration on a bounded thread pool.
A Vault or Graph outage fails the tick, which is retried soon after instead
of an hour later, so the daemon catches up by itself once the service is back.

With an ``[issuer]`` configured, the leader also maintains the OIDC issuer's
signing key (:meth:`Daemon.issuer_tick`: create, rotate, retire in Transit)
before each tick and whenever the key plan next changes; its failures are
logged and counted but never hold up the credentials, nor theirs the issuer.
Every daemon, leader or not, serves the issuer's documents over HTTPS
(:meth:`Daemon.serve_issuer`, :mod:`sidecar.issuer.listener`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import make_wsgi_app
from werkzeug.wrappers import Request, Response

from sidecar import metrics
from sidecar.certs import renewal
from sidecar.errors import SidecarError, VaultError, VaultForbidden
from sidecar.graph import (
    GraphClient,
    probe_sign_in,
    probe_sign_in_certificate,
    probe_sign_in_federated,
)
from sidecar.health import RETRY_AFTER_FAILURE, Health, healthz, token_health
from sidecar.http_listener import BoundedHTTPServer
from sidecar.issuer import listener as issuer_listener
from sidecar.issuer.planner import KeyPlan
from sidecar.lease import LeaderLease
from sidecar.management import CertificateProvider
from sidecar.model import IntegrationStatus
from sidecar.probing import ProbeExecutor, federated_sign_in
from sidecar.ready import Ready, choose_for_kind
from sidecar.rotation.run import TickReport, rotate
from sidecar.runtime import Runtime, federated_trust
from sidecar.vault_login import VaultLogin

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, runtime: Runtime, holder: str | None = None) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.clock = runtime.clock
        self.policy = runtime.config.timing
        self.holder = holder or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease = LeaderLease(runtime.store, self.holder, self.clock, self.policy.lease_ttl)
        self.health = Health()
        self._graph: GraphClient | None = None
        self._certificates: CertificateProvider | None = None
        self._said_no_certificate = False
        self._http: BoundedHTTPServer | None = None
        self.reports: list[TickReport] = []
        self.certificate_reports: list[renewal.CertificateReport] = []
        # When each integration's plan could next change (the planner's replan_at):
        # between full passes only those integrations are visited, when due.
        self.wakes: dict[str, datetime] = {}
        self._wake_lock = threading.Lock()
        self.vault_login = runtime.vault_login
        if self.vault_login is not None:
            watch_vault_login(self.vault_login)
        self._probes: ProbeExecutor | None = None
        self.issuer = runtime.issuer()
        self.issuer_plan: KeyPlan | None = None
        # When the leader next maintains the issuer key (None: at once).
        self.issuer_wake: datetime | None = None
        self.issuer_maintenances = 0
        self._issuer_http: BoundedHTTPServer | None = None
        if self.issuer is not None:
            metrics.ISSUER_ROTATION_REMAINING.set_function(self._issuer_rotation_remaining)

    # -- one tick ----------------------------------------------------------------------

    def graph(self) -> GraphClient:
        if self._graph is None:
            if not self.federated:
                self._certificates = self.runtime.certificates()
            self._graph = self.runtime.graph(
                provider=self._certificates, observer=metrics.GraphMetrics()
            )
            # A daemon stalled past its lease (a long Retry-After, a pause) must
            # not write once another has taken over: every write checks first.
            self._graph.write_guard = self.lease.confirm
        return self._graph

    def probes(self) -> ProbeExecutor:
        if self._probes is None:
            azure = self.config.azure

            # The probe loop calls each with (tenant, client_id, credential).
            login, scope, bundle = azure.login_url, azure.arm_scope, azure.ca_bundle
            sign_in = functools.partial(
                probe_sign_in, login_url=login, scope=scope, ca_bundle=bundle
            )
            sign_in_certificate = functools.partial(
                probe_sign_in_certificate, login_url=login, scope=scope, ca_bundle=bundle
            )
            sign_in_assertion = functools.partial(
                probe_sign_in_federated, login_url=login, scope=scope, ca_bundle=bundle
            )
            issuer = self.runtime.issuer()
            self._probes = ProbeExecutor(
                self.runtime.store,
                self.clock,
                self.policy,
                sign_in,
                home_tenant=self.runtime.identity().tenant_id,
                guard=self.lease.confirm,
                sign_in_certificate=sign_in_certificate,
                sign_in_federated=(
                    None if issuer is None else federated_sign_in(issuer, sign_in_assertion)
                ),
            )
        return self._probes

    def probe(self) -> datetime | None:
        """One pass of the probe loop (leader only); when the next probe is due."""
        if not self.policy.probes:
            return None
        try:
            wake = self.probes().run_due()
        except SidecarError as exc:
            log.warning("probing stopped: %s", exc)
            return None
        self.health.probe_failing = set(self.probes().failing)
        return wake

    @property
    def federated(self) -> bool:
        """Whether the daemon signs in with a federated assertion (no certificate at all)."""
        return self.config.azure.management_auth == "federated"

    def certificate_tick(self) -> bool:
        """Renew the management certificate if due; False if Graph cannot be used.

        With a federated management identity there is no certificate: nothing
        is renewed, and the log says so once.
        """
        if self.federated:
            if not self._said_no_certificate:
                self._said_no_certificate = True
                log.info(
                    "management certificate renewal skipped: the daemon signs in to Graph"
                    " with a federated assertion from its issuer (azure.management_auth ="
                    " federated)"
                )
                recorded = self.runtime.identity().auth
                if recorded != "federated":
                    log.warning(
                        "management/identity records %s sign-in; run `azsidecar management"
                        " init --federated` so that it records how the daemon signs in",
                        recorded,
                    )
            return True
        graph = self.graph()
        report = renewal.tick(
            self.runtime.store, graph, self.runtime.identity(), self.clock, self.policy
        )
        self.certificate_reports.append(report)
        del self.certificate_reports[:-1000]
        self.health.certificate_stuck = report.stuck
        metrics.CERT_STUCK.set(1 if report.stuck else 0)
        if report.stuck:
            return False
        for _ in report.renewed:
            metrics.CERT_RENEWALS.inc()
        if self._certificates is not None:
            self._certificates.reload()
            active = self._certificates.active()
            metrics.CERT_REMAINING.set((active.not_after - self.clock.now()).total_seconds())
        return True

    # -- the OIDC issuer ----------------------------------------------------------------

    def issuer_tick(self) -> bool:
        """Maintain the issuer's signing key (leader only); True if it succeeded.

        Runs at the latest one ``tick`` after the last one, and at the key
        plan's next change (a version becoming eligible or retiring, a
        rotation falling due); five minutes after a failure.
        """
        if self.issuer is None:
            return True
        now = self.clock.now()
        try:
            key_plan = self.issuer.maintain()
        except Exception as exc:  # the issuer must not stop the credentials' rotation
            kind = type(exc).__name__
            metrics.ISSUER_MAINTENANCE_FAILURES.labels(kind).inc()
            if isinstance(exc, SidecarError):
                log.error("issuer key maintenance failed: %s", exc)
            else:  # only our own errors' text is known to be free of secrets
                log.error("issuer key maintenance failed unexpectedly: %s", kind)
            self.issuer_wake = now + RETRY_AFTER_FAILURE
            return False
        self.issuer_maintenances += 1
        self.issuer_plan = key_plan
        metrics.ISSUER_PUBLISHED_KEYS.set(len(key_plan.published))
        metrics.ISSUER_SIGNING_VERSION.set(key_plan.signer or 0)
        wake = self.clock.now() + self.policy.tick
        if key_plan.next_change is not None:
            wake = min(wake, key_plan.next_change)
        self.issuer_wake = wake
        return True

    def _issuer_rotation_remaining(self) -> float:
        key_plan = self.issuer_plan
        if key_plan is None or key_plan.rotation_due is None:
            return math.nan
        return (key_plan.rotation_due - self.clock.now()).total_seconds()

    def serve_issuer(self, addr: str | None = None) -> BoundedHTTPServer | None:
        """Serve the issuer's discovery document and JWKS over HTTPS; None if not wanted.

        ``addr`` (``host:port``) overrides ``issuer.listen``. ConfigError when
        the TLS files are missing or unusable (see :meth:`IssuerConfig.listener`).
        """
        settings = self.config.issuer
        if addr is not None:
            settings = dataclasses.replace(settings, listen=addr)
        where = settings.listener()
        if self.issuer is None or where is None:
            return None
        context = issuer_listener.tls_context(settings.tls_cert, settings.tls_key)
        self._issuer_http = issuer_listener.serve(self.issuer, where[0], where[1], context)
        return self._issuer_http

    @property
    def next_wake(self) -> datetime | None:
        """The earliest moment some integration's plan could change."""
        with self._wake_lock:
            return min(self.wakes.values(), default=None)

    def due(self, now: datetime) -> list[str]:
        with self._wake_lock:
            return sorted(name for name, at in self.wakes.items() if at <= now)

    def tick(self, only: list[str] | None = None) -> bool:
        """A full pass (certificate, then every integration) or, with ``only``, a
        visit to those integrations alone; True if all succeeded."""
        store = self.runtime.store
        try:
            names = store.integration_names() if only is None else only
            if only is None and not self.certificate_tick():
                return False
        except SidecarError as exc:
            self._record_failure("management-certificate", exc)
            return False
        except Exception as exc:  # a bug must not stop rotation for everyone
            log.exception("unexpected error in the certificate tick")
            self._record_failure("management-certificate", exc)
            return False
        with ThreadPoolExecutor(max_workers=self.config.daemon.concurrency) as pool:
            results = list(pool.map(self._rotate_one, names))
        ok = all(results)
        if ok and only is None:
            self.health.last_tick = self.clock.now()
            self.health.last_error = ""
            metrics.LAST_TICK.set(self.clock.now().timestamp())
        return ok

    def _rotate_one(self, name: str) -> bool:
        store = self.runtime.store
        try:
            found = store.find_integration(name)
            if found is None:
                # Deleted since it was last visited: forget it, or its wake-up would
                # fail (nothing stored) and mark the daemon failing until a restart.
                log.info("integration %s was deleted; no longer rotating it", name)
                self._set_wake(name, None)
                self.health.failing.discard(name)
                return True
            record, _ = found
            if record.status != IntegrationStatus.READY:
                log.warning(
                    "integration %s is incomplete (%s): finish it with `azsidecar integration"
                    " create` again or remove it with `integration delete`",
                    name,
                    record.status,
                )
                self._set_wake(name, None)
                return True
            trust = federated_trust(self.config)
            report = rotate(record, self.graph(), store, self.clock, self.policy, trust)
            if self.policy.probes and report.created:
                self.probes().adopt(name, report.stored_after)
            self._observe(report)
            self.health.failing.discard(name)
            return True
        except SidecarError as exc:
            self._record_failure(name, exc)
            self._set_wake(name, self.clock.now() + RETRY_AFTER_FAILURE)
            return False
        except Exception as exc:  # one integration's bug must not stop the others
            log.exception("unexpected error rotating %s", name)
            self._record_failure(name, exc)
            self._set_wake(name, self.clock.now() + RETRY_AFTER_FAILURE)
            return False

    def _set_wake(self, name: str, at: datetime | None) -> None:
        with self._wake_lock:
            if at is None:
                self.wakes.pop(name, None)
            else:
                self.wakes[name] = at

    def _observe(self, report: TickReport) -> None:
        with self._wake_lock:
            self.reports.append(report)
            del self.reports[:-1000]
        self._set_wake(report.integration, report.next_at)
        for _ in report.created:
            metrics.ROTATIONS.labels(report.integration).inc()
        for _, reason in report.removed:
            metrics.REMOVALS.labels(_removal_kind(reason)).inc()
        probes = self.runtime.store.probes(report.integration) if self.policy.probes else {}
        choice = choose_for_kind(
            report.stored_after, report.kind, self.clock.now(), self.policy, probes
        )
        remaining = (
            (choice.usable_until - self.clock.now()).total_seconds()
            if isinstance(choice, Ready)
            else -1.0
        )
        metrics.READY_REMAINING.labels(report.integration).set(remaining)

    def _record_failure(self, name: str, exc: Exception) -> None:
        kind = type(exc).__name__
        metrics.ROTATION_FAILURES.labels(name, kind).inc()
        if isinstance(exc, VaultError):
            metrics.VAULT_ERRORS.inc()
        # Only our own errors' text is known to be free of secrets.
        self.health.last_error = f"{kind}: {exc}" if isinstance(exc, SidecarError) else kind
        self.health.failing.add(name)
        if isinstance(exc, SidecarError):
            log.error("tick failed for %s: %s", name, exc)

    # -- the loop ----------------------------------------------------------------------

    def _real_seconds(self, emulated: float) -> float:
        factor = float(getattr(self.clock, "factor", 1.0))
        return max(0.0, emulated / factor)

    def run(self, stop: threading.Event, ticks: int | None = None) -> None:
        """Loop until ``stop`` is set (or ``ticks`` ticks have run, for tests)."""
        next_tick = self.clock.now()
        done = 0
        renew_every = self.policy.lease_ttl / 3
        try:
            while not stop.is_set():
                try:
                    leader = self.lease.acquire()
                    self.health.last_error = (
                        "" if self.health.last_error.startswith("Vault") else self.health.last_error
                    )
                except VaultError as exc:
                    metrics.VAULT_ERRORS.inc()
                    self.health.last_error = f"Vault unavailable: {exc}"
                    log.error("cannot renew the leader lease: %s", exc)
                    leader = False
                    if isinstance(exc, VaultForbidden) and self.vault_login is not None:
                        self.vault_login.recover()  # a revoked token: log in again now
                self.health.leader = leader
                metrics.IS_LEADER.set(1 if leader else 0)
                now = self.clock.now()
                if not leader:
                    self.issuer_wake = None  # maintain at once on becoming leader
                elif self.issuer is not None and (
                    self.issuer_wake is None or now >= self.issuer_wake or now >= next_tick
                ):
                    self.issuer_tick()
                if leader and now >= next_tick:
                    ok = self.tick()
                    done += 1
                    wait = self.policy.tick if ok else min(self.policy.tick, RETRY_AFTER_FAILURE)
                    next_tick = self.clock.now() + wait
                    if ticks is not None and done >= ticks:
                        return
                elif leader and (due := self.due(now)):
                    self.tick(only=due)
                probe_wake = self.probe() if leader else None
                wake = self.next_wake
                for other in (probe_wake, self.issuer_wake if leader else None):
                    if other is not None:
                        wake = other if wake is None else min(wake, other)
                earliest = next_tick if wake is None else min(next_tick, wake)
                until_tick = max(timedelta(0), earliest - self.clock.now())
                pause = min(renew_every, until_tick) if leader else renew_every
                stop.wait(max(0.001, self._real_seconds(pause.total_seconds())))
        finally:
            try:
                self.lease.release()
            except VaultError as exc:
                log.warning("could not release the lease: %s", exc)
            metrics.IS_LEADER.set(0)

    # -- metrics and health ------------------------------------------------------------

    def serve_http(self, addr: str) -> BoundedHTTPServer:
        """``/metrics`` (Prometheus) and ``/healthz`` on ``host:port``.

        Unauthenticated, so bounded (see :mod:`sidecar.http_listener`), and
        ``/healthz`` names only the kind of the last error: its text (Graph and
        Vault paths, tenant ids) goes to the log, not to whoever asks.
        """
        host, _, port = addr.rpartition(":")
        prometheus = make_wsgi_app(metrics.REGISTRY)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            request = Request(environ)
            if request.path == "/healthz":
                status, body = healthz(
                    self.health, self.clock.now(), self.policy.tick, self._token_health()
                )
                response = Response(json.dumps(body), status=status, mimetype="application/json")
                return response(environ, start_response)
            result: Iterable[bytes] = prometheus(environ, start_response)
            return result

        self._http = BoundedHTTPServer(host or "127.0.0.1", int(port), app).start()
        return self._http

    def _token_health(self) -> dict[str, Any] | None:
        return token_health(self.vault_login)

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http = None
        if self._issuer_http is not None:
            self._issuer_http.shutdown()
            self._issuer_http = None


def watch_vault_login(login: VaultLogin) -> None:
    """Export the Vault token's remaining time and problems as gauges, read at scrape time."""

    def remaining() -> float:
        status = login.status()
        seconds = status.remaining(status.checked_at)
        return math.inf if seconds is None else seconds

    metrics.VAULT_TOKEN_REMAINING.set_function(remaining)
    metrics.VAULT_TOKEN_PROBLEM.set_function(lambda: 1.0 if login.status().problem else 0.0)


def _removal_kind(reason: str) -> str:
    """A bounded label for a removal (the reason text names versions and times)."""
    for kind in ("expired", "orphan", "retired"):
        if kind in reason:
            return kind
    return "other"
