"""What an operator does once to an OpenBao for azsidecar, done by the demo with the root token.

The same steps as ``vault-config/jwt-setup.sh`` and ``azsidecar plugin install``:
KV v2 mount, JWT auth with the shipped runner role, the four shipped policies
rendered with the JWT accessor, one token per role (sidecar, plugin, operator),
and the plugin registered, mounted at ``azure/`` and configured with the
read-only plugin token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hvac
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.durations import format_duration
from sidecar.model import DEFAULT_CREDS_MOUNT
from sidecar.plugin.install import install_wrapper, registration_commands
from sidecar.policies import render_all, runner_role
from sidecar.sensitive import Sensitive
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV

KV_MOUNT = "secret"
PREFIX = "azsidecar"
PLUGIN_NAME = "azsidecar"
PLUGIN_MOUNT = DEFAULT_CREDS_MOUNT
JWT_ROLE = "azsidecar-runner"


@dataclass
class VaultSetup:
    """Tokens and keys the demo made; the tokens are wrapped so they never print."""

    addr: str
    jwt_key: rsa.RSAPrivateKey
    jwt_accessor: str
    sidecar_token: Sensitive = field(repr=False)
    plugin_token: Sensitive = field(repr=False)
    operator_token: Sensitive = field(repr=False)


def _token(root: hvac.Client, policy: str) -> Sensitive:
    created: Any = root.auth.token.create(
        policies=[policy], ttl="24h", renewable=False, display_name=policy
    )
    return Sensitive(str(created["auth"]["client_token"]))


def configure(root: hvac.Client, addr: str) -> VaultSetup:
    """KV mount, JWT auth trusting a key made here, policies, and the role tokens."""
    VaultKV(root, KV_MOUNT, PREFIX).ensure_mount()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    root.sys.enable_auth_method("jwt", path="jwt")
    root.adapter.post("/v1/auth/jwt/config", json={"jwt_validation_pubkeys": [public.decode()]})
    role = runner_role()
    root.adapter.post(f"/v1/auth/jwt/role/{JWT_ROLE}", json=role)
    methods: Any = root.adapter.get("/v1/sys/auth")
    accessor = str(methods["data"]["jwt/"]["accessor"])
    values = {
        "jwt_accessor": accessor,
        "kv_mount": KV_MOUNT,
        "prefix": PREFIX,
        "creds_mount": PLUGIN_MOUNT,
    }
    for name, text in render_all(values).items():
        root.sys.create_or_update_policy(f"azsidecar-{name}", text)
    return VaultSetup(
        addr=addr,
        jwt_key=key,
        jwt_accessor=accessor,
        sidecar_token=_token(root, "azsidecar-sidecar"),
        plugin_token=_token(root, "azsidecar-plugin"),
        operator_token=_token(root, "azsidecar-operator"),
    )


def plugin_config(setup: VaultSetup, policy: TimingPolicy) -> dict[str, Any]:
    """``azure/config``: where the product's data is, the read-only token, and the ready
    rule's two durations as the daemon has them (the plugin's defaults otherwise)."""
    return {
        "vault_addr": setup.addr,
        "token": setup.plugin_token.reveal(),
        "kv_mount": KV_MOUNT,
        "prefix": PREFIX,
        "propagation_delay": format_duration(policy.propagation_delay),
        "ready_safety_margin": format_duration(policy.ready_safety_margin),
    }


def install_plugin(
    root: hvac.Client,
    setup: VaultSetup,
    plugin_dir: str,
    clock_env: dict[str, str],
    *,
    policy: TimingPolicy,
) -> list[str]:
    """``azsidecar plugin install``, the two commands it prints, then ``azure/config``.

    ``clock_env`` (the daemon's emulated clock) is registered as the plugin's
    environment through the catalog API's ``env`` field (``bao plugin register``
    has no ``-env`` flag in OpenBao 2.7.2). ``policy`` is the daemon's timing: the
    plugin must hand out by the same ready rule. Returns the commands an operator
    would type, for the demo to show.
    """
    installed = install_wrapper(plugin_dir, PLUGIN_NAME)
    root.adapter.post(
        f"/v1/sys/plugins/catalog/secret/{PLUGIN_NAME}",
        json={
            "sha256": installed.sha256,
            "command": installed.name,
            "env": [f"{k}={v}" for k, v in sorted(clock_env.items())],
        },
    )
    root.sys.enable_secrets_engine(PLUGIN_NAME, path=PLUGIN_MOUNT)
    root.write_data(f"{PLUGIN_MOUNT}/config", data=plugin_config(setup, policy))
    return registration_commands(installed, PLUGIN_MOUNT)
