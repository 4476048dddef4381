"""``config``: where the product's KV data lives and how the plugin reads it.

Kept in the mount's own storage (barrier-encrypted, seal-wrapped where the
seal can). Secret fields (``token``, ``approle_secret_id``) are write-only: a
read reports only whether they are set.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta
from typing import Any, Protocol

from sidecar.durations import format_duration, parse_duration
from sidecar.errors import ConfigError, InputError
from sidecar.issuer.handout import reader_issuer_policy
from sidecar.issuer.planner import IssuerPolicy
from sidecar.plugin.framework import (
    Field,
    FieldData,
    FieldType,
    Op,
    Path,
    Request,
    Response,
)

STORAGE_KEY = "config"
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SECRET_FIELDS = ("token", "approle_secret_id")
_DURATION_FIELDS = (
    "propagation_delay",
    "ready_safety_margin",
    "probe_window",
    "issuer_publish_ahead",
    "issuer_token_lifetime",
)
#: Where the credentials go: changing either needs the credentials written again.
_DESTINATION_FIELDS = ("vault_addr", "ca_cert")
_ALTERNATIVES = (("token", "token_file"), ("approle_secret_id", "approle_secret_id_file"))
_METHOD_FIELDS = {
    "token": ("token", "token_file"),
    "approle": ("approle_role_id", "approle_secret_id", "approle_secret_id_file"),
    "jwt": ("jwt_role", "jwt_file"),
}
#: Any of these in a write counts as giving the credentials again.
_CREDENTIAL_FIELDS = (
    "token",
    "token_file",
    "approle_secret_id",
    "approle_secret_id_file",
    "jwt_file",
)


@dataclass(frozen=True, repr=False)
class PluginConfig:
    vault_addr: str = ""
    kv_mount: str = "secret"
    prefix: str = "azsidecar"
    token: str = ""
    approle_role_id: str = ""
    approle_secret_id: str = ""
    # Files on the OpenBao host, re-read when they change (a Vault Agent sink, a
    # projected service-account token): the plugin logs in again with their content.
    token_file: str = ""
    approle_secret_id_file: str = ""
    jwt_mount: str = "jwt"
    jwt_role: str = ""
    jwt_file: str = ""
    ca_cert: str = ""
    propagation_delay: timedelta | None = None
    ready_safety_margin: timedelta | None = None
    #: Verified readiness: must match the daemon's ``timing.probe_window``.
    probe_window: timedelta | None = None
    #: The OIDC issuer's Transit key, which signs federated tokens (the daemon's ``[issuer]``).
    issuer_transit_mount: str = "transit"
    issuer_key: str = "azsidecar-issuer"
    #: Must match the daemon's ``issuer.publish_ahead`` / ``issuer.token_lifetime``.
    issuer_publish_ahead: timedelta | None = None
    issuer_token_lifetime: timedelta | None = None

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
            "token_file": self.token_file,
            "approle_secret_id_file": self.approle_secret_id_file,
            "jwt_mount": self.jwt_mount,
            "jwt_role": self.jwt_role,
            "jwt_file": self.jwt_file,
            "issuer_transit_mount": self.issuer_transit_mount,
            "issuer_key": self.issuer_key,
        }
        for name in _DURATION_FIELDS:
            value = getattr(self, name)
            view[name] = "" if value is None else format_duration(value)
        return view

    @property
    def auth_method(self) -> str:
        if self.token or self.token_file:
            return "token"
        return "jwt" if self.jwt_role else "approle"

    def methods_set(self) -> list[str]:
        found = []
        if self.token or self.token_file:
            found.append("token")
        if self.approle_role_id:
            found.append("approle")
        if self.jwt_role:
            found.append("jwt")
        return found

    def validate(self) -> None:
        if not self.vault_addr.startswith(("http://", "https://")):
            raise InputError("vault_addr is required: an http:// or https:// address")
        if not self.kv_mount.strip("/") or ".." in self.kv_mount:
            raise InputError("kv_mount must name a KV v2 mount, e.g. 'secret'")
        secret_id = self.approle_secret_id or self.approle_secret_id_file
        if bool(self.approle_role_id) != bool(secret_id):
            raise InputError(
                "approle_role_id and approle_secret_id (or approle_secret_id_file) go together"
            )
        if bool(self.jwt_role) != bool(self.jwt_file):
            raise InputError("jwt_role and jwt_file must be set together")
        if len(self.methods_set()) != 1:
            raise InputError(
                "set exactly one of: token (or token_file), approle_role_id +"
                " approle_secret_id (or approle_secret_id_file), or jwt_role + jwt_file"
            )
        if self.ca_cert and "BEGIN CERTIFICATE" not in self.ca_cert:
            raise InputError("ca_cert must be a PEM certificate (bundle)")
        for name in ("issuer_transit_mount", "issuer_key"):
            value = getattr(self, name)
            parts = value.strip("/").split("/") if name == "issuer_transit_mount" else [value]
            if not all(_SEGMENT.fullmatch(p) for p in parts) or ".." in value:
                raise InputError(
                    f"{name} must be letters, digits, '.', '_' or '-'"
                    + (" (segments separated by '/')" if name == "issuer_transit_mount" else "")
                )
        try:
            self.issuer_policy()
        except ConfigError as exc:
            raise InputError(str(exc)) from None

    def issuer_policy(self) -> IssuerPolicy:
        """The issuer planner's rules the plugin signs by: the defaults, with the overrides."""
        return reader_issuer_policy(self.issuer_publish_ahead, self.issuer_token_lifetime)


