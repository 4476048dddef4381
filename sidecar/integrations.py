"""Creating and deleting integrations, so that a failure halfway leaves nothing half-made.

``create`` first writes the record with ``status = "creating"`` and the display
name the application will get, then creates the application, records its ids,
gives it its first secret and marks it ready. A failure that Azure's lag or a
gateway explains (a 404, 429, 5xx, a lost connection, AADSTS700016/700027) is
resumed by ``create`` itself, :data:`RESUME_ATTEMPTS` times, from the record:
the application is found by its display name (the idempotency key of
``POST /applications``), and an application with the same name that the record
does not name, left by a gateway timeout, is deleted. Run again after any other
failure, it carries on the same way; ``delete`` removes whatever exists of it.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from sidecar.answers import check_new_name
from sidecar.clock import Clock
from sidecar.errors import GraphError, InputError
from sidecar.graph import Application, GraphClient
from sidecar.model import ConsentState, CredentialKind, IntegrationRecord, IntegrationStatus
from sidecar.rotation.planner import FederatedTrust
from sidecar.rotation.run import create_certificate, create_federated, create_secret, require_trust
from sidecar.store import Store
from sidecar.timing import TimingPolicy

log = logging.getLogger(__name__)

#: How many times ``create`` carries on by itself after a transient Azure failure.
RESUME_ATTEMPTS = 4
RESUME_PAUSE = 30
_TRANSIENT_STATUSES = frozenset({404, 408, 429, 500, 502, 503, 504})


def _transient(exc: GraphError) -> bool:
    """A failure that waiting explains: replica lag, throttling, a gateway, the network.

    A sign-in refused after the client's own lag window (an ``AADSTS`` code) is
    not resumed: by then the certificate or application is really wrong.
    """
    if exc.status is None:
        return not exc.code.startswith("AADSTS")
    return exc.status in _TRANSIENT_STATUSES


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


#: The naming rule for new integrations (kept here under its old name for callers).
validate_name = check_new_name


def validate_guid(value: str, what: str) -> str:
    if not _GUID.match(value):
        raise InputError(
            f"invalid {what} {value[:64]!r}: expected a GUID like"
            " 00000000-0000-0000-0000-000000000000"
        )
    return value.lower()


def validate_kind(value: CredentialKind | str) -> CredentialKind:
    """A credential kind from operator input, or an InputError naming the allowed ones."""
    try:
        return CredentialKind(value)
    except ValueError:
        allowed = ", ".join(k.value for k in CredentialKind)
        raise InputError(
            f"unknown credential kind {str(value)[:40]!r}; allowed: {allowed}"
        ) from None


def consent_url(login_url: str, record: IntegrationRecord, redirect_uri: str) -> str:
    """The admin-consent link a tenant administrator opens to install the application."""
    query = urlencode(
        {"client_id": record.client_id, "state": record.name, "redirect_uri": redirect_uri}
    )
    return f"{login_url.rstrip('/')}/{record.tenant_id}/adminconsent?{query}"


@dataclass(frozen=True)
class Removed:
    """What ``delete`` removed, to tell the operator."""

    application: str | None
    secrets: int
    vault_paths: list[str]


class Integrations:
    def __init__(
        self,
        store: Store,
        graph: GraphClient,
        clock: Clock,
        policy: TimingPolicy,
        *,
        app_name_prefix: str = "azsidecar",
        redirect_uri: str = "https://localhost/azsidecar/consent",
        trust: FederatedTrust | None = None,
        signing_from: Callable[[], datetime | None] | None = None,
    ) -> None:
        """``trust`` is the configured issuer's (:func:`sidecar.runtime.federated_trust`):
        without one, federated integrations are refused. ``signing_from`` says when the
        issuer's key can first sign (None: it can now); see :meth:`set_kind`."""
        self.store = store
        self.trust = trust
        self.signing_from = signing_from
        self.graph = graph
        self.clock = clock
        self.policy = policy
        self.app_name_prefix = app_name_prefix
        self.redirect_uri = redirect_uri

    def create(
        self,
        name: str,
        tenant_id: str,
        subscription_id: str | None = None,
        kind: CredentialKind | str = CredentialKind.SECRET,
    ) -> IntegrationRecord:
        """A new application and its first credential of ``kind`` (resumes a half-made one)."""
        validate_name(name)
        kind = validate_kind(kind)
        if kind is CredentialKind.FEDERATED:
            require_trust(name, self.trust)  # before anything is made in Azure
        tenant_id = validate_guid(tenant_id, "tenant id")
        if subscription_id is not None:
            subscription_id = validate_guid(subscription_id, "subscription id")
        for attempt in range(1, RESUME_ATTEMPTS + 1):
            try:
                return self._create_once(name, tenant_id, subscription_id, kind)
            except GraphError as exc:
                if attempt == RESUME_ATTEMPTS or not _transient(exc):
                    raise
                log.warning(
                    "creating integration %s was interrupted by Azure (%s); resuming in %ds",
                    name,
                    exc,
                    RESUME_PAUSE,
                )
                self.clock.sleep(RESUME_PAUSE)
        raise AssertionError("unreachable")

    def _create_once(
        self, name: str, tenant_id: str, subscription_id: str | None, kind: CredentialKind
    ) -> IntegrationRecord:
        found = self.store.find_integration(name)
        if found is None:
            record = IntegrationRecord(
                name=name,
                tenant_id=tenant_id,
                subscription_id=subscription_id,
                app_object_id="",
                client_id="",
                display_name=f"{self.app_name_prefix}-{name}-{secrets.token_hex(4)}",
                consent=ConsentState.PENDING,
                created=self.clock.now(),
                status=IntegrationStatus.CREATING,
                kind=kind,
            )
            version = self.store.save_integration(record, cas=0)
        else:
            record, version = found
            if record.status == IntegrationStatus.READY:
                raise InputError(
                    f"integration {name!r} already exists; pick another name or delete it first"
                )
            if record.tenant_id != tenant_id:
                raise InputError(
                    f"integration {name!r} is half-created for tenant {record.tenant_id};"
                    " run `integration delete` first to start over with another tenant"
                )
            log.info("resuming the creation of integration %s", name)
        if not record.app_object_id:
            app = self._existing_app(record) or self.graph.create_application(
                record.display_name, [self.redirect_uri], multi_tenant=True
            )
            record = replace(record, app_object_id=app.object_id, client_id=app.app_id)
            version = self.store.save_integration(record, cas=version)
            self._remove_duplicates(record)
        # A write command: a first secret a crash left unindexed is indexed, not doubled.
        if not self.store.repair_credentials(name):
            self._first_secret(record)
        record = replace(record, status=IntegrationStatus.READY)
        self.store.save_integration(record, cas=version)
        return record

    def _existing_app(self, record: IntegrationRecord) -> Application | None:
        matches = self.graph.list_applications(record.display_name)
        return matches[0] if matches else None

    def _remove_duplicates(self, record: IntegrationRecord) -> None:
        """Delete applications with this record's display name that it does not name.

        They are left by a ``POST /applications`` that a gateway answered with
        an error after committing; lagging replicas may hide some, which
        ``azsidecar integration reconcile`` finds later.
        """
        try:
            for app in self.graph.list_applications(record.display_name, fresh=True):
                if app.object_id != record.app_object_id:
                    log.warning("deleting duplicate application %s", app.object_id)
                    self.graph.delete_application(app.object_id)
        except GraphError as exc:
            log.info("could not look for duplicates of %s: %s", record.display_name, exc)

    def _first_secret(self, record: IntegrationRecord) -> None:
        # An intent left by an earlier attempt is reconciled by the daemon; the
        # first credential is created at once whatever happened before. A new
        # application has no certificate to prove with, so the first one goes in
        # by PATCH (proof None), as the planner would say.
        self.graph.get_application(record.app_object_id, just_created=True)
        if record.kind is CredentialKind.CERTIFICATE:
            create_certificate(record, self.graph, self.store, self.clock, self.policy, None)
        elif record.kind is CredentialKind.FEDERATED:
            trust = require_trust(record.name, self.trust)
            create_federated(record, self.graph, self.store, self.clock, trust)
        else:
            create_secret(record, self.graph, self.store, self.clock, self.policy)

    def set_kind(self, name: str, kind: CredentialKind | str) -> tuple[IntegrationRecord, bool]:
        """Switch the kind runs get; (the record, whether it changed).

        Only the record changes: the daemon creates the new kind on its next
        tick, readers keep handing out the old kind until the new one is ready
        (:func:`sidecar.ready.choose_for_kind`), and the daemon retires the old
        kind after that (:mod:`sidecar.rotation.planner`).
        """
        validate_name(name)
        wanted = validate_kind(kind)
        if wanted is CredentialKind.FEDERATED:
            require_trust(name, self.trust)
        found = self.store.find_integration(name)
        if found is None:
            raise InputError(f"no integration named {name!r}; see `azsidecar integration list`")
        record, version = found
        if record.status != IntegrationStatus.READY:
            raise InputError(
                f"integration {name!r} is half-created; finish it with `integration create` first"
            )
        if record.kind is wanted:
            return record, False
        if wanted is CredentialKind.FEDERATED and self.signing_from is not None:
            # The federated credential is ready after it replicates, but no run can get a
            # token before the issuer's key has been published for publish_ahead; switching
            # now would retire the working kind while every read is refused.
            first = self.signing_from()
            if first is not None:
                raise InputError(
                    f"the issuer's signing key is not published long enough to sign until"
                    f" {first:%Y-%m-%d %H:%M} UTC; switch {name!r} to federated then"
                    " (azsidecar issuer init makes the key; the daemon publishes it)"
                )
        record = replace(record, kind=wanted)
        self.store.save_integration(record, cas=version)
        return record, True

    def delete(self, name: str) -> Removed:
        validate_name(name)
        found = self.store.find_integration(name)
        if found is None:
            raise InputError(f"no integration named {name!r}; see `azsidecar integration list`")
        record, _ = found
        users = self.store.stacks_using(name)
        if users:
            raise InputError(
                f"integration {name!r} is used by stack(s) {', '.join(sorted(users))};"
                " detach it first with `azsidecar stack detach`"
            )
        object_id = record.app_object_id or (
            app.object_id if (app := self._existing_app(record)) else ""
        )
        stored = self.store.credentials(name)
        removed_app = None
        if object_id and self.graph.delete_application(object_id):
            removed_app = record.display_name
        paths = self.store.integration_paths(name)
        self.store.delete_integration(name)
        return Removed(application=removed_app, secrets=len(stored), vault_paths=paths)
