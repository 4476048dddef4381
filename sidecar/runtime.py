"""Builds the live parts (clock, Vault store, Graph client, issuer) from the configuration."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import hvac

from sidecar import metrics
from sidecar.clock import AcceleratedClock, Clock, SystemClock
from sidecar.config import Config
from sidecar.errors import ConfigError
from sidecar.graph import GraphClient, GraphObserver, ManagementCredential
from sidecar.issuer.management import assertion_credential
from sidecar.issuer.signing import Issuer
from sidecar.management import CertificateProvider, ManagementIdentity, load_identity
from sidecar.rotation.planner import FederatedTrust
from sidecar.store import Store
from sidecar.transit import Transit
from sidecar.vault import VaultKV
from sidecar.vault_login import VaultLogin, login_spec


def make_clock(config: Config) -> Clock:
    """Real time, or the emulated time of the demo and tests (``[clock]``)."""
    if config.clock.factor == 1.0 and config.clock.origin is None:
        return SystemClock()
    origin = config.clock.origin
    if origin is None:
        raise ConfigError("clock.origin", "required when clock.factor is not 1")
    return AcceleratedClock(origin, config.clock.factor, config.clock.origin_real or time.time())


def make_login(config: Config) -> VaultLogin:
    """Log in to Vault as the configuration says; the token's upkeep is started by the caller."""
    login = VaultLogin(login_spec(config.vault), observer=metrics.VaultTokenMetrics())
    login.login()
    return login


def make_store(config: Config, login: VaultLogin | None = None) -> Store:
    login = login or make_login(config)
    return Store(VaultKV(login.client, config.vault.kv_mount, config.vault.prefix))


def make_issuer(config: Config, client: hvac.Client, clock: Clock) -> Issuer | None:
    """The OIDC issuer of ``[issuer]``, signing through Transit; None when no URL is set."""
    settings = config.issuer
    if not settings.url:
        return None
    return Issuer(
        Transit(client, settings.transit_mount),
        settings.identity(),
        clock,
        key_name=settings.key,
        policy=settings.policy(),
    )


def federated_trust(config: Config) -> FederatedTrust | None:
    """What new federated credentials trust: the ``[issuer]`` URL; None when not set."""
    return FederatedTrust(config.issuer.identity().url) if config.issuer.url else None


@dataclass
class Runtime:
    config: Config
    clock: Clock
    store: Store
    vault_login: VaultLogin | None = None

    def identity(self) -> ManagementIdentity:
        return load_identity(self.store)

    def issuer(self) -> Issuer | None:
        """The OIDC issuer of ``[issuer]`` (Transit through this runtime's Vault login);
        None when no issuer URL is configured."""
        return make_issuer(self.config, self.store.kv.client, self.clock)

    def certificates(self) -> CertificateProvider:
        return CertificateProvider(
            self.store, self.clock, self.config.timing, self.config.daemon.cert_reload_interval
        )

    def management_credential(self) -> Callable[[], ManagementCredential]:
        """What the daemon signs in to Graph with, as ``azure.management_auth`` says.

        ``federated``: an assertion the issuer signs anew at each sign-in;
        ``certificate``: the active certificate in Vault.
        """
        if self.config.azure.management_auth == "federated":
            issuer = self.issuer()
            if issuer is None:
                raise ConfigError("issuer.url", "required by azure.management_auth = federated")
            credential = assertion_credential(issuer, self.config.azure.management_audience)
            return lambda: credential
        return self.certificates()

    def graph(
        self,
        provider: CertificateProvider | None = None,
        observer: GraphObserver | None = None,
    ) -> GraphClient:
        """A Graph client signed in as the management application.

        ``provider`` (certificates) wins; otherwise :meth:`management_credential`.
        """
        identity = self.identity()
        azure = self.config.azure
        return GraphClient(
            login_url=azure.login_url,
            graph_url=azure.graph_url,
            tenant_id=identity.tenant_id,
            client_id=identity.client_id,
            credential=provider or self.management_credential(),
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
    login = make_login(config)
    return Runtime(
        config=config, clock=make_clock(config), store=make_store(config, login), vault_login=login
    )
