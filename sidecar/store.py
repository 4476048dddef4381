"""The product's data model in Vault KV v2 (see DESIGN.md, "Vault data model").

Every path is relative to the configured prefix::

    integrations/<name>      the integration record
    credentials/<name>       one KV version per client secret; key-level
                             custom_metadata indexes the live versions
    stacks/<stack>           read / write attachments
    state/intents/<name>     write-ahead records of rotations in flight
    management/...           the management identity, certificates and their intents
    state/leader             the daemon's leader lease

Every write uses check-and-set. Nothing here talks to hvac directly: it goes
through :class:`sidecar.vault.VaultKV`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sidecar import fieldcheck
from sidecar.crashpoints import crash_point
from sidecar.errors import VaultError, VaultNotFound
from sidecar.model import Intent, IntentKind, StoredCredential, index_entry, parse_index
from sidecar.probes import rule as probe_rule
from sidecar.probes.rule import ProbeRecord
from sidecar.sensitive import Sensitive
from sidecar.vault import VaultKV, check_segment

log = logging.getLogger(__name__)

CERTIFICATE_INTENTS = "management/intents"


def to_epoch(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: object) -> datetime:
    return datetime.fromtimestamp(float(str(value)), tz=UTC)


@dataclass(frozen=True)
class IntegrationRecord:
    """``integrations/<name>``: everything but secrets."""

    name: str
    tenant_id: str
    subscription_id: str | None
    app_object_id: str
    client_id: str
    display_name: str
    consent: str  # "pending" | "granted"
    created: datetime
    status: str = "ready"  # "creating" while Graph work is unfinished, then "ready"

    def to_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["created"] = to_epoch(self.created)
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> IntegrationRecord:
        """Every field is checked: records reach runners' shells (see :mod:`sidecar.fieldcheck`)."""
        name = fieldcheck.name(data.get("name"), "integration record", "name")
        where = f"integrations/{name}"
        try:
            created = from_epoch(data["created"])
        except (KeyError, ValueError, OverflowError, OSError):
            raise fieldcheck.InvalidRecord(f"{where}: field created is not a time") from None
        return cls(
            name=name,
            tenant_id=fieldcheck.guid(data.get("tenant_id"), where, "tenant_id"),
            subscription_id=fieldcheck.optional_guid(
                data.get("subscription_id"), where, "subscription_id"
            ),
            app_object_id=fieldcheck.guid_or_empty(
                data.get("app_object_id"), where, "app_object_id"
            ),
            client_id=fieldcheck.guid_or_empty(data.get("client_id"), where, "client_id"),
            display_name=fieldcheck.printable(data.get("display_name"), where, "display_name"),
            consent=fieldcheck.one_of(
                data.get("consent"), ("pending", "granted"), where, "consent"
            ),
            created=created,
            status=fieldcheck.one_of(
                data.get("status", "ready"), ("creating", "ready"), where, "status"
            ),
        )


@dataclass(frozen=True)
class StackRecord:
    """``stacks/<stack>``: which integration serves each phase."""

    name: str
    read: str | None
    write: str | None
    subscription_id: str | None = None

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> StackRecord:
        """Checked on every read: an operator may write the record through the KV API."""
        name = fieldcheck.name(data.get("name"), "stack record", "name")
        where = f"stacks/{name}"
        return cls(
            name=name,
            read=fieldcheck.optional_name(data.get("read"), where, "read"),
            write=fieldcheck.optional_name(data.get("write"), where, "write"),
            subscription_id=fieldcheck.optional_guid(
                data.get("subscription_id"), where, "subscription_id"
            ),
        )


