"""The only module that talks to Vault / OpenBao.

A narrow, typed adapter over hvac for what the product needs from KV v2, the
token logins and their upkeep (:mod:`sidecar.vault_login` decides when), and
the few system endpoints the resolver and ``azsidecar doctor`` read. Every hvac
or transport failure is translated here, once, into the package's error tree
(:mod:`sidecar.errors`), carrying the Vault path and status but never a payload.

KV paths given to :class:`VaultKV` are relative to the product's prefix, so
``kv.read("integrations/web")`` reads ``<mount>/data/<prefix>/integrations/web``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from sidecar.answers import is_name, name_rule
from sidecar.errors import (
    VaultConflict,
    VaultError,
    VaultForbidden,
    VaultNotFound,
    VaultUnavailable,
)
from sidecar.vault_transport import PathRefusal as PathRefusal  # noqa: PLC0414 - re-exported

T = TypeVar("T")


@dataclass(frozen=True)
class KVVersion:
    """One version of a KV v2 secret."""

    path: str
    version: int
    data: dict[str, Any]
    created_time: datetime | None
    custom_metadata: dict[str, str]


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_time: datetime | None
    deletion_time: datetime | None
    destroyed: bool


@dataclass(frozen=True)
class KVMetadata:
    """Key-level metadata of a KV v2 secret."""

    path: str
    current_version: int
    oldest_version: int
    custom_metadata: dict[str, str]
    versions: dict[int, VersionInfo]

    def live_versions(self) -> list[int]:
        """Versions neither deleted nor destroyed, oldest first."""
        return sorted(
            v.version for v in self.versions.values() if not v.destroyed and v.deletion_time is None
        )


def check_segment(value: str, what: str) -> str:
    """Refuse a path segment that could escape its place (``..``, ``/``, control chars)."""
    if not is_name(value):
        raise VaultError(name_rule(what, value))
    return value


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    # Vault prints RFC 3339 with nanoseconds; Python keeps microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _vault_message(exc: hvac.exceptions.VaultError) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)[:300]
    return str(exc)[:300] or type(exc).__name__


@contextmanager
def translate_errors(path: str) -> Iterator[None]:
    """Translate hvac and transport failures at the Vault boundary."""
    try:
        yield
    except hvac.exceptions.InvalidPath as exc:
        raise VaultNotFound("nothing stored in Vault", path=path, status=404) from exc
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
        raise VaultForbidden(
            "Vault denied the request: check the token and its policy", path=path, status=403
        ) from exc
    except hvac.exceptions.InvalidRequest as exc:
        message = _vault_message(exc)
        if "check-and-set" in message:
            raise VaultConflict(
                "check-and-set lost: another writer changed it first; re-read and retry",
                path=path,
                status=400,
            ) from exc
        raise VaultError(f"Vault rejected the request: {message}", path=path, status=400) from exc
    except (
        hvac.exceptions.VaultDown,
        hvac.exceptions.InternalServerError,
        hvac.exceptions.BadGateway,
        hvac.exceptions.RateLimitExceeded,
    ) as exc:
        raise VaultUnavailable(
            f"Vault is unavailable ({_vault_message(exc)}); retry later", path=path
        ) from exc
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"Vault failed: {_vault_message(exc)}", path=path) from exc
    except requests.RequestException as exc:
        raise VaultUnavailable(
            f"cannot reach Vault ({type(exc).__name__}); check the address and that it is up",
            path=path,
        ) from exc


def connect(
    addr: str,
    *,
    token: str | None = None,
    approle: tuple[str, str] | None = None,
    jwt: tuple[str, str, str] | None = None,
    ca_cert: str | None = None,
    namespace: str | None = None,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> hvac.Client:
    """An authenticated hvac client.

    ``approle`` is ``(role_id, secret_id)``; ``jwt`` is ``(mount, role, jwt)``.
    ``ca_cert`` is the path of a PEM bundle to trust for Vault's TLS.
    """
    verify: bool | str = ca_cert if ca_cert else True
    client = hvac.Client(
        url=addr, verify=verify, timeout=int(timeout), namespace=namespace, session=session
    )
    if token:
        client.token = token
    elif approle is not None:
        with translate_errors("auth/approle/login"):
            client.auth.approle.login(role_id=approle[0], secret_id=approle[1])
    elif jwt is not None:
        mount, role, assertion = jwt
        with translate_errors(f"auth/{mount}/login"):
            client.auth.jwt.jwt_login(role=role, jwt=assertion, path=mount)
    else:
        raise VaultForbidden("no Vault credentials given: set a token, AppRole or JWT")
    return client


def new_session() -> requests.Session:
    """A connection pool for :func:`connect` to reuse across clients (one per thread)."""
    return requests.Session()


def new_client(
    addr: str, *, ca_cert: str | None = None, namespace: str | None = None, timeout: float = 10.0
) -> hvac.Client:
    """An hvac client with no token yet (a login sets it)."""
    verify: bool | str = ca_cert if ca_cert else True
    return hvac.Client(url=addr, verify=verify, timeout=int(timeout), namespace=namespace)


def _get(client: hvac.Client, path: str, **params: Any) -> dict[str, Any]:
    """``GET /v1/<path>``: the answer's body, errors translated."""
    with translate_errors(path):
        body: Any = client.adapter.get(f"/v1/{path}", params=params or None)
    return dict(body) if isinstance(body, dict) else dict(body.json())


