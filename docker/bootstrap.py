"""One-shot set-up for docker-compose.yml, with the product's own code.

What an operator (and, for the emulator, Azure administrators) would do once:
KV v2, JWT auth with the shipped runner role, the shipped policies, the plugin
registered, mounted and configured with a read-only token, the management
application with a certificate made here (its key goes only into Vault), one
example integration with consent and a role, attached to stack "example".

Writes two files into the shared volume /run/azsidecar (mode 0600): the
daemon's Vault token and the stand-in CI platform's JWT signing key. The root
token comes from the environment (BAO_TOKEN), never from this file or argv.
Safe to run again: it stops if the set-up is already there.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization

from sidecar.clock import SystemClock
from sidecar.config import load_config
from sidecar.demo import vault_setup
from sidecar.demo.emulator_admin import EmulatorAdmin, EmulatorEndpoints
from sidecar.errors import GraphError, VaultNotFound
from sidecar.integrations import Integrations, consent_url
from sidecar.management import (
    ManagementIdentity,
    generate_key_pair,
    save_identity,
    store_certificate,
)
from sidecar.runtime import Runtime
from sidecar.stacks import attach
from sidecar.store import Store
from sidecar.vault import VaultKV, connect

SHARED = Path("/run/azsidecar")


DAEMON_UID = 10001  # the azsidecar user of docker/azsidecar.Dockerfile


def write_private(path: Path, text: str) -> None:
    """Mode 0600, owned by the daemon's user (the runner reads as root)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chown(path, DAEMON_UID, DAEMON_UID)


def wait_for(url: str, verify: str | bool = True) -> None:
    for _ in range(120):
        try:
            if requests.get(url, timeout=2, verify=verify).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    sys.exit(f"bootstrap: {url} did not come up")


def main() -> None:
    config = load_config(os.environ.get("AZSIDECAR_CONFIG", "/etc/azsidecar/daemon.toml"))
    addr = config.vault.addr
    root_token = os.environ["BAO_TOKEN"]
    azure = config.azure
    wait_for(f"{addr}/v1/sys/health")
    wait_for(f"{azure.login_url}/_emulator/health", verify=azure.ca_bundle or True)
    root = connect(addr, token=root_token)
    try:
        VaultKV(root, config.vault.kv_mount, config.vault.prefix).read("management/identity")
        print("bootstrap: already done")
        return
    except VaultNotFound:
        pass

    setup = vault_setup.configure(root, addr)
    SHARED.mkdir(parents=True, exist_ok=True)
    write_private(SHARED / "sidecar-token", setup.sidecar_token.reveal())
    key_pem = setup.jwt_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    write_private(SHARED / "ci-issuer.pem", key_pem)
    commands = vault_setup.install_plugin(root, setup, "/tmp/plugins", clock_env={})  # noqa: S108
    print("bootstrap: Vault configured; plugin:", "; ".join(commands))

    endpoints = EmulatorEndpoints(
        azure.login_url, azure.graph_url, azure.arm_url, azure.ca_bundle or ""
    )
    admin = EmulatorAdmin(endpoints)
    store = Store(VaultKV(connect(addr, token=setup.sidecar_token.reveal()), "secret", "azsidecar"))
    clock = SystemClock()
    platform, _ = admin.seed_tenant("CI platform")
    pair = generate_key_pair("azsidecar-management", clock.now(), config.timing.cert_lifetime)
    seeded = admin.seed_management_app(platform, pair.cert_pem)
    save_identity(store, ManagementIdentity(platform, seeded["objectId"], seeded["appId"]))
    store_certificate(store, pair, key_id=str(seeded.get("keyId") or ""), uploaded_at=clock.now())
    print(f"bootstrap: management application {seeded['appId']}")

    runtime = Runtime(config=config, clock=clock, store=store)
    service = Integrations(
        store, runtime.graph(), clock, config.timing, redirect_uri=azure.consent_redirect_uri
    )
    tenant, subscription = admin.seed_tenant("Example Corp")
    for attempt in range(10):
        try:
            record = service.create("example", tenant, subscription)
            break
        except GraphError as exc:  # a lagging replica; `create` again resumes
            print(f"bootstrap: {exc.status} from Graph, resuming in 15 s (attempt {attempt + 1})")
            time.sleep(15)
    else:
        sys.exit("bootstrap: could not create the example integration")
    url = consent_url(azure.login_url, record, azure.consent_redirect_uri)
    for _ in range(30):
        response = admin.session.get(url, allow_redirects=False, timeout=30)
        if response.status_code == 302:
            break
        time.sleep(5)
    admin.grant_azure_role(tenant, subscription, record.client_id, "Contributor")
    operator = connect(addr, token=setup.operator_token.reveal())
    attach(
        Store(VaultKV(operator, "secret", "azsidecar")), "example", read="example", write="example"
    )
    print(f"bootstrap: integration example ({record.client_id}) attached to stack example")


if __name__ == "__main__":
    main()
