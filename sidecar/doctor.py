"""``azsidecar doctor``: is this installation able to hand runs a working credential?

Each check looks at one thing and returns a :class:`Check`: a status, one line
saying what it saw, and for a problem, what to do. Checks only read: the only
write-like act is a sign-in with an integration's ready secret, which is how
consent is observed (Azure answers AADSTS700016 to an application that no
administrator installed in the tenant). Nothing secret is ever printed.

The checks run in order and later ones are skipped when what they need is
missing (no Vault, no management identity), so the first failure is the one
to fix first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import hvac
import requests

from sidecar.certs.renewal import RECOVERY
from sidecar.clock import Clock
from sidecar.config import Config
from sidecar.durations import format_duration
from sidecar.errors import GraphError, SidecarError, VaultError, VaultForbidden
from sidecar.graph import ARM_SCOPE, GraphClient, make_session
from sidecar.management import (
    ManagementNotInitialised,
    choose_active,
    load_certificates,
    load_identity,
)
from sidecar.model import DEFAULT_CREDS_MOUNT
from sidecar.orphans import find_orphans
from sidecar.ready import NotReady, choose_ready
from sidecar.runtime import Runtime
from sidecar.server_version import OPENBAO_GUARDED, VAULT_GUARDED, wildcard_guard
from sidecar.store import Store
from sidecar.vault import capabilities_self, translate_errors
from sidecar.vault_login import VaultLogin

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    status: Status
    line: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if abs(hours) < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def _get(client: hvac.Client, path: str, **params: Any) -> dict[str, Any]:
    with translate_errors(path.removeprefix("/v1/")):
        body: Any = client.adapter.get(path, params=params or None)
    return dict(body) if isinstance(body, dict) else dict(body.json())


# -- Vault -------------------------------------------------------------------------------


def vault_health(client: hvac.Client, addr: str) -> Check:
    """Reachable, initialised, unsealed: what ``sys/health`` says (no token needed)."""
    try:
        health = _get(
            client,
            "/v1/sys/health",
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
        version = str(_get(client, "/v1/sys/health", standbyok="true").get("version", ""))
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


# What the daemon does on each product path (sidecar/policies/sidecar.hcl).
def daemon_paths(kv_mount: str, prefix: str) -> dict[str, set[str]]:
    base = f"{kv_mount}/{{}}/{prefix}"
    return {
        f"{base.format('data')}/integrations/x": {"create", "read", "update"},
        f"{base.format('data')}/credentials/x": {"create", "read", "update"},
        f"{base.format('metadata')}/credentials/x": {"read", "update", "list"},
        f"{base.format('destroy')}/credentials/x": {"update"},
        f"{base.format('data')}/management/certificate": {"create", "read", "update"},
        f"{base.format('data')}/state/leader": {"create", "read", "update"},
    }


def token_capabilities(client: hvac.Client, kv_mount: str, prefix: str) -> Check:
    """The token may do what the daemon does on every product path."""
    try:
        info = _get(client, "/v1/auth/token/lookup-self").get("data") or {}
    except VaultError as exc:
        return Check(
            "fail",
            f"the Vault token is not valid: {exc}",
            "give the daemon's token (VAULT_TOKEN, vault.token_file) or its AppRole/JWT login",
        )
    policies = ", ".join(sorted(info.get("policies") or [])) or "none"
    ttl = int(info.get("ttl") or 0)
    expiry = f", expires in {_days(timedelta(seconds=ttl))}" if ttl else ""
    missing = []
    for path, needed in daemon_paths(kv_mount, prefix).items():
        have = capabilities_self(client, path)
        if "root" in have:
            continue
        lacking = needed - have
        if lacking or "deny" in have:
            missing.append(f"{', '.join(sorted(lacking)) or 'everything (deny)'} on {path}")
    if missing:
        return Check(
            "fail",
            f"token (policies {policies}) lacks: " + "; ".join(missing[:3]),
            "write the sidecar policy for this mount and prefix: azsidecar policies render"
            f" --kv-mount {kv_mount} --prefix {prefix} ..., then bao policy write"
            " azsidecar-sidecar",
        )
    return Check(
        "ok", f"token (policies {policies}{expiry}) may do what the daemon does on {prefix}/"
    )


def token_lifetime(login: VaultLogin) -> Check:
    """Will the token outlive the process, by renewal or a new login? (Real time.)"""
    status = login.status()
    source = login.spec.method
    if status.problem:
        return Check(
            "fail",
            f"Vault token ({source}): {status.problem}",
            "see the message; `/healthz` of a running daemon shows the same",
        )
    remaining = status.remaining(status.checked_at)
    if remaining is None:
        return Check("ok", f"Vault token ({source}) does not expire")
    left = _days(timedelta(seconds=remaining))
    if remaining < 3600:
        left = format_duration(timedelta(seconds=max(0, int(remaining))))
    if login.spec.can_login:
        return Check(
            "ok",
            f"Vault token ({source} login) expires in {left}; renewed at 2/3 of its TTL,"
            " replaced by a new login before its maximum TTL",
        )
    file_hint = login.spec.key("token_file")
    if not status.renewable:
        return Check(
            "warn",
            f"Vault token expires in {left} and cannot be renewed: the daemon stops then"
            f" unless {file_hint} is rewritten with a new token",
            f"use AppRole or JWT login, or let Vault Agent keep {file_hint} fresh",
        )
    return Check(
        "ok",
        f"Vault token expires in {left}, renewable (renewed at 2/3 of its TTL; past its"
        f" maximum TTL only a new token in {file_hint} helps)",
    )


def kv_version(client: hvac.Client, kv_mount: str) -> Check:
    try:
        mount = _get(client, f"/v1/sys/internal/ui/mounts/{kv_mount}").get("data") or {}
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
        catalog = _get(client, "/v1/sys/plugins/catalog").get("data") or {}
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
        entry = _get(client, f"/v1/sys/internal/ui/mounts/{mount}").get("data") or {}
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
        config = _get(client, f"/v1/{mount}/config").get("data") or {}
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


# -- Azure -------------------------------------------------------------------------------


def management(store: Store, clock: Clock, config: Config) -> tuple[list[Check], bool]:
    """The management certificate's validity; True if Graph can be tried with it."""
    try:
        identity = load_identity(store)
    except ManagementNotInitialised as exc:
        return [Check("fail", str(exc), "azsidecar management init (see the README)")], False
    except VaultError as exc:
        return [Check("fail", f"cannot read the management identity: {exc}")], False
    now = clock.now()
    certificates = load_certificates(store)
    active = choose_active(certificates, now, config.timing)
    if active is None:
        if not certificates:
            return [Check("fail", "no management certificate in Vault", RECOVERY)], False
        newest = max(certificates, key=lambda c: c.not_after)
        if newest.not_after <= now:
            line = (
                f"management certificate expired {_days(now - newest.not_after)} ago"
                f" ({newest.not_after:%Y-%m-%d %H:%M} UTC): the daemon cannot sign in to Graph"
            )
        else:
            line = f"management certificate not valid before {newest.not_before:%Y-%m-%d %H:%M}"
        return [Check("fail", line, RECOVERY)], False
    left = active.not_after - now
    line = (
        f"management application {identity.client_id}: certificate"
        f" {active.thumbprint[:12]}... valid until"
        f" {active.not_after:%Y-%m-%d %H:%M} UTC ({_days(left)} left)"
    )
    overdue = left < config.timing.cert_renew_before - config.timing.tick * 2
    newer = [c for c in certificates if c.not_after > active.not_after]
    if overdue and not newer:
        return [
            Check(
                "warn",
                line + "; its renewal is overdue",
                "is the daemon running and leader? see its /healthz and logs",
            )
        ], True
    return [Check("ok", line)], True


