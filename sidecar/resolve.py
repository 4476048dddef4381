"""The one answer every reader gives: the ready credential of a stack's phase.

Used by the gRPC resolver, the Vault plugin and the runner helper. It reads
only and never repairs, so a read-only Vault policy suffices. The choice is
:func:`sidecar.ready.choose_for_kind` with the kind the integration record
wants: during a switch of kind the old kind is handed out until the new one
is ready. The chosen version is decoded by its own kind (a client secret or
a certificate bundle), and refused if it is not the kind its index entry says.

Reads, in the common case, cost no Vault round trip at all, and never more
than one. Reading the latest version of ``credentials/<name>`` returns, in
the same response, the key-level index of every live version; that index is
kept for ``index_ttl`` seconds of the product's clock (default 2) by :class:`ReadCache`, and the
choice is made on it with the current time on every call. Version data never
changes while its key lives, so chosen versions are kept in a small LRU,
used only while the index names the same key id and intent (an integration
deleted and made again under its name numbers its versions from 1 again). Stack and
integration records are kept for ``records_ttl`` seconds (default 5): a
re-attached stack takes that long to show.

Why a cached index can never hand out a removed or unready secret:

* Not ready: readiness is a function of a version's creation time, its probe
  record (:mod:`sidecar.probes.rule`) and the current time. An index at most
  ``index_ttl`` old can only lack versions stored since, and those are not
  ready for ``propagation_delay``; a probe record only ever moves from
  unverified to verified, so an older copy of it is only more cautious.
* Removed: the daemon removes one of its secrets from Azure only once it has
  expired (:mod:`sidecar.rotation.planner`), and a secret stops being handed
  out ``ready_safety_margin`` (30 minutes) before it expires. The index cache
  is used only while ``ready_safety_margin`` exceeds ``index_ttl``, so a
  secret handed out from a cached index has always outlived the cache.

What a cached index may lag by ``index_ttl``: a version an operator destroys
by hand, or one the daemon destroys after it vanished from Azure outside us
(which it only concludes after ``missing_grace``, an hour).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sidecar.answers import ClientCertificate, ResolvedCredential
from sidecar.errors import InvalidRecord, NotFoundError, NotReadyError, VaultNotFound
from sidecar.model import (
    CertificateVersion,
    FederatedVersion,
    IntegrationRecord,
    Phase,
    StackRecord,
    StoredCredential,
    credential_from_data,
    parse_index,
)
from sidecar.probes import rule as probe_rule
from sidecar.ready import NotReady, Ready, choose_for_kind
from sidecar.sensitive import Sensitive
from sidecar.store import RecordFolder, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import KVVersion, VaultKV, check_segment

_ATTEMPTS = 3


class ReadCache:
    """Per-process caches for readers: short-lived records and indexes, immutable versions.

    ``records_ttl=0`` and ``index_ttl=0`` disable those caches. Versions are kept in a small
    LRU (two or three live versions per integration are all that is ever read).
    """

    def __init__(
        self, records_ttl: float = 5.0, index_ttl: float = 2.0, max_versions: int = 4096
    ) -> None:
        self.records_ttl = records_ttl
        self.index_ttl = index_ttl
        self.max_versions = max_versions
        self._lock = threading.Lock()
        self._records: dict[tuple[RecordFolder, str], tuple[float, dict[str, Any]]] = {}
        self._latest: dict[str, tuple[datetime, KVVersion | None]] = {}
        self._versions: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    def record(self, store: Store | None, folder: RecordFolder, name: str) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            hit = self._records.get((folder, name))
            if hit is not None and now - hit[0] < self.records_ttl:
                return hit[1]
        if store is None:
            raise _CacheMiss
        data = store.record_data(folder, name)
        with self._lock:
            self._records[(folder, name)] = (now, data)
        return data

    def latest(
        self, store: Store | None, name: str, policy: TimingPolicy, now: datetime, fresh: bool
    ) -> KVVersion | None:
        """The newest version and its index, from the cache while that is safe (see above).

        Ages are measured on the product's clock (``now``), the one readiness is
        judged by, so an accelerated test clock shortens the cache alike.
        """
        ttl = timedelta(seconds=self.index_ttl)
        usable = not fresh and timedelta(0) < ttl < policy.ready_safety_margin
        if usable:
            with self._lock:
                hit = self._latest.get(name)
            if hit is not None and timedelta(0) <= now - hit[0] < ttl:
                return hit[1]
        if store is None:
            raise _CacheMiss
        latest = store.latest_secret(name)
        if ttl > timedelta(0):
            with self._lock:
                self._latest[name] = (now, latest)
        return latest

    def version(self, name: str, number: int) -> dict[str, Any] | None:
        with self._lock:
            data = self._versions.get((name, number))
            if data is not None:
                self._versions.move_to_end((name, number))
            return data

    def remember(self, name: str, number: int, data: dict[str, Any]) -> None:
        with self._lock:
            self._versions[(name, number)] = data
            self._versions.move_to_end((name, number))
            while len(self._versions) > self.max_versions:
                self._versions.popitem(last=False)


class _CacheMiss(Exception):
    """Answering from the cache alone would need a Vault read."""


def _no_cache() -> ReadCache:
    return ReadCache(records_ttl=0.0, index_ttl=0.0, max_versions=8)


def resolve_credential(
    kv: VaultKV,
    stack: str,
    phase: Phase,
    now: datetime,
    policy: TimingPolicy,
    cache: ReadCache | None = None,
) -> ResolvedCredential:
    """The ready credential, or NotFoundError / NotReadyError saying what is missing."""
    return _resolve(Store(kv), stack, phase, now, policy, cache or _no_cache())


def resolve_from_cache(
    stack: str, phase: Phase, now: datetime, policy: TimingPolicy, cache: ReadCache
) -> ResolvedCredential | None:
    """:func:`resolve_credential` without I/O: the answer if the cache holds all it needs.

    None means a Vault read is needed. Lets an event loop answer warm requests
    at once and send only cold ones to a thread.
    """
    try:
        return _resolve(None, stack, phase, now, policy, cache)
    except _CacheMiss:
        return None


def _resolve(
    store: Store | None,
    stack: str,
    phase: Phase,
    now: datetime,
    policy: TimingPolicy,
    cache: ReadCache,
) -> ResolvedCredential:
    check_segment(stack, "stack name")
    try:
        stack_record = StackRecord.from_data(cache.record(store, "stacks", stack))
    except VaultNotFound as exc:
        raise NotFoundError(
            f"no stack named {stack!r}: attach one with `azsidecar stack attach`"
        ) from exc
    name = stack_record.integration_for(phase)
    if not name:
        raise NotFoundError(f"stack {stack!r} has no integration attached for phase {phase}")
    check_segment(name, "integration name")
    try:
        record = IntegrationRecord.from_data(cache.record(store, "integrations", name))
    except VaultNotFound as exc:
        raise NotFoundError(f"integration {name!r} of stack {stack!r} does not exist") from exc
    for attempt in range(_ATTEMPTS):
        latest = cache.latest(store, name, policy, now, fresh=attempt > 0)
        if latest is None:
            raise NotReadyError(f"integration {name!r} has no credential yet", None)
        index = parse_index(latest.custom_metadata)
        probes = probe_rule.parse(latest.custom_metadata)
        choice = choose_for_kind(index, record.kind, now, policy, probes)
        if isinstance(choice, NotReady):
            raise NotReadyError(
                f"no ready credential for integration {name!r}: {choice.reason}", choice.ready_at
            )
        chosen = choice.credential
        cache.remember(name, latest.version, latest.data)
        data = cache.version(name, chosen.version)
        if data is not None and not _is_version_of(data, chosen):
            data = None  # the integration was deleted and made again: numbers restart
        if data is None:
            if store is None:
                raise _CacheMiss
            try:
                data = store.secret_data(name, chosen.version)
            except VaultNotFound:
                continue  # destroyed since the index was read: read it again
            cache.remember(name, chosen.version, data)
        return _answer(name, data, chosen, choice, stack_record, record)
    raise NotReadyError(f"the credentials of {name!r} changed while reading; retry", now)


def _is_version_of(data: dict[str, Any], entry: StoredCredential) -> bool:
    """Whether cached version data is the version the index names now.

    Version data never changes while its KV key lives, but deleting an
    integration deletes the key, and one made again under the same name numbers
    its versions from 1: a cached ``(name, version)`` may then be the deleted
    application's. The index entry's key id and intent tell them apart.
    """
    return data.get("key_id") == entry.key_id and data.get("intent_id", "") == entry.intent_id


def _answer(
    name: str,
    data: dict[str, Any],
    chosen: StoredCredential,
    choice: Ready,
    stack: StackRecord,
    record: IntegrationRecord,
) -> ResolvedCredential:
    """The chosen version as a run gets it; a version of another kind than indexed is refused."""
    version = credential_from_data(data)
    if version.kind is not chosen.kind:
        raise InvalidRecord(
            f"credentials/{name} version {chosen.version}: field kind is not the"
            f" {chosen.kind} its index entry names; the record was altered:"
            " correct it with the azsidecar CLI"
        )
    certificate = None
    secret = Sensitive("")
    if isinstance(version, CertificateVersion):
        certificate = ClientCertificate(version.pfx, version.pfx_password, version.thumbprint)
    elif isinstance(version, FederatedVersion):
        raise NotFoundError(f"integration {name}: federated credentials are not handed out yet")
    else:
        secret = version.secret
    return ResolvedCredential(
        client_id=version.client_id,
        client_secret=secret,
        tenant_id=version.tenant_id,
        subscription_id=stack.subscription_id or record.subscription_id,
        integration=name,
        key_id=version.key_id,
        created=chosen.created,
        expires=chosen.expires,
        safe_until=choice.usable_until,
        kind=version.kind,
        certificate=certificate,
    )
