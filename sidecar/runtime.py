"""Builds the live parts (clock, Vault store, Graph client) from the configuration."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sidecar.clock import AcceleratedClock, Clock, SystemClock
from sidecar.config import Config
from sidecar.errors import ConfigError
from sidecar.graph import GraphClient, GraphObserver
from sidecar.management import CertificateProvider, ManagementIdentity, load_identity
from sidecar.store import Store
from sidecar.vault import VaultKV, connect


def make_clock(config: Config) -> Clock:
    """Real time, or the emulated time of the demo and tests (``[clock]``)."""
    if config.clock.factor == 1.0 and config.clock.origin is None:
        return SystemClock()
    origin = config.clock.origin
    if origin is None:
        raise ConfigError("clock.origin", "required when clock.factor is not 1")
    return AcceleratedClock(origin, config.clock.factor, config.clock.origin_real or time.time())


def make_store(config: Config) -> Store:
    vault = config.vault
    approle = None
    jwt = None
    if vault.auth == "approle":
        secret_id = config.approle_secret_id()
        if not (vault.role_id and secret_id):
            raise ConfigError("vault.secret_id", "AppRole needs vault.role_id and a secret id")
        approle = (vault.role_id, secret_id)
    elif vault.auth == "jwt":
        assert vault.jwt_file and vault.jwt_role
        try:
            assertion = Path(vault.jwt_file).read_text().strip()
        except OSError as exc:
            raise ConfigError("vault.jwt_file", f"cannot read it: {exc.strerror}") from exc
        jwt = (vault.jwt_mount, vault.jwt_role, assertion)
    client = connect(
        vault.addr,
        token=config.vault_token() if vault.auth == "token" else None,
        approle=approle,
        jwt=jwt,
        ca_cert=vault.ca_cert,
        namespace=vault.namespace,
        timeout=vault.timeout,
    )
    return Store(VaultKV(client, vault.kv_mount, vault.prefix))


@dataclass
class Runtime:
    config: Config
    clock: Clock
    store: Store

    def identity(self) -> ManagementIdentity:
        return load_identity(self.store)

    def certificates(self) -> CertificateProvider:
        return CertificateProvider(
            self.store, self.clock, self.config.timing, self.config.daemon.cert_reload_interval
        )

    def graph(
        self,
        provider: CertificateProvider | None = None,
        observer: GraphObserver | None = None,
    ) -> GraphClient:
        identity = self.identity()
        azure = self.config.azure
        return GraphClient(
            login_url=azure.login_url,
            graph_url=azure.graph_url,
            tenant_id=identity.tenant_id,
            client_id=identity.client_id,
            credential=provider or self.certificates(),
            clock=self.clock,
            ca_bundle=azure.ca_bundle,
            max_retries=azure.max_retries,
            backoff_base=azure.backoff_base,
            backoff_max=azure.backoff_max,
            timeout=azure.request_timeout,
            observer=observer,
            graph_scope=azure.graph_scope,
        )


def make_runtime(config: Config) -> Runtime:
    return Runtime(config=config, clock=make_clock(config), store=make_store(config))
