"""Doctor's checks of the Vault server: reachable, its version, the KV mount, the plugin."""

from __future__ import annotations

import hvac

from sidecar.doctor.check import Check
from sidecar.errors import VaultError, VaultForbidden
from sidecar.server_version import OPENBAO_GUARDED, VAULT_GUARDED, wildcard_guard
from sidecar.vault import (
    capabilities_self,
    mount_entry,
    plugin_catalog,
    read_body,
    server_health,
)


def vault_health(client: hvac.Client, addr: str) -> Check:
    """Reachable, initialised, unsealed: what ``sys/health`` says (no token needed)."""
    try:
        health = server_health(
            client,
            standbyok="true",
            sealedcode=200,
            uninitcode=200,
            perfstandbyok="true",
        )
    except VaultError as exc:
        return Check(
            "fail",
            f"Vault at {addr} is not reachable: {exc}",
            "check vault.addr (or VAULT_ADDR / BAO_ADDR), the network and TLS (vault.ca_cert)",
        )
    version = health.get("version", "?")
    if not health.get("initialized"):
        return Check(
            "fail", f"Vault at {addr} is not initialised", "initialise it: bao operator init"
        )
    if health.get("sealed"):
        return Check("fail", f"Vault at {addr} is sealed", "unseal it: bao operator unseal")
    role = "standby" if health.get("standby") else "active"
    return Check("ok", f"Vault at {addr} reachable, unsealed, {role} (version {version})")


def template_wildcard_guard(client: hvac.Client) -> Check:
    """Whether a ``+`` stack claim could widen the runner policy on this server version."""
    try:
        version = str(server_health(client, standbyok="true").get("version", ""))
    except VaultError:
        version = ""
    guarded = wildcard_guard(version)
    if guarded:
        return Check("ok", f"version {version} rejects wildcards in policy template values")
    seen = f"version {version}" if version else "an unknown version"
    return Check(
        "warn",
        f"{seen} may accept a '+' stack claim in the runner policy's template (every stack);"
        " the plugin's and the resolver's login check still refuse it",
        f"upgrade to OpenBao >= {'.'.join(map(str, OPENBAO_GUARDED))}"
        f" (or Vault >= {'.'.join(map(str, VAULT_GUARDED))})",
    )


def kv_version(client: hvac.Client, kv_mount: str) -> Check:
    try:
        mount = mount_entry(client, kv_mount).get("data") or {}
    except VaultError as exc:
        return Check(
            "fail",
            f"no KV mount at {kv_mount}/ visible to this token ({exc.status or 'error'})",
            f"enable it: bao secrets enable -path={kv_mount} -version=2 kv",
        )
    kind = mount.get("type")
    version = str((mount.get("options") or {}).get("version") or "1")
    if kind != "kv" or version != "2":
        return Check(
            "fail",
            f"{kv_mount}/ is {kind} version {version}, not KV version 2",
            "point vault.kv_mount at a KV v2 mount (bao secrets enable -version=2 kv)",
        )
    return Check("ok", f"{kv_mount}/ is KV version 2")


def plugin(client: hvac.Client, mount: str, name: str) -> list[Check]:
    """Registered in the catalog, mounted at ``mount``, configured."""
    checks = []
    install = (
        f"azsidecar plugin install --plugin-dir <the server's plugin_directory>, then run the"
        f" two commands it prints (bao plugin register ..., bao secrets enable -path={mount}"
        f" {name})"
    )
    try:
        catalog = plugin_catalog(client).get("data") or {}
    except VaultForbidden:
        checks.append(
            Check("skip", "plugin catalog not readable with this token (needs sys/plugins/catalog)")
        )
    except VaultError as exc:
        checks.append(Check("fail", f"cannot read the plugin catalog: {exc}"))
    else:
        if name in (catalog.get("secret") or []):
            checks.append(Check("ok", f"plugin {name} registered in the catalog"))
        else:
            checks.append(Check("fail", f"plugin {name} is not registered", install))
    probe = f"{mount}/creds/doctor/plan"
    try:
        allowed = capabilities_self(client, probe)
    except VaultError:
        allowed = set()
    if not allowed or allowed == {"deny"}:
        checks.append(
            Check(
                "skip",
                f"this token may not look at {mount}/: run doctor with an operator token to"
                " check the plugin mount",
            )
        )
        return checks
    try:
        entry = mount_entry(client, mount).get("data") or {}
    except VaultError:
        entry = {}
    if entry.get("type") != name:
        what = f"a {entry['type']} engine" if entry.get("type") else "nothing"
        checks.append(
            Check("fail", f"plugin not mounted: {what} at {mount}/", install),
        )
        return checks
    version = entry.get("running_plugin_version") or entry.get("plugin_version") or "?"
    try:
        config = read_body(client, f"{mount}/config").get("data") or {}
    except VaultError:
        checks.append(Check("ok", f"plugin mounted at {mount}/ ({version})"))
        return checks
    logins = (
        "token_set",
        "approle_secret_id_set",
        "token_file",
        "approle_secret_id_file",
        "jwt_role",
    )
    if not config or not any(config.get(name) for name in logins):
        checks.append(
            Check(
                "fail",
                f"plugin mounted at {mount}/ but not configured",
                f"bao write {mount}/config vault_addr=... token=<a token with the"
                " azsidecar-plugin policy>",
            )
        )
    else:
        checks.append(
            Check(
                "ok",
                f"plugin mounted at {mount}/ ({version}), reads"
                f" {config.get('kv_mount')}/{config.get('prefix')} at {config.get('vault_addr')}",
            )
        )
    return checks