def graph_reachable(graph: GraphClient, app_object_id: str, client_id: str) -> Check:
    try:
        app = graph.get_application(app_object_id)
    except GraphError as exc:
        fix = (
            "check azure.graph_url / azure.login_url and the network; a 401/403 means the"
            " certificate or the Graph permission Application.ReadWrite.OwnedBy (with admin"
            " consent, and the application owning itself) is missing"
        )
        return Check("fail", f"Graph: {exc}", fix)
    return Check(
        "ok",
        f"Graph reachable: signed in as {client_id}; its application holds"
        f" {len(app.keys)} certificate(s)",
    )


def orphaned_applications(graph: GraphClient, store: Store, prefix: str) -> Check:
    """Applications named ``prefix-*`` that no integration records (see ``sidecar.orphans``)."""
    try:
        found = find_orphans(graph, store, prefix)
    except SidecarError as exc:
        return Check("warn", f"cannot look for orphaned applications: {exc}")
    if not found:
        return Check("ok", f"no orphaned applications named {prefix}-*")
    names = ", ".join(a.display_name for a in found[:5])
    return Check(
        "warn",
        f"{len(found)} application(s) named {prefix}-* that no integration records: {names}",
        "azsidecar integration reconcile --delete (left by a gateway timeout or a crash)",
    )


def sign_in(
    session: requests.Session,
    login_url: str,
    tenant_id: str,
    client_id: str,
    secret: str,
    scope: str = ARM_SCOPE,
) -> tuple[int, list[int], str]:
    """Client-credentials sign-in for ARM: (HTTP status, AADSTS codes, description)."""
    response = session.post(
        f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": scope,
        },
        timeout=30,
    )
    if response.status_code == 200:
        return 200, [], ""
    try:
        body = response.json()
    except ValueError:
        body = {}
    codes = [int(c) for c in body.get("error_codes") or [] if isinstance(c, int)]
    return response.status_code, codes, str(body.get("error_description", ""))[:160]