@dataclass(frozen=True)
class SecretVersion:
    """The data of one ``credentials/<name>`` version."""

    client_id: str
    secret: Sensitive
    key_id: str
    tenant_id: str
    intent_id: str
    created: datetime
    expires: datetime

    def to_data(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.secret.reveal(),
            "key_id": self.key_id,
            "tenant_id": self.tenant_id,
            "intent_id": self.intent_id,
            "created": to_epoch(self.created),
            "expires": to_epoch(self.expires),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> SecretVersion:
        where = "a credentials version"
        try:
            created, expires = from_epoch(data["created"]), from_epoch(data["expires"])
        except (KeyError, ValueError, OverflowError, OSError):
            raise fieldcheck.InvalidRecord(f"{where}: created/expires are not times") from None
        intent_id = data.get("intent_id", "")
        return cls(
            client_id=fieldcheck.guid(data.get("client_id"), where, "client_id"),
            secret=Sensitive(
                fieldcheck.secret_text(data.get("client_secret"), where, "client_secret")
            ),
            key_id=fieldcheck.token(data.get("key_id"), where, "key_id"),
            tenant_id=fieldcheck.guid(data.get("tenant_id"), where, "tenant_id"),
            intent_id=fieldcheck.token(intent_id, where, "intent_id") if intent_id else "",
            created=created,
            expires=expires,
        )


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

    def delete_integration(self, name: str) -> None:
        check_segment(name, "integration name")
        for path in (f"credentials/{name}", f"state/intents/{name}", f"integrations/{name}"):
            self.kv.delete_all(path)

    # -- credentials ---------------------------------------------------------------

    def credentials(self, name: str, *, repair: bool = True) -> list[StoredCredential]:
        """The live secrets of an integration, from the index; repairs a stale index.

        A crash between writing a version and updating the index leaves a live
        version the index does not name; it is read once and indexed here.
        """
        check_segment(name, "integration name")
        path = f"credentials/{name}"
        try:
            meta = self.kv.read_metadata(path)
        except VaultNotFound:
            return []
        indexed = {c.version: c for c in parse_index(meta.custom_metadata)}
        live = set(meta.live_versions())
        if not repair:
            return sorted(
                (c for c in indexed.values() if c.version in live), key=lambda c: c.version
            )
        missing = sorted(live - set(indexed))
        stale = set(indexed) - live
        for version in missing:
            try:
                secret = SecretVersion.from_data(self.kv.read(path, version).data)
            except VaultNotFound:
                continue
            indexed[version] = StoredCredential(
                version=version,
                key_id=secret.key_id,
                intent_id=secret.intent_id,
                created=secret.created,
                expires=secret.expires,
            )
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

    def store_secret(self, name: str, secret: SecretVersion) -> StoredCredential:
        """Write a new version (check-and-set on the current one), then index it."""
        check_segment(name, "integration name")
        path = f"credentials/{name}"
        try:
            meta = self.kv.read_metadata(path)
            current, custom = meta.current_version, meta.custom_metadata
        except VaultNotFound:
            current, custom = 0, {}
        version = self.kv.write(path, secret.to_data(), cas=current)
        crash_point("after_kv_write")
        stored = StoredCredential(
            version=version,
            key_id=secret.key_id,
            intent_id=secret.intent_id,
            created=secret.created,
            expires=secret.expires,
        )
        entries = [c for c in parse_index(custom) if c.version != version] + [stored]
        self._write_index(path, custom, entries)
        return stored

    def secret(self, name: str, version: int) -> SecretVersion:
        check_segment(name, "integration name")
        return SecretVersion.from_data(self.kv.read(f"credentials/{name}", version).data)

    def destroy_secret(self, name: str, version: int) -> None:
        """Destroy a version's data and drop it from the index."""
        path = f"credentials/{name}"
        self.kv.destroy_versions(path, [version])
        meta = self.kv.read_metadata(path)
        entries = [c for c in parse_index(meta.custom_metadata) if c.version != version]
        self._write_index(path, meta.custom_metadata, entries)

    # -- intents -------------------------------------------------------------------

    def intents(self, name: str) -> tuple[list[Intent], int]:
        """Pending intents of an integration and the KV version for check-and-set."""
        check_segment(name, "integration name")
        return self._intents_at(f"state/intents/{name}")

    def add_intent(self, name: str, intent: Intent) -> None:
        check_segment(name, "integration name")
        self._add_intent_at(f"state/intents/{name}", intent)

    def clear_intent(self, name: str, intent_id: str) -> None:
        check_segment(name, "integration name")
        self._clear_intent_at(f"state/intents/{name}", intent_id)

    def certificate_intents(self) -> list[Intent]:
        """Pending intents of management-certificate renewals."""
        return self._intents_at(CERTIFICATE_INTENTS)[0]

    def add_certificate_intent(self, intent: Intent) -> None:
        self._add_intent_at(CERTIFICATE_INTENTS, intent)

    def clear_certificate_intent(self, intent_id: str) -> None:
        self._clear_intent_at(CERTIFICATE_INTENTS, intent_id)

    def _intents_at(self, path: str) -> tuple[list[Intent], int]:
        try:
            found = self.kv.read(path)
        except VaultNotFound:
            try:
                return [], self.kv.read_metadata(path).current_version
            except VaultNotFound:
                return [], 0
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

    # -- stacks --------------------------------------------------------------------

    def stack(self, name: str) -> tuple[StackRecord, int]:
        check_segment(name, "stack name")
        found = self.kv.read(f"stacks/{name}")
        return StackRecord.from_data(found.data), found.version

    def save_stack(self, record: StackRecord, cas: int) -> int:
        check_segment(record.name, "stack name")
        return self.kv.write(f"stacks/{record.name}", record.to_data(), cas=cas)

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


def _is_index_key(key: str) -> bool:
    return key.startswith("v") and key[1:].isdigit()


def mark(record: IntegrationRecord, **changes: Any) -> IntegrationRecord:
    """A copy of the record with fields changed."""
    return replace(record, **changes)
