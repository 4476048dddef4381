"""Federated credentials through every reader (issue 18): plugin, resolver, creds, exec, agent.

A real OpenBao with the plugin, JWT auth for runs, and Transit holding the
issuer's key (a key of this test's own, so the shipped policies are rendered
with its name). Stack A's plan and apply integrations are federated; their
versions are written into KV as the daemon will write them. The readers sign
with the key once it has been published for ``publish_ahead`` (a second here,
real time). Every token handed out is verified with PyJWT against the
issuer's JWKS.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import hvac.exceptions
import jwt
import pytest
import requests
from click.testing import CliRunner

from sidecar.answers import NotReadyYet, ResolvedCredential
from sidecar.cli.creds import creds
from sidecar.clock import SystemClock
from sidecar.config import Config, DaemonConfig, IssuerConfig, VaultConfig
from sidecar.errors import VaultForbidden
from sidecar.issuer.documents import ENTRA_AUDIENCE, IssuerIdentity
from sidecar.issuer.planner import IssuerPolicy
from sidecar.issuer.signing import Issuer
from sidecar.model import (
    CredentialKind,
    FederatedVersion,
    Phase,
    federated_credential_name,
    federated_subject,
)
from sidecar.policies import render_all
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.server import ResolverHandle, start_resolver
from sidecar.runner.source import read_plugin
from sidecar.store import StackRecord
from sidecar.transit import Transit
from sidecar.vault import VaultKV, connect
from tests.runner.conftest import (
    ROOT,
    RunnerWorld,
    integration,
    run_agent,
    secret,
    write_file,
)
from tests.runner.test_resolver_tls import server_certificate

ISSUER_URL = "https://issuer.example.com/azsidecar"
AHEAD = timedelta(seconds=1)
TRANSIT = "transit"


@dataclass
class FedWorld:
    runner: RunnerWorld
    key: str
    transit: Transit

    def issuer(self) -> Issuer:
        policy = IssuerPolicy(publish_ahead=AHEAD, rotation_period=timedelta(days=30))
        identity = IssuerIdentity(ISSUER_URL)
        return Issuer(self.transit, identity, SystemClock(), key_name=self.key, policy=policy)

    def claims(self, token: str) -> dict[str, object]:
        keys = jwt.PyJWKSet.from_dict(self.issuer().jwks())
        kid = jwt.get_unverified_header(token)["kid"]
        claims: dict[str, object] = jwt.decode(
            token, keys[kid].key, algorithms=["RS256"], audience=ENTRA_AUDIENCE, issuer=ISSUER_URL
        )
        return claims

    def resolver(
        self, tls: tuple[Path, Path] | None = None, ahead: timedelta = AHEAD
    ) -> ResolverHandle:
        """The resolver; with ``tls``, serving the ID-token endpoint too (HTTPS)."""
        world = self.runner
        daemon = DaemonConfig()
        if tls is not None:
            daemon = DaemonConfig(
                tls_cert=str(tls[0]), tls_key=str(tls[1]), resolver_oidc_addr="127.0.0.1:0"
            )
        config = Config(
            vault=VaultConfig(addr=world.addr, prefix=world.prefix),
            issuer=IssuerConfig(transit_mount=TRANSIT, key=self.key, publish_ahead=ahead),
            daemon=daemon,
        )
        kv = VaultKV(connect(world.addr, token=world.plugin_token), "secret", world.prefix)
        return start_resolver(config, kv, SystemClock(), mount="azure", addr="127.0.0.1:0")


def federated(name: str, created: datetime) -> FederatedVersion:
    intent = f"fed-{name}"
    return FederatedVersion(
        client_id=integration(name, created).client_id,
        tenant_id=integration(name, created).tenant_id,
        key_id=str(uuid.uuid5(uuid.NAMESPACE_URL, intent)),
        name=federated_credential_name(intent),
        issuer=ISSUER_URL,
        subject=federated_subject(name, intent),
        audience=ENTRA_AUDIENCE,
        intent_id=intent,
        created=created,
    )


def _transit(root: hvac.Client) -> None:
    mounts = root.adapter.get("/v1/sys/mounts")
    if f"{TRANSIT}/" not in mounts["data"]:
        root.sys.enable_secrets_engine("transit", path=TRANSIT)


@pytest.fixture
def fed(world: RunnerWorld) -> Iterator[FedWorld]:
    """Stack A: plan I1, apply I2, both federated, their credentials an hour old."""
    root = world.root
    _transit(root)
    key = f"iss-{world.prefix}"
    values = {
        "jwt_accessor": world.bao.accessor,
        "kv_mount": "secret",
        "prefix": world.prefix,
        "creds_mount": "azure",
        "issuer_key": key,
    }
    for name, text in render_all(values).items():
        root.sys.create_or_update_policy(f"azsidecar-{name}", text)
    transit = Transit(root, TRANSIT)
    transit.ensure_key(key)
    root.write_data("azure/config", data={"issuer_key": key, "issuer_publish_ahead": "1s"})
    now = datetime.now(UTC)
    for name in ("I1", "I2"):
        record = integration(name, now - timedelta(days=1))
        world.store.save_integration(replace(record, kind=CredentialKind.FEDERATED), cas=0)
        world.store.store_secret(name, federated(name, now - timedelta(hours=1)))
    world.store.save_stack(StackRecord(name="A", read="I1", write="I2"), cas=0)
    time.sleep(AHEAD.total_seconds() + 1.1)  # the key's first version is published long enough
    yield FedWorld(world, key, transit)
    root.adapter.post(f"/v1/{TRANSIT}/keys/{key}/config", json={"deletion_allowed": True})
    root.adapter.delete(f"/v1/{TRANSIT}/keys/{key}")


def _check(fed: FedWorld, token: str, stack: str, phase: str, name: str) -> None:
    claims = fed.claims(token)
    assert claims["sub"] == federated_subject(name, f"fed-{name}")
    assert (claims["stack"], claims["phase"], claims["integration"]) == (stack, phase, name)


def test_the_plugin_hands_out_a_token_without_a_lease(fed: FedWorld) -> None:
    answer = fed.runner.login("A", "apply").read("azure/creds/A/apply")
    assert isinstance(answer, dict)
    data = answer["data"]
    assert data["kind"] == "federated" and data["use_oidc"] is True
    assert "client_secret" not in data and "client_certificate" not in data
    assert data["client_id"] == integration("I2", datetime.now(UTC)).client_id
    assert not answer.get("lease_id") and not answer.get("lease_duration")
    _check(fed, data["oidc_token"], "A", "apply", "I2")
    cred = read_plugin(fed.runner.login("A", "plan"), "azure", "A", Phase.PLAN)
    assert cred.federated is not None and cred.kind is CredentialKind.FEDERATED
    _check(fed, cred.federated.token.reveal(), "A", "plan", "I1")
    seconds = (cred.federated.expires - datetime.now(UTC)).total_seconds()
    assert 500 < seconds <= 600  # the default token lifetime, 10 minutes


def test_a_plan_token_cannot_obtain_the_apply_integrations_token(fed: FedWorld) -> None:
    plan = fed.runner.login("A", "plan")
    with pytest.raises(hvac.exceptions.Forbidden):
        plan.read("azure/creds/A/apply")
    handle = fed.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    try:
        with pytest.raises(VaultForbidden):
            client.resolve(str(plan.token), "A", Phase.APPLY)
        apply_token = str(fed.runner.login("A", "apply").token)
        with pytest.raises(VaultForbidden):
            client.resolve(apply_token, "A", Phase.PLAN)
    finally:
        client.close()
        handle.stop(grace=0)


def test_the_resolver_hands_out_a_token_that_verifies(
    fed: FedWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handle = fed.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    try:
        cred = client.resolve(str(fed.runner.login("A", "apply").token), "A", Phase.APPLY)
    finally:
        client.close()
        handle.stop(grace=0)
    assert cred.kind is CredentialKind.FEDERATED and cred.federated is not None
    assert not cred.client_secret and cred.certificate is None
    token = cred.federated.token.reveal()
    _check(fed, token, "A", "apply", "I2")
    assert "resolved stack A phase apply" in caplog.text
    assert token not in caplog.text and token.rsplit(".", 1)[1] not in caplog.text


def test_before_the_key_is_published_long_enough_readers_say_when(fed: FedWorld) -> None:
    fed.runner.root.write_data("azure/config", data={"issuer_publish_ahead": "1h"})
    created = fed.transit.read_key(fed.key).versions[1].created
    with pytest.raises(NotReadyYet) as refused:
        read_plugin(fed.runner.login("A", "apply"), "azure", "A", Phase.APPLY)
    assert refused.value.ready_at is not None
    assert abs((refused.value.ready_at - (created + timedelta(hours=1))).total_seconds()) < 2
    assert refused.value.retry_after is not None
    assert refused.value.retry_after > timedelta(minutes=55)


@pytest.mark.parametrize("via", ["plugin", "resolver"])
def test_creds_prints_the_oidc_variables_quoted(fed: FedWorld, tmp_path: Path, via: str) -> None:
    handle = fed.resolver()
    jwt_file = write_file(tmp_path / "ci.jwt", fed.runner.jwt("A", "apply"))
    args = ["--stack", "A", "--phase", "apply", "--jwt-file", str(jwt_file), "--format", "env"]
    args += ["--role", "azsidecar-runner", "--mount", "azure", "--via", via]
    args += ["--resolver", f"127.0.0.1:{handle.port}"]
    try:
        result = CliRunner().invoke(creds, args, env=fed.runner.env(VAULT_TOKEN=None))
    finally:
        handle.stop(grace=0)
    assert result.exit_code == 0, result.output
    values = {}
    for line in result.stdout.splitlines():
        assert line.startswith("export ")
        name, value = line.removeprefix("export ").split("=", 1)
        values[name] = shlex.split(value)[0]
    assert list(values) == [
        "ARM_CLIENT_ID",
        "ARM_USE_OIDC",
        "ARM_OIDC_TOKEN",
        "ARM_TENANT_ID",
        "ARM_SUBSCRIPTION_ID",
    ]
    record = integration("I2", datetime.now(UTC))
    assert values["ARM_USE_OIDC"] == "true"
    assert values["ARM_CLIENT_ID"] == record.client_id
    assert values["ARM_TENANT_ID"] == record.tenant_id
    assert values["ARM_SUBSCRIPTION_ID"] == record.subscription_id
    _check(fed, values["ARM_OIDC_TOKEN"], "A", "apply", "I2")
    assert values["ARM_OIDC_TOKEN"] not in result.stderr


def test_exec_sets_the_oidc_variables_and_strips_inherited_credentials(
    fed: FedWorld, tmp_path: Path
) -> None:
    out = tmp_path / "seen.json"
    jwt_file = write_file(tmp_path / "ci.jwt", fed.runner.jwt("A", "plan"))
    dump = (
        "import json, os, sys; json.dump({k: v for k, v in os.environ.items()"
        " if k.startswith('ARM_')}, open(sys.argv[1], 'w'))"
    )
    argv = [
        sys.executable,
        "-c",
        "from sidecar.cli.creds import exec_; exec_()",
        *("--stack", "A", "--phase", "plan", "--jwt-file", str(jwt_file)),
        *("--role", "azsidecar-runner", "--mount", "azure"),
        *("--", sys.executable, "-c", dump, str(out)),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "ARM_"))}
    env |= {k: v for k, v in fed.runner.env().items() if v is not None}
    inherited = {
        "ARM_CLIENT_SECRET": "inherited-secret",
        "ARM_CLIENT_SECRET_FILE_PATH": "/tmp/secret",
        "ARM_CLIENT_CERTIFICATE_PATH": "/tmp/cert.pfx",
        "ARM_CLIENT_CERTIFICATE_PASSWORD": "pw",
        "ARM_USE_OIDC": "false",
        "ARM_OIDC_TOKEN": "inherited.token.value",
        "ARM_OIDC_TOKEN_FILE_PATH": "/tmp/token",
        "ARM_OIDC_REQUEST_URL": "https://example.invalid/token",
        "ARM_OIDC_REQUEST_TOKEN": "inherited-request-token",
        "ARM_ENVIRONMENT": "public",  # not a credential: kept
    }
    done = subprocess.run(
        argv, env=env | inherited, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=60, check=False
    )
    assert done.returncode == 0
    seen = json.loads(out.read_text())
    assert set(seen) == {
        "ARM_CLIENT_ID",
        "ARM_USE_OIDC",
        "ARM_OIDC_TOKEN",
        "ARM_TENANT_ID",
        "ARM_SUBSCRIPTION_ID",
        "ARM_ENVIRONMENT",
    }
    assert seen["ARM_USE_OIDC"] == "true"
    _check(fed, seen["ARM_OIDC_TOKEN"], "A", "plan", "I1")


def test_bao_agent_renders_the_token_into_the_env_file_and_the_token_file(
    fed: FedWorld, tmp_path: Path
) -> None:
    rendered, result = run_agent(fed.runner, tmp_path, "A", "apply")
    assert rendered.exists(), result.stderr[-2000:]
    assert rendered.stat().st_mode & 0o777 == 0o600
    values = dict(line.split("=", 1) for line in rendered.read_text().splitlines() if line)
    assert values["ARM_USE_OIDC"] == "true"
    assert "ARM_CLIENT_SECRET" not in values and "ARM_CLIENT_CERTIFICATE_PATH" not in values
    _check(fed, values["ARM_OIDC_TOKEN"], "A", "apply", "I2")
    token_file = tmp_path / "oidc-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    _check(fed, token_file.read_text(), "A", "apply", "I2")


def test_answers_through_the_plugin_and_resolver_agree(fed: FedWorld) -> None:
    handle = fed.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    try:
        token = str(fed.runner.login("A", "apply").token)
        via_resolver = client.resolve(token, "A", Phase.APPLY)
    finally:
        client.close()
        handle.stop(grace=0)
    via_plugin = read_plugin(fed.runner.login("A", "apply"), "azure", "A", Phase.APPLY)
    for cred in (via_resolver, via_plugin):
        assert isinstance(cred, ResolvedCredential) and cred.federated is not None
    strip = ("federated", "safe_until")
    one = {k: v for k, v in via_plugin.__dict__.items() if k not in strip}
    other = {k: v for k, v in via_resolver.__dict__.items() if k not in strip}
    assert one == other


def _request_token(
    handle: ResolverHandle, ca: Path, bearer: str | None, query: str
) -> requests.Response:
    """As hashicorp/go-azure-sdk's OIDC authorizer asks ARM_OIDC_REQUEST_URL for a token.

    ``GET`` the URL with ``audience=api://AzureADTokenExchange`` added when it has
    none, ``Authorization: Bearer <ARM_OIDC_REQUEST_TOKEN>``, ``Accept: application/json``.
    """
    url = f"https://127.0.0.1:{handle.oidc_port}/oidc/token?{query}"
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    session = requests.Session()
    session.trust_env = False
    return session.get(url, headers=headers, verify=str(ca), timeout=10)


AUDIENCE_QUERY = "audience=api%3A%2F%2FAzureADTokenExchange"


def test_the_id_token_endpoint_answers_as_azurerm_expects(
    fed: FedWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cert, key = server_certificate(tmp_path)
    handle = fed.resolver(tls=(cert, key))
    apply_token = str(fed.runner.login("A", "apply").token)
    plan_token = str(fed.runner.login("A", "plan").token)
    try:
        ok = _request_token(handle, cert, apply_token, f"stack=A&phase=apply&{AUDIENCE_QUERY}")
        assert ok.status_code == 200, ok.text
        assert ok.headers["Content-Type"] == "application/json"
        assert list(ok.json()) == ["value"]
        _check(fed, ok.json()["value"], "A", "apply", "I2")
        # Without an audience (the SDK adds one only when missing): the default.
        plain = _request_token(handle, cert, apply_token, "stack=A&phase=apply")
        assert plain.status_code == 200
        assert plain.json()["value"] != ok.json()["value"]  # a fresh token each time
        # Authorisation is the creds path's: the plan login gets nothing of apply.
        denied = _request_token(handle, cert, plan_token, f"stack=A&phase=apply&{AUDIENCE_QUERY}")
        assert denied.status_code == 403 and "value" not in denied.json()
        missing = _request_token(handle, cert, None, "stack=A&phase=apply")
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        bogus = _request_token(handle, cert, "hvs.not-a-token", "stack=A&phase=apply")
        assert bogus.status_code == 401
        other = _request_token(handle, cert, apply_token, "stack=A&phase=apply&audience=other")
        assert other.status_code == 400 and "value" not in other.json()
        bad = _request_token(handle, cert, apply_token, "stack=A&phase=deploy")
        assert bad.status_code == 400
    finally:
        handle.stop(grace=0)
    for text in (ok.json()["value"], plain.json()["value"], apply_token, plan_token):
        assert text not in caplog.text
    assert "token endpoint: stack A phase apply integration I2" in caplog.text


def test_the_id_token_endpoint_says_when_a_token_will_be_ready(
    fed: FedWorld, tmp_path: Path
) -> None:
    cert, key = server_certificate(tmp_path)
    handle = fed.resolver(tls=(cert, key), ahead=timedelta(hours=1))
    try:
        token = str(fed.runner.login("A", "apply").token)
        early = _request_token(handle, cert, token, "stack=A&phase=apply")
    finally:
        handle.stop(grace=0)
    assert early.status_code == 503
    assert int(early.headers["Retry-After"]) > 55 * 60
    answer = early.json()["answer"]
    assert answer["status"] == "not_ready" and "ready_at" in answer
    assert "value" not in early.json()


def test_the_id_token_endpoint_refuses_an_integration_handing_out_a_secret(
    fed: FedWorld, tmp_path: Path
) -> None:
    store = fed.runner.store
    found, version = store.integration("I2")
    store.save_integration(replace(found, kind=CredentialKind.SECRET), cas=version)
    store.store_secret("I2", secret("I2", "secret-of-I2", datetime.now(UTC) - timedelta(hours=1)))
    cert, key = server_certificate(tmp_path)
    handle = fed.resolver(tls=(cert, key))
    try:
        token = str(fed.runner.login("A", "apply").token)
        answer = _request_token(handle, cert, token, "stack=A&phase=apply")
    finally:
        handle.stop(grace=0)
    assert answer.status_code == 409
    assert "secret" in answer.json()["error"] and "secret-of-I2" not in answer.text
