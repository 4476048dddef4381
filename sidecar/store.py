"""The product's data in Vault KV v2 (see DESIGN.md, "Vault data model").

The one owner of every KV path; no other module names one or calls
:class:`sidecar.vault.VaultKV` to read or write the product's data. Every
path is relative to the configured prefix::

    integrations/<name>      the integration record
    credentials/<name>       one KV version per client secret; key-level
                             custom_metadata indexes the live versions
    stacks/<stack>           read / write attachments
    state/intents/<name>     write-ahead records of rotations in flight
    management/identity      the management application's identity
    management/certificate   one KV version per management certificate
    management/intents       write-ahead records of certificate renewals
    state/leader             the daemon's leader lease

The records and their on-disk codecs are in :mod:`sidecar.model`. Every write
uses check-and-set. Reads never write: a stale credential index is repaired
only by :meth:`Store.repair_credentials`, which the daemon calls in its tick.
Nothing here talks to hvac directly: it goes through :class:`sidecar.vault.VaultKV`.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from sidecar.crashpoints import crash_point
from sidecar.errors import InvalidRecord, VaultConflict, VaultError, VaultNotFound
from sidecar.model import (
    MANAGEMENT_AUTH_MODES,
    CredentialVersion,
    IntegrationRecord,
    Intent,
    IntentKind,
    LeaseRecord,
    ManagementIdentity,
    SecretVersion,
    StackRecord,
    StoredCredential,
    credential_from_data,
    from_epoch,
    index_entry,
    parse_index,
    to_epoch,
)
from sidecar.probes import lag as probe_lag
from sidecar.probes import rule as probe_rule
from sidecar.probes.rule import ProbeRecord
from sidecar.vault import KVVersion, VaultKV, VersionInfo, check_segment

__all__ = [
    "IntegrationRecord",
    "RecordFolder",
    "SecretVersion",
    "StackRecord",
    "Store",
    "from_epoch",
    "to_epoch",
]

log = logging.getLogger(__name__)

#: Reads of one key that may each find it rewritten before a writer gives up (VaultConflict).
_READ_FOR_UPDATE_TRIES = 3

CERTIFICATE_INTENTS = "management/intents"
IDENTITY_PATH = "management/identity"
CERTIFICATE_PATH = "management/certificate"
LEASE_PATH = "state/leader"
LAG_PATH = "state/lag"

#: The folders of named records that readers list and read as they are.
RecordFolder = Literal["integrations", "stacks"]
_NOUN: dict[RecordFolder, str] = {"integrations": "integration name", "stacks": "stack name"}


def _credentials_path(name: str) -> str:
    return f"credentials/{name}"


def _intents_path(name: str) -> str:
    return f"state/intents/{name}"


class Store:
    """Typed access to the product's KV paths."""

    def __init__(self, kv: VaultKV) -> None:
        self.kv = kv

    # -- integrations --------------------------------------------------------------

    def integration(self, name: str) -> tuple[IntegrationRecord, int]:
        check_segment(name, "integration name")
        found = self.kv.read(f"integrations/{name}")
        return IntegrationRecord.from_data(found.data), found.version

    def find_integration(self, name: str) -> tuple[IntegrationRecord, int] | None:
        try:
            return self.integration(name)
        except VaultNotFound:
            return None

    def save_integration(self, record: IntegrationRecord, cas: int) -> int:
        check_segment(record.name, "integration name")
        return self.kv.write(f"integrations/{record.name}", record.to_data(), cas=cas)

    def integration_names(self) -> list[str]:
        return [n for n in self.kv.list("integrations") if not n.endswith("/")]

    @staticmethod
    def integration_paths(name: str) -> list[str]:
        """Every path that holds something of the integration, as removed on delete."""
        return [_credentials_path(name), _intents_path(name), f"integrations/{name}"]

    def delete_integration(self, name: str) -> None:
        check_segment(name, "integration name")
        for path in self.integration_paths(name):
            self.kv.delete_all(path)

    # -- records as readers see them -----------------------------------------------

    def keys(self, folder: RecordFolder) -> list[str]:
        """The names in a record folder, as KV lists them."""
        return self.kv.list(folder)

    def record_data(self, folder: RecordFolder, name: str) -> dict[str, Any]:
        """A stack or integration record as stored, unchecked: readers cache it as is
        and check it (``from_data``) every time they use it."""
        check_segment(name, _NOUN[folder])
        return self.kv.read(f"{folder}/{name}").data

    def latest_secret(self, name: str) -> KVVersion | None:
        """The newest live secret version with the key-level index, in one read.

        If the newest version is deleted or destroyed, the index comes from the
        metadata instead (a second round trip, only in that rare case).
        """
        check_segment(name, "integration name")
        path = _credentials_path(name)
        try:
            return self.kv.read(path)
        except VaultNotFound:
            pass
        try:
            meta = self.kv.read_metadata(path)
        except VaultNotFound:
            return None
        live = meta.live_versions()
        if not live:
            return None
        try:
            data = self.kv.read(path, live[-1]).data
        except VaultNotFound:
            return None
        return KVVersion(
            path=path,
            version=live[-1],
            data=data,
            created_time=None,
            custom_metadata=meta.custom_metadata,
        )

    def secret_data(self, name: str, version: int) -> dict[str, Any]:
        """One secret version as stored, unchecked (see :meth:`record_data`)."""
        check_segment(name, "integration name")
        return self.kv.read(_credentials_path(name), version).data

    # -- credentials ---------------------------------------------------------------

    def credentials(self, name: str, *, repair: bool = False) -> list[StoredCredential]:
        """The live secrets of an integration, from the index. Never writes.

        A version the index does not name (a crash between writing it and
        indexing it) is not listed until :meth:`repair_credentials` indexes it.
        ``repair=True`` is that repair, for callers that say so explicitly.
        """
        if repair:
            return self.repair_credentials(name)
        check_segment(name, "integration name")
        try:
            meta = self.kv.read_metadata(_credentials_path(name))
        except VaultNotFound:
            return []
        live = set(meta.live_versions())
        return [c for c in parse_index(meta.custom_metadata) if c.version in live]

    def repair_credentials(self, name: str) -> list[StoredCredential]:
        """Bring the index in line with the live versions and return them; the daemon's tick.

        A crash between writing a version and updating the index leaves a live
        version the index does not name; it is read once and indexed here, and
        entries of versions no longer live are dropped. Writes only if the
        index was stale.
        """
        check_segment(name, "integration name")
        path = _credentials_path(name)
        try:
            meta = self.kv.read_metadata(path)
        except VaultNotFound:
            return []
        indexed = {c.version: c for c in parse_index(meta.custom_metadata)}
        live = set(meta.live_versions())
        missing = sorted(live - set(indexed))
        stale = set(indexed) - live
        for version in missing:
            try:
                found = credential_from_data(self.kv.read(path, version).data)
            except VaultNotFound:
                continue
            indexed[version] = _indexed(version, found)
        for version in stale:
            indexed.pop(version, None)
        if missing or stale:
            log.info("repaired the credential index of %s", name)
            self._write_index(path, meta.custom_metadata, indexed.values())
        return sorted(indexed.values(), key=lambda c: c.version)

    def _write_index(
        self,
        path: str,
        current: dict[str, str],
        entries: Any,
        probe: ProbeRecord | None = None,
    ) -> None:
        index = dict(index_entry(c) for c in entries)
        # A probe record lives exactly as long as its version's index entry.
        others = {
            k: v
            for k, v in current.items()
            if not _is_index_key(k)
            and not (probe_rule.is_probe_key(k) and f"v{k[1:]}" not in index)
        }
        if probe is not None:
            key, value = probe_rule.encode(probe)
            others[key] = value
        self.kv.set_custom_metadata(path, {**others, **index})

    def probes(self, name: str) -> dict[int, ProbeRecord]:
        """The probe records of an integration's live secrets, by version."""
        check_segment(name, "integration name")
        try:
            meta = self.kv.read_metadata(f"credentials/{name}")
        except VaultNotFound:
            return {}
        return probe_rule.parse(meta.custom_metadata)

    def lag_samples(self) -> tuple[list[probe_lag.LagSample], int]:
        """The probes' lag samples and the KV version they were read at (0: none yet)."""
        found, version = self._read_for_update(LAG_PATH)
        if found is None:
            return [], version
        raw = found.data.get("samples", [])
        samples = [
            probe_lag.LagSample(float(item[0]), float(item[1]))
            for item in raw
            if isinstance(item, list) and len(item) == 2
        ]
        return samples, found.version

    def append_lag_sample(self, new: probe_lag.LagSample) -> None:
        """Add one sample, keeping the newest :data:`sidecar.probes.lag.KEEP` (check-and-set)."""
        samples, version = self.lag_samples()
        kept = [*samples, new][-probe_lag.KEEP :]
        data = {"samples": [[s.first_success, s.last_failure] for s in kept]}
        self.kv.write(LAG_PATH, data, cas=version)

    def save_probe(self, name: str, record: ProbeRecord) -> bool:
        """Store a probe record; False (nothing written) if its version is no longer live."""
        check_segment(name, "integration name")
        path = f"credentials/{name}"
        try:
            meta = self.kv.read_metadata(path)
        except VaultNotFound:
            return False
        entries = parse_index(meta.custom_metadata)
        if record.version not in {c.version for c in entries}:
            return False
        self._write_index(path, meta.custom_metadata, entries, record)
        return True

    def store_secret(self, name: str, secret: CredentialVersion) -> StoredCredential:
        """Write a new version of any kind (check-and-set on the current one), then index it."""
        check_segment(name, "integration name")
        path = _credentials_path(name)
        try:
            meta = self.kv.read_metadata(path)
            current, custom = meta.current_version, meta.custom_metadata
        except VaultNotFound:
            current, custom = 0, {}
        version = self.kv.write(path, secret.to_data(), cas=current)
        crash_point("after_kv_write")
        stored = _indexed(version, secret)
        entries = [c for c in parse_index(custom) if c.version != version] + [stored]
        self._write_index(path, custom, entries)
        return stored

    def secret(self, name: str, version: int) -> SecretVersion:
        found = self.credential_version(name, version)
        if not isinstance(found, SecretVersion):
            raise InvalidRecord(f"credentials/{name} v{version} is not a client secret")
        return found

    def credential_version(self, name: str, version: int) -> CredentialVersion:
        """One stored version, decoded by its kind."""
        return credential_from_data(self.secret_data(name, version))

    def destroy_secret(self, name: str, version: int) -> None:
        """Destroy a version's data and drop it from the index."""
        path = _credentials_path(name)
        self.kv.destroy_versions(path, [version])
        meta = self.kv.read_metadata(path)
        entries = [c for c in parse_index(meta.custom_metadata) if c.version != version]
        self._write_index(path, meta.custom_metadata, entries)

    # -- intents -------------------------------------------------------------------

    def intents(self, name: str) -> tuple[list[Intent], int]:
        """Pending intents of an integration and the KV version for check-and-set."""
        check_segment(name, "integration name")
        return self._intents_at(_intents_path(name))

    def add_intent(self, name: str, intent: Intent) -> None:
        check_segment(name, "integration name")
        self._add_intent_at(_intents_path(name), intent)

    def clear_intent(self, name: str, intent_id: str) -> None:
        check_segment(name, "integration name")
        self._clear_intent_at(_intents_path(name), intent_id)

    def certificate_intents(self) -> list[Intent]:
        """Pending intents of management-certificate renewals."""
        return self._intents_at(CERTIFICATE_INTENTS)[0]

    def add_certificate_intent(self, intent: Intent) -> None:
        self._add_intent_at(CERTIFICATE_INTENTS, intent)

    def clear_certificate_intent(self, intent_id: str) -> None:
        self._clear_intent_at(CERTIFICATE_INTENTS, intent_id)

    def _intents_at(self, path: str) -> tuple[list[Intent], int]:
        found, version = self._read_for_update(path)
        if found is None:
            return [], version
        items = found.data.get("intents", {})
        intents = [
            Intent(
                intent_id=key,
                created=from_epoch(v["created"]),
                kind=IntentKind(v.get("kind", IntentKind.SECRET)),
            )
            for key, v in sorted(items.items())
        ]
        return intents, found.version

    def _write_intents_at(self, path: str, intents: list[Intent], cas: int) -> int:
        data = {
            "intents": {
                i.intent_id: {"created": to_epoch(i.created), "kind": str(i.kind)} for i in intents
            }
        }
        return self.kv.write(path, data, cas=cas)

    def _add_intent_at(self, path: str, intent: Intent) -> None:
        intents, version = self._intents_at(path)
        self._write_intents_at(path, [*intents, intent], cas=version)

    def _clear_intent_at(self, path: str, intent_id: str) -> None:
        intents, version = self._intents_at(path)
        remaining = [i for i in intents if i.intent_id != intent_id]
        if len(remaining) != len(intents):
            self._write_intents_at(path, remaining, cas=version)

    def _current_version(self, path: str) -> int:
        """The key's current version for check-and-set (0 if it never existed)."""
        try:
            return self.kv.read_metadata(path).current_version
        except VaultNotFound:
            return 0

    def _read_for_update(self, path: str) -> tuple[KVVersion | None, int]:
        """The key's current version as read, or ``None``, and the version to check-and-set.

        A 404 on the read alone gives no version, and the metadata read that
        supplies one is a second request: a writer that creates the key in
        between would hand us *its* version with none of its data, and a
        check-and-set on that version overwrites what we never saw (two daemons
        starting at once both took the leader lease this way). So the version
        is taken from the metadata only when it agrees with the 404 (no version
        yet, or the current one deleted or destroyed); a live current version
        means the key was written meanwhile, and it is read again.
        """
        for _ in range(_READ_FOR_UPDATE_TRIES):
            try:
                found = self.kv.read(path)
            except VaultNotFound:
                pass
            else:
                return found, found.version
            try:
                meta = self.kv.read_metadata(path)
            except VaultNotFound:
                return None, 0
            current = meta.versions.get(meta.current_version)
            if meta.current_version == 0 or current is None or not _is_live(current):
                return None, meta.current_version
        raise VaultConflict(
            "kept changing while it was read; re-read and retry",
            path=f"{self.kv.mount}/{self.kv.full_path(path)}",
        )

    # -- stacks --------------------------------------------------------------------

    def stack(self, name: str) -> tuple[StackRecord, int]:
        check_segment(name, "stack name")
        found = self.kv.read(f"stacks/{name}")
        return StackRecord.from_data(found.data), found.version

    def find_stack(self, name: str) -> tuple[StackRecord | None, int]:
        """The stack and its version, or ``None`` and the version to create it with."""
        check_segment(name, "stack name")
        found, version = self._read_for_update(f"stacks/{name}")
        if found is None:
            return None, version
        return StackRecord.from_data(found.data), version

    def save_stack(self, record: StackRecord, cas: int) -> int:
        check_segment(record.name, "stack name")
        return self.kv.write(f"stacks/{record.name}", record.to_data(), cas=cas)

    def delete_stack(self, name: str) -> None:
        """Remove a stack with all its versions (KV v2 has no check-and-set delete)."""
        check_segment(name, "stack name")
        self.kv.delete_all(f"stacks/{name}")

    def stack_names(self) -> list[str]:
        return [n for n in self.kv.list("stacks") if not n.endswith("/")]

    def stacks_using(self, integration: str) -> list[str]:
        users = []
        for name in self.stack_names():
            try:
                stack, _ = self.stack(name)
            except (VaultNotFound, VaultError):
                continue
            if integration in (stack.read, stack.write):
                users.append(name)
        return users

    # -- the management application ----------------------------------------------------

    def management_identity(self) -> ManagementIdentity:
        """Raises VaultNotFound before ``azsidecar management init``."""
        data = self.kv.read(IDENTITY_PATH).data
        auth = str(data.get("auth") or "certificate")
        if auth not in MANAGEMENT_AUTH_MODES:
            raise InvalidRecord(
                f"{IDENTITY_PATH}: field auth is not one of {', '.join(MANAGEMENT_AUTH_MODES)}"
            )
        return ManagementIdentity(
            tenant_id=str(data["tenant_id"]),
            app_object_id=str(data["app_object_id"]),
            client_id=str(data["client_id"]),
            auth=auth,
        )

    def save_management_identity(self, identity: ManagementIdentity) -> None:
        self.kv.write(
            IDENTITY_PATH,
            {
                "tenant_id": identity.tenant_id,
                "app_object_id": identity.app_object_id,
                "client_id": identity.client_id,
                "auth": identity.auth,
            },
            cas=self._current_version(IDENTITY_PATH),
        )

    def certificate_data(self) -> list[tuple[int, dict[str, Any]]]:
        """Every live management-certificate version as stored, oldest first.

        The codec, with the private key, is :class:`sidecar.management.CertificateVersion`.
        """
        try:
            meta = self.kv.read_metadata(CERTIFICATE_PATH)
        except VaultNotFound:
            return []
        found = []
        for version in meta.live_versions():
            try:
                found.append((version, self.kv.read(CERTIFICATE_PATH, version).data))
            except VaultNotFound:
                continue
        return found

    def add_certificate_data(self, data: dict[str, Any]) -> int:
        """Write a certificate as a new version (check-and-set); returns the version."""
        return self.kv.write(CERTIFICATE_PATH, data, cas=self._current_version(CERTIFICATE_PATH))

    def destroy_certificate(self, version: int) -> None:
        self.kv.destroy_versions(CERTIFICATE_PATH, [version])

    # -- the leader lease --------------------------------------------------------------

    def leader_lease(self) -> tuple[LeaseRecord | None, int]:
        """The lease as stored (``None`` if there is none) and its version for check-and-set."""
        found, version = self._read_for_update(LEASE_PATH)
        if found is None:
            return None, version
        record = LeaseRecord(
            holder=str(found.data.get("holder", "")),
            expires=from_epoch(found.data.get("expires", 0)),
        )
        return record, found.version

    def save_leader_lease(self, record: LeaseRecord, cas: int) -> int:
        """Write the lease (check-and-set); its expiry is stored rounded *up* to the second.

        Rounding down would let another replica see the lease expire before
        its holder's own reckoning does.
        """
        data = {"holder": record.holder, "expires": math.ceil(record.expires.timestamp())}
        return self.kv.write(LEASE_PATH, data, cas=cas)


def _indexed(version: int, found: CredentialVersion) -> StoredCredential:
    return StoredCredential(
        version=version,
        key_id=found.key_id,
        intent_id=found.intent_id,
        created=found.created,
        expires=found.expires,
        kind=found.kind,
    )


def _is_live(version: VersionInfo) -> bool:
    """Whether a read of this version finds data (as :meth:`KVMetadata.live_versions` counts)."""
    return not version.destroyed and version.deletion_time is None


def _is_index_key(key: str) -> bool:
    return key.startswith("v") and key[1:].isdigit()
