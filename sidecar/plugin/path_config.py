"""``config``: where the product's KV data lives and how the plugin reads it.

Kept in the mount's own storage (barrier-encrypted, seal-wrapped where the
seal can). Secret fields (``token``, ``approle_secret_id``) are write-only: a
read reports only whether they are set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sidecar.durations import format_duration, parse_duration
from sidecar.errors import InputError
from sidecar.plugin.framework import (
    Field,
    FieldData,
    FieldType,
    Op,
    Path,
    Request,
    Response,
)

if TYPE_CHECKING:
    from sidecar.plugin.backend import AzureBackend

STORAGE_KEY = "config"
_SECRET_FIELDS = ("token", "approle_secret_id")
_DURATION_FIELDS = ("propagation_delay", "ready_safety_margin")
#: Where the credentials go: changing either needs the credentials written again.
_DESTINATION_FIELDS = ("vault_addr", "ca_cert")


@dataclass(frozen=True, repr=False)
class PluginConfig:
    vault_addr: str = ""
    kv_mount: str = "secret"
    prefix: str = "azsidecar"
    token: str = ""
    approle_role_id: str = ""
    approle_secret_id: str = ""
    ca_cert: str = ""
    propagation_delay: timedelta | None = None
    ready_safety_margin: timedelta | None = None

    def __repr__(self) -> str:
        return f"PluginConfig(vault_addr={self.vault_addr!r}, kv_mount={self.kv_mount!r})"

    def to_json(self) -> bytes:
        raw: dict[str, Any] = asdict(self)
        for name in _DURATION_FIELDS:
            value = getattr(self, name)
            raw[name] = None if value is None else value.total_seconds()
        return json.dumps(raw).encode()

    @classmethod
    def from_json(cls, blob: bytes) -> PluginConfig:
        raw = json.loads(blob)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for name in _DURATION_FIELDS:
            if values.get(name) is not None:
                values[name] = timedelta(seconds=values[name])
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """What a read shows: everything but the secrets."""
        view: dict[str, Any] = {
            "vault_addr": self.vault_addr,
            "kv_mount": self.kv_mount,
            "prefix": self.prefix,
            "auth_method": self.auth_method,
            "approle_role_id": self.approle_role_id,
            "ca_cert": self.ca_cert,
            "token_set": bool(self.token),
            "approle_secret_id_set": bool(self.approle_secret_id),
        }
        for name in _DURATION_FIELDS:
            value = getattr(self, name)
            view[name] = "" if value is None else format_duration(value)
        return view

    @property
    def auth_method(self) -> str:
        return "token" if self.token else "approle"

    def validate(self) -> None:
        if not self.vault_addr.startswith(("http://", "https://")):
            raise InputError("vault_addr is required: an http:// or https:// address")
        if not self.kv_mount.strip("/") or ".." in self.kv_mount:
            raise InputError("kv_mount must name a KV v2 mount, e.g. 'secret'")
        if bool(self.approle_role_id) != bool(self.approle_secret_id):
            raise InputError("approle_role_id and approle_secret_id must be set together")
        if bool(self.token) == bool(self.approle_role_id):
            raise InputError("set exactly one of: token, or approle_role_id + approle_secret_id")
        if self.ca_cert and "BEGIN CERTIFICATE" not in self.ca_cert:
            raise InputError("ca_cert must be a PEM certificate (bundle)")


FIELDS = {
    "vault_addr": Field(FieldType.STRING, "Address of the Vault/OpenBao holding the KV data."),
    "kv_mount": Field(FieldType.STRING, "KV v2 mount of the product's data.", "secret"),
    "prefix": Field(
        FieldType.STRING, "Path prefix of the product's data in the mount.", "azsidecar"
    ),
    "token": Field(FieldType.STRING, "Token to read the KV data with (write-only)."),
    "approle_role_id": Field(FieldType.STRING, "AppRole role id, instead of a token."),
    "approle_secret_id": Field(FieldType.STRING, "AppRole secret id (write-only)."),
    "ca_cert": Field(FieldType.STRING, "PEM CA bundle to trust for vault_addr (optional)."),
    "propagation_delay": Field(FieldType.DURATION, "Override: age at which a secret is ready."),
    "ready_safety_margin": Field(FieldType.DURATION, "Override: margin before expiry."),
}


def path_config(backend: AzureBackend) -> list[Path]:
    async def read(request: Request, data: FieldData) -> Response | None:
        config = await backend.load_config()
        return None if config is None else Response(data=config.public())

    async def write(request: Request, data: FieldData) -> Response | None:
        config = await backend.load_config() or PluginConfig()
        changes = {name: data.get(name) for name in FIELDS if data.provided(name)}
        for name in _DURATION_FIELDS:
            if name in changes and changes[name] == parse_duration(0):
                changes[name] = None
        moved = [
            name
            for name in _DESTINATION_FIELDS
            if name in changes and changes[name] != getattr(config, name)
        ]
        if (
            moved
            and config.vault_addr
            and not (changes.get("token") or changes.get("approle_secret_id"))
        ):
            # Never send the stored credentials to a destination they were not given for.
            raise InputError(
                f"changing {' and '.join(moved)} requires the credentials again:"
                " write token (or approle_role_id and approle_secret_id) in the same request"
            )
        if changes.get("token"):
            changes.setdefault("approle_role_id", "")
            changes.setdefault("approle_secret_id", "")
        elif changes.get("approle_role_id"):
            changes.setdefault("token", "")
        updated = replace(config, **changes)
        updated.validate()
        await backend.save_config(updated)
        return None

    async def delete(request: Request, data: FieldData) -> Response | None:
        await backend.delete_config()
        return None

    return [
        Path(
            pattern="config",
            fields=FIELDS,
            operations={
                Op.READ: read,
                Op.CREATE: write,
                Op.UPDATE: write,
                Op.DELETE: delete,
            },
            synopsis="Where the product's KV data lives and how the plugin reads it.",
            description="""
Write vault_addr and either a token or an AppRole (approle_role_id +
approle_secret_id) allowed to read <kv_mount>/<prefix>/{stacks,integrations,
credentials}. Writes merge with the stored configuration, except that a write
changing vault_addr or ca_cert must give the token (or AppRole) again, so a
stored credential never goes to a new destination. The token and the
AppRole secret id are never returned. propagation_delay and ready_safety_margin
override the default timing rules (write 0 to clear).
""",
        )
    ]