FIELDS = {
    "vault_addr": Field(FieldType.STRING, "Address of the Vault/OpenBao holding the KV data."),
    "kv_mount": Field(FieldType.STRING, "KV v2 mount of the product's data.", "secret"),
    "prefix": Field(
        FieldType.STRING, "Path prefix of the product's data in the mount.", "azsidecar"
    ),
    "token": Field(FieldType.STRING, "Token to read the KV data with (write-only)."),
    "approle_role_id": Field(FieldType.STRING, "AppRole role id, instead of a token."),
    "approle_secret_id": Field(FieldType.STRING, "AppRole secret id (write-only)."),
    "token_file": Field(FieldType.STRING, "File on the server host holding the token."),
    "approle_secret_id_file": Field(FieldType.STRING, "File holding the AppRole secret id."),
    "jwt_mount": Field(FieldType.STRING, "JWT auth mount for jwt_role.", "jwt"),
    "jwt_role": Field(FieldType.STRING, "JWT auth role to log in with, instead of a token."),
    "jwt_file": Field(FieldType.STRING, "File holding the JWT (re-read at each login)."),
    "ca_cert": Field(FieldType.STRING, "PEM CA bundle to trust for vault_addr (optional)."),
    "propagation_delay": Field(FieldType.DURATION, "Override: age at which a secret is ready."),
    "ready_safety_margin": Field(FieldType.DURATION, "Override: margin before expiry."),
    "probe_window": Field(
        FieldType.DURATION, "Override: the daemon's probe_window (verified readiness)."
    ),
    "issuer_transit_mount": Field(
        FieldType.STRING, "Transit mount of the OIDC issuer's signing key.", "transit"
    ),
    "issuer_key": Field(
        FieldType.STRING, "Transit key that signs federated tokens.", "azsidecar-issuer"
    ),
    "issuer_publish_ahead": Field(
        FieldType.DURATION, "Override: the daemon's issuer.publish_ahead (default 24h)."
    ),
    "issuer_token_lifetime": Field(
        FieldType.DURATION, "Override: the daemon's issuer.token_lifetime (default 10m)."
    ),
}


class ConfigMount(Protocol):
    """What ``config`` needs from the mount: its stored configuration (the backend caches it)."""

    async def load_config(self) -> PluginConfig | None: ...

    async def save_config(self, config: PluginConfig) -> None: ...

    async def delete_config(self) -> None: ...


def path_config(backend: ConfigMount) -> list[Path]:
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
            and not any(changes.get(name) for name in _CREDENTIAL_FIELDS)
        ):
            # Never send the stored credentials to a destination they were not given for.
            raise InputError(
                f"changing {' and '.join(moved)} requires the credentials again:"
                " write token, token_file, approle_secret_id(_file) or jwt_file in the same request"
            )
        for one, other in _ALTERNATIVES:  # a value and a file of the same secret
            if changes.get(one):
                changes.setdefault(other, "")
            if changes.get(other):
                changes.setdefault(one, "")
        for method, names in _METHOD_FIELDS.items():
            if any(changes.get(name) for name in names):  # one login method replaces another
                for other, other_names in _METHOD_FIELDS.items():
                    if other != method:
                        for name in other_names:
                            changes.setdefault(name, "")
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
approle_secret_id or approle_secret_id_file), or a JWT role (jwt_role + jwt_file),
allowed to read <kv_mount>/<prefix>/{stacks,integrations,
credentials}. Writes merge with the stored configuration, except that a write
changing vault_addr or ca_cert must give the credentials again, so a
stored credential never goes to a new destination. The token and the
AppRole secret id are never returned. propagation_delay, ready_safety_margin and
probe_window override the default timing rules (write 0 to clear); probe_window
must match the daemon's. issuer_transit_mount and issuer_key name the OIDC
issuer's Transit key that signs federated tokens (the plugin's token needs read
on <mount>/keys/<key> and update on <mount>/sign/<key>/sha2-256);
issuer_publish_ahead and issuer_token_lifetime must match the daemon's.
""",
        )
    ]
