"""One-shot set-up for docker-compose.yml, with the product's own code.

What an operator (and, for the emulator, Azure administrators) would do once:
KV v2, JWT auth with the shipped runner role, the shipped policies, the plugin
registered, mounted and configured with a read-only token, the management
application with a certificate made here (its key goes only into Vault), one
example integration with consent and a role, attached to stack "example".

Writes two files, each into a volume of its own (mode 0600): the daemon's
Vault token (/run/azsidecar, mounted only into the daemon) and the stand-in CI
platform's JWT signing key (/run/ci-issuer, mounted only into the `ci`
service). The runner gets neither: only the JWT that `ci` signs for its run.
The plugin registered is the file OpenBao runs (/openbao/plugins/azsidecar in
this image), with the daemon's propagation delay in the mount's ``config``. The root
token comes from the environment (BAO_TOKEN), never from this file or argv.
Safe to run again: it stops if the set-up is already there.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import sys
import time
from pathlib import Path

import hvac
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
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV, connect

DAEMON_DIR = Path("/run/azsidecar")  # volume daemon-token: bootstrap and daemon only
ISSUER_DIR = Path("/run/ci-issuer")  # volume ci-issuer: bootstrap and ci only
PLUGIN_FILE = Path("/openbao/plugins") / vault_setup.PLUGIN_NAME  # written by the image

DAEMON_UID = 10001  # the azsidecar user of docker/azsidecar.Dockerfile
CI_USER = "openbao"  # the `ci` service runs as this user of docker/openbao.Dockerfile


def write_private(path: Path, text: str, uid: int) -> None:
    """Mode 0600, owned by the one user that reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chown(path, uid, uid)


def register_plugin(root: hvac.Client, setup: vault_setup.VaultSetup, timing: TimingPolicy) -> str:
    """Register the wrapper OpenBao will run, mount it, configure it like the daemon.

    The SHA-256 is that of ``PLUGIN_FILE`` as it lies in the plugin directory
    (this image is OpenBao's image), so ``secrets enable`` runs that very file.
    """
    sha256 = hashlib.sha256(PLUGIN_FILE.read_bytes()).hexdigest()
    name = vault_setup.PLUGIN_NAME
    root.adapter.post(
        f"/v1/sys/plugins/catalog/secret/{name}",
        json={"sha256": sha256, "command": PLUGIN_FILE.name},
    )
    root.sys.enable_secrets_engine(name, path=vault_setup.PLUGIN_MOUNT)
    root.write_data(
        f"{vault_setup.PLUGIN_MOUNT}/config",
        data={
            "vault_addr": setup.addr,
            "token": setup.plugin_token.reveal(),
            "kv_mount": vault_setup.KV_MOUNT,
            "prefix": vault_setup.PREFIX,
            "propagation_delay": f"{int(timing.propagation_delay.total_seconds())}s",
            "ready_safety_margin": f"{int(timing.ready_safety_margin.total_seconds())}s",
            "probe_window": f"{int(timing.probe_window.total_seconds())}s",
        },
    )
    return sha256


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
    root_token = os.environ.get("BAO_TOKEN", "")
    if not root_token:
        sys.exit(
            "bootstrap: BAO_ROOT_TOKEN is not set; export it (e.g. openssl rand -hex 16)"
            " and run `docker compose up` again"
        )
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
    write_private(DAEMON_DIR / "sidecar-token", setup.sidecar_token.reveal(), DAEMON_UID)
    key_pem = setup.jwt_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    write_private(ISSUER_DIR / "ci-issuer.pem", key_pem, pwd.getpwnam(CI_USER).pw_uid)
    sha256 = register_plugin(root, setup, config.timing)
    print(
        f"bootstrap: Vault configured; plugin {PLUGIN_FILE} (sha256 {sha256}) mounted at"
        f" {vault_setup.PLUGIN_MOUNT}/, propagation delay {config.timing.propagation_delay}"
    )

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