def server_health(client: hvac.Client, **params: Any) -> dict[str, Any]:
    """``GET sys/health`` (no token needed); ``params`` choose the status codes."""
    return _get(client, "sys/health", **params)


def token_self(client: hvac.Client) -> dict[str, Any]:
    """``GET auth/token/lookup-self``: the whole answer (policies, ttl, ...)."""
    return _get(client, "auth/token/lookup-self")


def mount_entry(client: hvac.Client, mount: str) -> dict[str, Any]:
    """``GET sys/internal/ui/mounts/<mount>``: the mount as this token may see it."""
    return _get(client, f"sys/internal/ui/mounts/{mount}")


def plugin_catalog(client: hvac.Client) -> dict[str, Any]:
    """``GET sys/plugins/catalog``."""
    return _get(client, "sys/plugins/catalog")


def read_body(client: hvac.Client, path: str) -> dict[str, Any]:
    """``GET /v1/<path>`` of any engine, the whole answer (doctor reads a plugin's ``config``)."""
    return _get(client, path)


def capabilities_self(client: hvac.Client, path: str) -> set[str]:
    """``POST sys/capabilities-self``: what the client's own token may do on ``path``."""
    with translate_errors("sys/capabilities-self"):
        response = client.adapter.post("/v1/sys/capabilities-self", json={"paths": [path]})
    body: Mapping[str, Any] = response if isinstance(response, dict) else response.json()
    data = body.get("data", body)
    caps = data.get(path, data.get("capabilities", []))
    return {str(c) for c in caps}


class VaultKV:
    """KV v2 under ``<mount>/<prefix>``: read, check-and-set write, metadata, destroy, list."""

    def __init__(self, client: hvac.Client, mount: str = "secret", prefix: str = "azsidecar"):
        self.client = client
        self.mount = mount.strip("/")
        self.prefix = prefix.strip("/")
        self._kv = client.secrets.kv.v2

    def full_path(self, path: str) -> str:
        return f"{self.prefix}/{path.strip('/')}" if self.prefix else path.strip("/")

    def _call(self, path: str, fn: Callable[[], T]) -> T:
        with translate_errors(f"{self.mount}/{self.full_path(path)}"):
            return fn()

    def read(self, path: str, version: int | None = None) -> KVVersion:
        """``GET <mount>/data/<path>[?version=N]``; VaultNotFound if absent or destroyed."""
        full = self.full_path(path)
        body = self._call(
            path,
            lambda: self._kv.read_secret_version(
                path=full, version=version, mount_point=self.mount, raise_on_deleted_version=True
            ),
        )
        payload = body.get("data") or {}
        meta = payload.get("metadata") or {}
        data = payload.get("data")
        if data is None:
            raise VaultNotFound("version deleted or destroyed", path=f"{self.mount}/{full}")
        return KVVersion(
            path=path,
            version=int(meta.get("version", version or 0)),
            data=dict(data),
            created_time=_parse_time(meta.get("created_time")),
            custom_metadata=dict(meta.get("custom_metadata") or {}),
        )

    def write(self, path: str, data: Mapping[str, Any], cas: int | None) -> int:
        """``POST <mount>/data/<path>`` with check-and-set; returns the new version.

        ``cas=0`` writes only if the path has never been written; ``cas=N`` only
        if N is the current version; ``None`` writes unconditionally (avoid).
        """
        full = self.full_path(path)
        body = self._call(
            path,
            lambda: self._kv.create_or_update_secret(
                path=full, secret=dict(data), cas=cas, mount_point=self.mount
            ),
        )
        return int(body["data"]["version"])

    def read_metadata(self, path: str) -> KVMetadata:
        """``GET <mount>/metadata/<path>``."""
        full = self.full_path(path)
        body = self._call(
            path, lambda: self._kv.read_secret_metadata(path=full, mount_point=self.mount)
        )
        meta = body.get("data") or {}
        versions = {
            int(k): VersionInfo(
                version=int(k),
                created_time=_parse_time(v.get("created_time")),
                deletion_time=_parse_time(v.get("deletion_time")),
                destroyed=bool(v.get("destroyed")),
            )
            for k, v in (meta.get("versions") or {}).items()
        }
        return KVMetadata(
            path=path,
            current_version=int(meta.get("current_version", 0)),
            oldest_version=int(meta.get("oldest_version", 0)),
            custom_metadata=dict(meta.get("custom_metadata") or {}),
            versions=versions,
        )

    def set_custom_metadata(self, path: str, custom: Mapping[str, str]) -> None:
        """``POST <mount>/metadata/<path>``: replace the key-level custom_metadata."""
        if len(custom) > 64:
            raise VaultError(
                f"custom_metadata holds {len(custom)} pairs; KV v2 allows 64", path=path
            )
        for key, value in custom.items():
            if len(key) > 128 or len(value) > 512:
                raise VaultError(
                    f"custom_metadata entry {key[:40]!r} too long (keys 128, values 512 bytes)",
                    path=path,
                )
        full = self.full_path(path)
        self._call(
            path,
            lambda: self._kv.update_metadata(
                path=full, custom_metadata=dict(custom), mount_point=self.mount
            ),
        )

    def destroy_versions(self, path: str, versions: list[int]) -> None:
        """``PUT <mount>/destroy/<path>``: permanently remove the versions' data."""
        if not versions:
            return
        full = self.full_path(path)
        self._call(
            path,
            lambda: self._kv.destroy_secret_versions(
                path=full, versions=versions, mount_point=self.mount
            ),
        )

    def list(self, path: str = "") -> list[str]:
        """``LIST <mount>/metadata/<path>``; an empty list when nothing is there."""
        full = self.full_path(path)
        try:
            body = self._call(
                path, lambda: self._kv.list_secrets(path=full, mount_point=self.mount)
            )
        except VaultNotFound:
            return []
        return sorted(str(k) for k in (body.get("data") or {}).get("keys", []))

    def delete_all(self, path: str) -> None:
        """``DELETE <mount>/metadata/<path>``: every version and the metadata."""
        full = self.full_path(path)
        self._call(
            path,
            lambda: self._kv.delete_metadata_and_all_versions(path=full, mount_point=self.mount),
        )

    def ensure_mount(self) -> None:
        """Enable the KV v2 mount if it does not exist (operator setups and tests)."""
        with translate_errors(f"sys/mounts/{self.mount}"):
            response = self.client.adapter.get("/v1/sys/mounts")
            mounts: dict[str, Any] = response if isinstance(response, dict) else response.json()
            listed = mounts.get("data", mounts)
            entry = listed.get(f"{self.mount}/")
            if entry is None:
                self.client.sys.enable_secrets_engine(
                    "kv", path=self.mount, options={"version": "2"}
                )
            elif str((entry.get("options") or {}).get("version")) != "2":
                raise VaultError(
                    "mount is not KV version 2; point kv_mount at a KV v2 mount",
                    path=self.mount,
                )


