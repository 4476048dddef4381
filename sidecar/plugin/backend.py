"""The ``azure`` secrets engine: its paths, its configuration and its Vault client.

The plugin reads the product's KV data from a Vault/OpenBao named in
``config`` (often the very server the plugin runs in) with its own token or
AppRole; the hvac client is built on first use and rebuilt when the
configuration changes. hvac is synchronous, so KV calls run in a thread.

The configuration is cached, and so is the login made from it. Every change
(``save_config``, ``delete_config``, OpenBao's invalidation of ``config`` on a
performance standby or replica, ``close``) bumps a generation counter; a load
or a login that awaited storage or Vault while the generation moved is not
kept, so the plugin never goes on with an older configuration than the stored
one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from sidecar.clock import AcceleratedClock, Clock, SystemClock
from sidecar.config import VaultConfig
from sidecar.errors import InputError, VaultError, VaultForbidden
from sidecar.issuer.handout import KeyCache, TransitSigner
from sidecar.plugin.framework import Backend
from sidecar.plugin.path_config import STORAGE_KEY, PluginConfig, path_config
from sidecar.plugin.path_creds import path_creds
from sidecar.plugin.path_health import path_health
from sidecar.plugin.path_integrations import path_integrations
from sidecar.plugin.path_stacks import path_stacks
from sidecar.plugin.storage import Storage
from sidecar.resolve import FederatedSigner, ReadCache
from sidecar.timing import TimingPolicy, reader_policy
from sidecar.vault import VaultKV, token_lookup_accessor
from sidecar.vault_login import LoginSpec, VaultLogin
from sidecar.vault_login import login_spec as vault_login_spec

T = TypeVar("T")
log = logging.getLogger(__name__)
#: Callers' login metadata kept by token accessor (oldest dropped first).
REMEMBERED_LOGINS = 4096
#: Reads of the configuration (or logins made from it) one call tries while it keeps changing.
CONFIG_ATTEMPTS = 5

HELP = """
The azure secrets engine hands CI/CD runs Azure AD client secrets that have
had time to replicate. The azsidecar daemon rotates the secrets into Vault KV;
this engine picks the ready one for a stack and phase: read creds/<stack>/<phase>.
"""


def login_spec(config: PluginConfig, ca_path: str | None) -> LoginSpec:
    """The plugin's login from ``<mount>/config``; errors name its fields.

    Resolved as every Vault client's login is (:func:`sidecar.vault_login.login_spec`),
    from the ``[vault]`` settings the plugin's configuration amounts to.
    """
    method = config.auth_method
    vault = VaultConfig(
        addr=config.vault_addr,
        auth="token" if method == "token" else "jwt" if method == "jwt" else "approle",
        token=config.token or None,
        token_file=config.token_file or None,
        role_id=config.approle_role_id or None,
        secret_id=config.approle_secret_id or None,
        secret_id_file=config.approle_secret_id_file or None,
        jwt_mount=config.jwt_mount or "jwt",
        jwt_role=config.jwt_role or None,
        jwt_file=config.jwt_file or None,
        ca_cert=ca_path,
    )
    return vault_login_spec(
        vault,
        keys={
            "token_file": "<mount>/config token_file",
            "role_id": "<mount>/config approle_role_id",
            "secret_id": "<mount>/config approle_secret_id",
            "secret_id_file": "<mount>/config approle_secret_id_file",
            "jwt_role": "<mount>/config jwt_role",
            "jwt_file": "<mount>/config jwt_file",
        },
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def environment_clock(env: Mapping[str, str] | None = None) -> Callable[[], datetime]:
    """The ``now`` of :func:`environment_clock_object`."""
    clock = environment_clock_object(env)
    return _utcnow if isinstance(clock, SystemClock) else clock.now


class _FunctionClock:
    """A :class:`~sidecar.clock.Clock` around a ``now`` function (a test's clock)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def environment_clock_object(env: Mapping[str, str] | None = None) -> Clock:
    """Real time, or the emulated time of the demo and tests.

    The daemon's ``[clock]`` settings as ``AZSIDECAR_CLOCK_FACTOR``, ``_ORIGIN``
    (RFC 3339) and ``_ORIGIN_REAL`` (epoch seconds), given to the plugin with
    ``bao plugin register -env=...``, so it judges readiness on the same clock
    as the daemon. Production sets none of them.
    """
    env = os.environ if env is None else env
    origin = env.get("AZSIDECAR_CLOCK_ORIGIN")
    if not origin:
        return SystemClock()
    real = env.get("AZSIDECAR_CLOCK_ORIGIN_REAL")
    return AcceleratedClock(
        datetime.fromisoformat(origin),
        float(env.get("AZSIDECAR_CLOCK_FACTOR") or 1.0),
        float(real) if real else None,
    )


class AzureBackend:
    """State of one mount: storage, cached configuration and Vault client."""

    def __init__(self, storage: Storage, clock: Callable[[], datetime] | None = None) -> None:
        self.storage = storage
        # The issuer maps Transit's stamps through an accelerated clock, so it needs the object.
        self.clock_object: Clock = (
            environment_clock_object() if clock is None else _FunctionClock(clock)
        )
        self.clock = clock or self.clock_object.now
        self._config: PluginConfig | None = None
        self._config_loaded = False
        # Bumped by every change of the stored configuration (see the module docstring).
        self._generation = 0
        self._config_lock = asyncio.Lock()  # one storage read at a time; others wait for it
        self._closed = False
        self._kv: VaultKV | None = None
        self.login: VaultLogin | None = None  # the plugin's own Vault login, kept alive
        self.read_cache = ReadCache()
        self.issuer_keys = KeyCache()
        self.logins: OrderedDict[str, Mapping[str, str]] = OrderedDict()
        self._lock = asyncio.Lock()
        # Made only when a CA bundle must be written (most set-ups have none), so
        # plugin processes OpenBao stops without a Cleanup call leave nothing in /tmp.
        self._workdir: str | None = None
        self.framework = Backend(
            [
                *path_config(self),
                *path_creds(self),
                *path_stacks(self),
                *path_integrations(self),
                *path_health(self),
            ],
            HELP,
        )

    async def load_config(self) -> PluginConfig | None:
        """The stored configuration, read once and cached until it changes."""
        return (await self._load_config())[1]

    async def _load_config(self) -> tuple[int, PluginConfig | None]:
        """The configuration and the generation it is current for.

        Concurrent loads share one storage read: the later ones wait for it and
        find it cached. A read that a change overtook (the generation moved
        while it awaited storage) is not cached but read again, so the caller
        gets the configuration as stored after the change.
        """
        async with self._config_lock:
            for _ in range(CONFIG_ATTEMPTS):
                if self._config_loaded:
                    return self._generation, self._config
                generation = self._generation
                blob = await self.storage.get(STORAGE_KEY)
                config = None if blob is None else PluginConfig.from_json(blob)
                if generation == self._generation:
                    self._config, self._config_loaded = config, True
                    return generation, config
            # Still changing: current when read, and the caller's own, but never cached.
            return generation, config

    async def save_config(self, config: PluginConfig) -> None:
        await self.storage.put(STORAGE_KEY, config.to_json(), seal_wrap=True)
        self.invalidate()

    async def delete_config(self) -> None:
        await self.storage.delete(STORAGE_KEY)
        self.invalidate()

    def invalidate(self, key: str = STORAGE_KEY) -> None:
        """Forget cached state derived from ``key`` (also called by OpenBao).

        OpenBao calls it (``InvalidateKey``) when a key changed under this node,
        as on a read-enabled standby after a write on the active node; it only
        tells which key to forget, never the new value, so the next load reads
        storage again (https://openbao.org/community/rfcs/invalidation/).
        """
        if key == STORAGE_KEY:
            self._generation += 1  # loads and logins under way now are not kept
            self._config, self._config_loaded, self._kv = None, False, None
            self.read_cache = ReadCache()
            self.issuer_keys = KeyCache()
            self._drop_login()

    def _drop_login(self) -> None:
        login, self.login = self.login, None
        if login is not None:
            login.stop()

    async def timing_policy(self) -> TimingPolicy:
        config = await self.load_config()
        if config is None:
            return reader_policy()
        policy = reader_policy(config.propagation_delay, config.ready_safety_margin)
        if config.probe_window is not None:
            window = config.probe_window
            policy = replace(
                policy, probe_window=window, probe_interval=min(policy.probe_interval, window)
            )
        return policy

    async def federated_signer(self) -> FederatedSigner:
        config = await self.load_config() or PluginConfig()
        return TransitSigner(
            mount=config.issuer_transit_mount,
            key=config.issuer_key,
            policy=config.issuer_policy(),
            clock=self.clock_object,
            keys=self.issuer_keys,
        )

    async def with_kv(self, call: Callable[[VaultKV], T]) -> T:
        """Run ``call`` with the KV adapter in a thread; log in again once if denied."""
        kv = await self._kv_client()
        try:
            return await asyncio.to_thread(call, kv)
        except VaultForbidden:
            # The token died anyway (revoked, or the server paused past its TTL):
            # log in again at once rather than wait for the keeper's next step.
            config = await self.load_config()
            if config is None or config.auth_method == "token":
                raise
            if self._kv is kv:  # not a login another call made since (the config changed)
                self._kv = None
                self._drop_login()
            return await asyncio.to_thread(call, await self._kv_client())

    async def login_metadata(self, accessor: str) -> Mapping[str, str]:
        """The caller's own login metadata, by its token accessor (fixed at login, so kept).

        Looked up with the plugin's token (``auth/token/lookup-accessor``) on the
        Vault in ``config``, which must be the one the plugin is mounted in.
        """
        if not accessor:
            raise InputError(
                "cannot check this token's login: it has no accessor (batch token);"
                " log in with a service token"
            )
        found = self.logins.get(accessor)
        if found is not None:
            self.logins.move_to_end(accessor)
            return found
        try:
            login = await self.with_kv(lambda kv: token_lookup_accessor(kv.client, accessor))
        except VaultError as exc:
            log.error("cannot look up a caller's token by accessor: %s", exc)
            raise InputError(
                "cannot check this token's login: the plugin's token needs update on"
                " auth/token/lookup-accessor of the Vault the plugin is mounted in"
            ) from None
        self.logins[accessor] = login.metadata
        while len(self.logins) > REMEMBERED_LOGINS:
            self.logins.popitem(last=False)
        return login.metadata

    async def _kv_client(self) -> VaultKV:
        """The KV adapter of the current configuration, logging in first if need be.

        A login made from a configuration that changed while it logged in is
        dropped (its keeper never started) and made again from the new one.
        """
        async with self._lock:
            for _ in range(CONFIG_ATTEMPTS):
                if self._closed:
                    raise VaultError("the engine is shutting down; retry")
                if self._kv is not None:
                    return self._kv
                generation, config = await self._load_config()
                if config is None:
                    raise InputError("the engine is not configured: write <mount>/config first")
                kv, login = await asyncio.to_thread(self._connect, config)
                if generation == self._generation:
                    self._drop_login()
                    self._kv, self.login = kv, login.start()
                    return kv
                log.info("the engine's configuration changed while the plugin logged in")
            raise VaultError(
                "the engine's configuration kept changing while the plugin logged in; retry"
            )

    def _connect(self, config: PluginConfig) -> tuple[VaultKV, VaultLogin]:
        """Log in as ``config`` says (in a thread); the caller keeps or drops the login."""
        ca_path = None
        if config.ca_cert:
            if self._workdir is None:
                self._workdir = tempfile.mkdtemp(prefix="azsidecar-plugin-")
            ca_path = os.path.join(self._workdir, "ca.pem")
            with open(ca_path, "w", encoding="ascii") as handle:
                handle.write(config.ca_cert)
        login = VaultLogin(login_spec(config, ca_path), name="plugin")
        login.login()
        return VaultKV(login.client, mount=config.kv_mount, prefix=config.prefix), login

    def close(self) -> None:
        self._closed = True
        self._generation += 1  # a login under way is not kept after Cleanup
        self._kv = None
        self._drop_login()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