def integration(
    store: Store,
    name: str,
    now: datetime,
    config: Config,
    signer: Callable[[str, str, str], tuple[int, list[int], str]],
) -> list[Check]:
    """Consent (observed by signing in with the ready secret) and the ready secret's timing."""
    try:
        record, _ = store.integration(name)
    except SidecarError as exc:
        return [Check("fail", f"integration {name}: cannot read it: {exc}")]
    if record.status != "ready":
        return [
            Check(
                "fail",
                f"integration {name}: half-created ({record.status})",
                f"azsidecar integration create --name {name} --tenant {record.tenant_id} again"
                " finishes it; azsidecar integration delete removes it",
            )
        ]
    stacks = store.stacks_using(name)
    used = f" (used by {', '.join(sorted(stacks))})" if stacks else " (no stack uses it)"
    stored = store.credentials(name, repair=False)
    choice = choose_ready(stored, now, config.timing)
    if isinstance(choice, NotReady):
        when = f"; ready at {choice.ready_at:%Y-%m-%d %H:%M} UTC" if choice.ready_at else ""
        fresh = choice.ready_at is not None and choice.ready_at - now <= (
            config.timing.propagation_delay
        )
        return [
            Check(
                "warn" if fresh else "fail",
                f"integration {name}{used}: no ready secret: {choice.reason}{when}",
                ""
                if fresh
                else "is the daemon running? `azsidecar integration show "
                f"{name}` lists its secrets",
            )
        ]
    credential = choice.credential
    age = now - credential.created
    secret_line = (
        f"integration {name}{used}: ready secret v{credential.version} is {_days(age)} old,"
        f" expires in {_days(credential.expires - now)}, handed out for"
        f" {_days(choice.usable_until - now)} more"
    )
    newest = max(stored, key=lambda c: c.created)
    checks = [Check("ok", secret_line)]
    if credential.expires - now < config.timing.secret_renew_before - config.timing.tick and (
        newest.version == credential.version
    ):
        checks = [
            Check(
                "warn",
                secret_line + "; its renewal is overdue",
                "is the daemon running and leader? see its /healthz and logs",
            )
        ]
    secret = store.secret(name, credential.version).secret
    try:
        status, codes, description = signer(record.tenant_id, record.client_id, secret.reveal())
    except requests.RequestException as exc:
        checks.append(Check("warn", f"integration {name}: cannot reach the login endpoint ({exc})"))
        return checks
    if status == 200:
        checks.append(
            Check("ok", f"integration {name}: consent granted in tenant {record.tenant_id}")
        )
    elif 700016 in codes:
        checks.append(
            Check(
                "fail" if stacks else "warn",
                f"integration {name}: no consent in tenant {record.tenant_id} (AADSTS700016)",
                "ask the tenant's administrator to open the URL from"
                f" `azsidecar integration consent-url {name}`",
            )
        )
    else:
        checks.append(
            Check(
                "fail",
                f"integration {name}: the ready secret was refused: {description or status}",
                "see `azsidecar integration show` and the daemon's logs; a secret removed in"
                " the portal is replaced at the next tick",
            )
        )
    return checks


# -- the whole run ------------------------------------------------------------------------


def daemon_health(url: str) -> Check:
    try:
        response = requests.get(f"{url.rstrip('/')}/healthz", timeout=5)
        health = response.json()
    except (requests.RequestException, ValueError):
        return Check(
            "warn",
            f"no daemon answering at {url}/healthz",
            "start `azsidecar daemon`, or pass --daemon-url if it runs elsewhere",
        )
    if response.status_code == 200:
        last = health.get("last_tick") or "none yet"
        leader = "leader" if health.get("leader") else "standby"
        return Check("ok", f"daemon at {url}: healthy, {leader}, last tick {last}")
    problem = str(health.get("last_error") or "")
    token = health.get("vault_token")
    if isinstance(token, dict) and token.get("problem"):
        problem = f"Vault token: {token['problem']}"
    return Check(
        "fail",
        f"daemon at {url} reports a problem: {problem[:240]}",
        "see the daemon's logs; `azsidecar doctor` above names what is broken",
    )


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
    certificate, usable = management(runtime.store, runtime.clock, config)
    yield from certificate
    if usable:
        identity = load_identity(runtime.store)
        quick = replace(config, azure=replace(config.azure, max_retries=1))
        graph = Runtime(quick, runtime.clock, runtime.store).graph()
        graph.not_found_window = 30.0  # a check answers quickly; the daemon rides out lag
        yield graph_reachable(graph, identity.app_object_id, identity.client_id)
        yield orphaned_applications(graph, runtime.store, config.azure.app_name_prefix)
    session = make_session(config.azure.ca_bundle)

    def signer(tenant: str, client_id: str, secret: str) -> tuple[int, list[int], str]:
        return sign_in(
            session, config.azure.login_url, tenant, client_id, secret, config.azure.arm_scope
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
        yield from integration(runtime.store, name, now, config, signer)
    if daemon_url:
        yield daemon_health(daemon_url)


def summary(checks: list[Check]) -> str:
    failed = sum(1 for c in checks if c.failed)
    warned = sum(1 for c in checks if c.status == "warn")
    if failed:
        return f"{failed} problem(s) to fix" + (f", {warned} warning(s)" if warned else "")
    return "everything checked is working" + (f" ({warned} warning(s))" if warned else "")