@dataclass(frozen=True)
class TokenLogin:
    """What a token's own login recorded: its metadata (fixed at login) and its expiry."""

    metadata: Mapping[str, str]
    expire_time: datetime | None  # None: the token never expires (root)


def _token_login(response: Any) -> TokenLogin:
    body: Mapping[str, Any] = response if isinstance(response, dict) else response.json()
    data = body.get("data") or {}
    meta = data.get("meta") or {}
    return TokenLogin(
        metadata={str(k): str(v) for k, v in meta.items()},
        expire_time=_parse_time(data.get("expire_time")),
    )


def token_lookup_self(client: hvac.Client) -> TokenLogin:
    """``GET auth/token/lookup-self``: the client's own token (in every default policy)."""
    with translate_errors("auth/token/lookup-self"):
        return _token_login(client.adapter.get("/v1/auth/token/lookup-self"))


def token_lookup_accessor(client: hvac.Client, accessor: str) -> TokenLogin:
    """``POST auth/token/lookup-accessor``: another token's login, by its accessor."""
    with translate_errors("auth/token/lookup-accessor"):
        response = client.adapter.post(
            "/v1/auth/token/lookup-accessor", json={"accessor": accessor}
        )
    return _token_login(response)


def read_path(client: hvac.Client, path: str) -> dict[str, Any] | PathRefusal | None:
    """``GET <path>``: its ``data``; a :class:`PathRefusal` for a 400; None if nothing serves it.

    Other failures are translated as :func:`translate_errors` does (403 is
    :class:`~sidecar.errors.VaultForbidden`, 5xx :class:`~sidecar.errors.VaultUnavailable`).
    """
    with translate_errors(path):
        try:
            body: Any = client.read(path)
        except hvac.exceptions.InvalidRequest as exc:
            errors = [str(e) for e in (getattr(exc, "errors", None) or [str(exc)])]
            sent: Any = getattr(exc, "json", None)
            data = sent.get("data") if isinstance(sent, dict) else None
            return PathRefusal(errors, data if isinstance(data, dict) else None)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return None
    return dict(body["data"])


class HvacTransport:
    """An hvac client as a :class:`~sidecar.vault_transport.VaultTransport` (the login's upkeep)."""

    def __init__(self, client: hvac.Client) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"HvacTransport(url={self.client.url!r})"

    @property
    def url(self) -> str:
        return str(self.client.url)

    @property
    def token(self) -> str | None:
        token = self.client.token
        return None if token is None else str(token)

    @token.setter
    def token(self, value: str | None) -> None:
        self.client.token = value or ""  # hvac sends no token header for ""

    def get(self, path: str) -> dict[str, Any]:
        return _get(self.client, path)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with translate_errors(path):
            response: Any = self.client.adapter.post(f"/v1/{path}", json=dict(body))
        if isinstance(response, dict):
            return dict(response)
        return dict(response.json()) if response.content else {}

    def read_data(self, path: str) -> dict[str, Any] | PathRefusal | None:
        return read_path(self.client, path)
