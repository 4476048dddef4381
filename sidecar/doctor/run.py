"""Every doctor check, in order: ``azsidecar doctor``'s whole run and its summary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from sidecar.doctor.check import Check
from sidecar.doctor.daemon import daemon_health
from sidecar.doctor.federated import FederatedContext
from sidecar.doctor.integrations import integration
from sidecar.doctor.lag import observed_lag
from sidecar.doctor.management import graph_reachable, management, orphaned_applications
from sidecar.doctor.management_federated import federated_identity, federated_sign_in, issuer_key
from sidecar.doctor.token import token_capabilities, token_lifetime
from sidecar.doctor.vault import kv_version, plugin, template_wildcard_guard, vault_health
from sidecar.errors import VaultError
from sidecar.graph import (
    CertificateCredential,
    make_session,
    sign_in_with_certificate,
    sign_in_with_secret,
)
from sidecar.management import load_identity
from sidecar.model import DEFAULT_CREDS_MOUNT
from sidecar.runtime import Runtime


def run_checks(
    runtime: Runtime,
    *,
    plugin_mount: str | None = DEFAULT_CREDS_MOUNT,
    plugin_name: str = "azsidecar",
    daemon_url: str | None = None,
) -> Iterator[Check]:
    """Every check in order; stops early when Vault itself is not usable."""
    config = runtime.config
    kv = runtime.store.kv
    client = kv.client
    health = vault_health(client, config.vault.addr)
    yield health
    if health.failed:
        return
    yield template_wildcard_guard(client)
    token = token_capabilities(client, kv.mount, kv.prefix)
    yield token
    if runtime.vault_login is not None:
        yield token_lifetime(runtime.vault_login)
    kv_check = kv_version(client, kv.mount)
    yield kv_check
    if plugin_mount:
        yield from plugin(client, plugin_mount, plugin_name)
    if kv_check.failed:
        return
    lister = None
    federated = config.azure.management_auth == "federated"
    if federated:
        identity_check, usable = federated_identity(runtime.store)
        key_check = issuer_key(runtime.issuer())
        yield identity_check
        yield key_check
        usable = usable and not key_check.failed
    else:
        certificate, usable = management(runtime.store, runtime.clock, config)
        yield from certificate
    if usable:
        identity = load_identity(runtime.store)
        quick = replace(config, azure=replace(config.azure, max_retries=1))
        graph = Runtime(quick, runtime.clock, runtime.store).graph()
        graph.not_found_window = 30.0  # a check answers quickly; the daemon rides out lag
        sign_in = federated_sign_in(graph) if federated else None
        if sign_in is not None:
            yield sign_in
        if sign_in is None or not sign_in.failed:
            yield graph_reachable(graph, identity.app_object_id, identity.client_id)
            yield orphaned_applications(graph, runtime.store, config.azure.app_name_prefix)
            lister = graph.list_federated_credentials
    context = FederatedContext(lister, runtime.issuer())
    session = make_session(config.azure.ca_bundle)

    def signer(tenant: str, client_id: str, secret: str) -> tuple[int, list[int], str]:
        return sign_in_with_secret(
            session, config.azure.login_url, tenant, client_id, secret, config.azure.arm_scope
        )

    def certificate_signer(
        tenant: str, client_id: str, certificate: CertificateCredential
    ) -> tuple[int, list[int], str]:
        return sign_in_with_certificate(
            session, config.azure.login_url, tenant, client_id, certificate, config.azure.arm_scope
        )

    try:
        names = runtime.store.integration_names()
    except VaultError as exc:
        yield Check("fail", f"cannot list integrations: {exc}")
        return
    if not names:
        yield Check("warn", "no integrations yet", "azsidecar integration create --name ...")
    now = runtime.clock.now()
    for name in names:
        yield from integration(
            runtime.store, name, now, config, signer, certificate_signer, context
        )
    yield observed_lag(runtime.store, config)
    if daemon_url:
        yield daemon_health(daemon_url)


def summary(checks: list[Check]) -> str:
    failed = sum(1 for c in checks if c.failed)
    warned = sum(1 for c in checks if c.status == "warn")
    if failed:
        return f"{failed} problem(s) to fix" + (f", {warned} warning(s)" if warned else "")
    return "everything checked is working" + (f" ({warned} warning(s))" if warned else "")
