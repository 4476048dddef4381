"""One OpenBao with the plugin at ``azure/`` and JWT auth at ``jwt/``; fresh data per test.

The JWT method trusts an RSA key made here; ``RunnerWorld.login`` signs a JWT
with ``stack``/``phase`` claims as a CI platform would and logs in with it.
Each test gets its own KV prefix, with the shipped policies rendered for it
and the plugin pointed at it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.clock import SystemClock
from sidecar.config import Config, VaultConfig
from sidecar.devstack.openbao import find_bao
from sidecar.emulator.server import EmulatorServer
from sidecar.integrations import Integrations
from sidecar.model import ConsentState, CredentialKind
from sidecar.policies import render_all, runner_role
from sidecar.resolver.server import ResolverHandle, start_resolver
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, SecretVersion, StackRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV, connect
from tests.ids import guid
from tests.plugin.conftest import MOUNT, PluginBao, start_plugin_bao
from tests.world import UserTenant, World, make_world

__all__ = ["guid"]

ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "azsidecar"


@dataclass
class RunnerBao:
    pb: PluginBao
    key: rsa.RSAPrivateKey
    accessor: str


@pytest.fixture(scope="session")
def runner_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerBao]:
    pb = start_plugin_bao(tmp_path_factory.mktemp("runner-plugins"))
    try:
        pb.install()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        client = pb.client
        client.sys.enable_auth_method("jwt", path="jwt")
        client.adapter.post(
            "/v1/auth/jwt/config", json={"jwt_validation_pubkeys": [public.decode()]}
        )
        role = runner_role()
        client.adapter.post("/v1/auth/jwt/role/azsidecar-runner", json=role)
        methods = client.adapter.get("/v1/sys/auth")
        accessor = str(methods["data"]["jwt/"]["accessor"])
        yield RunnerBao(pb, key, accessor)
    finally:
        pb.server.cleanup()


@dataclass
class RunnerWorld:
    bao: RunnerBao
    prefix: str
    store: Store
    plugin_token: str

    @property
    def addr(self) -> str:
        return self.bao.pb.server.addr

    @property
    def root(self) -> hvac.Client:
        return self.bao.pb.client

    def jwt(self, stack: str, phase: str, **extra: Any) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": "https://ci.example",
            "sub": f"{self.prefix}:{stack}:{phase}",
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now - timedelta(seconds=5),
            "exp": now + timedelta(minutes=5),
            "stack": stack,
            "phase": phase,
            "stack_phase": f"{stack}:{phase}",
            **extra,
        }
        return jwt.encode(claims, self.bao.key, algorithm="RS256")

    def login(self, stack: str, phase: str) -> hvac.Client:
        return connect(self.addr, jwt=("jwt", "azsidecar-runner", self.jwt(stack, phase)))

    def token_with(self, policy: str) -> str:
        created = self.root.auth.token.create(policies=[f"azsidecar-{policy}"], ttl="10m")
        return str(created["auth"]["client_token"])

    def resolver(self, propagation: timedelta | None = None) -> ResolverHandle:
        timing = TimingPolicy(propagation_delay=propagation or timedelta(minutes=10))
        config = Config(vault=VaultConfig(addr=self.addr, prefix=self.prefix), timing=timing)
        kv = VaultKV(connect(self.addr, token=self.plugin_token), "secret", self.prefix)
        return start_resolver(config, kv, SystemClock(), mount=MOUNT, addr="127.0.0.1:0")

    def env(self, **extra: str | None) -> dict[str, str | None]:
        """Environment for CLI runs against this world (no token unless given)."""
        return {
            "AZSIDECAR_VAULT_ADDR": self.addr,
            "AZSIDECAR_VAULT_PREFIX": self.prefix,
            "VAULT_ADDR": self.addr,
            **extra,
        }


def integration(name: str, created: datetime) -> IntegrationRecord:
    return IntegrationRecord(
        name=name,
        tenant_id=guid(f"tenant-{name}"),
        subscription_id=guid(f"sub-{name}"),
        app_object_id=guid(f"obj-{name}"),
        client_id=guid(f"app-{name}"),
        display_name=f"azsidecar {name}",
        consent=ConsentState.GRANTED,
        created=created,
    )


def secret(name: str, text: str, created: datetime) -> SecretVersion:
    return SecretVersion(
        client_id=guid(f"app-{name}"),
        secret=Sensitive(text),
        key_id=f"key-{name}",
        tenant_id=guid(f"tenant-{name}"),
        intent_id=f"intent-{name}",
        created=created,
        expires=created + timedelta(hours=24),
    )


def seed(store: Store, now: datetime) -> None:
    """Stacks A (plan I1, apply I2) and B (both I3), every secret an hour old."""
    for name in ("I1", "I2", "I3"):
        store.save_integration(integration(name, now - timedelta(days=1)), cas=0)
        store.store_secret(name, secret(name, f"secret-of-{name}", now - timedelta(hours=1)))
    store.save_stack(StackRecord(name="A", read="I1", write="I2"), cas=0)
    store.save_stack(StackRecord(name="B", read="I3", write="I3"), cas=0)


@pytest.fixture
def world(runner_bao: RunnerBao) -> RunnerWorld:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    client = runner_bao.pb.client
    values = {
        "jwt_accessor": runner_bao.accessor,
        "kv_mount": "secret",
        "prefix": prefix,
        "creds_mount": "azure",
    }
    for name, text in render_all(values).items():
        client.sys.create_or_update_policy(f"azsidecar-{name}", text)
    store = Store(VaultKV(client, "secret", prefix))
    world = RunnerWorld(runner_bao, prefix, store, "")
    world.plugin_token = world.token_with("plugin")
    client.write_data(
        "azure/config",
        data={
            "vault_addr": world.addr,
            "token": world.plugin_token,
            "prefix": prefix,
            "propagation_delay": "0",
        },
    )
    return world


def write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def run_agent(
    world: RunnerWorld,
    tmp_path: Path,
    stack: str,
    phase: str,
    extra_env: dict[str, str] | None = None,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run a real ``bao agent`` with the shipped config and template, once.

    Returns the env file it renders (which may not exist if it failed) and the process.
    """
    shipped = ROOT / "vault-config"
    config = (shipped / "agent.hcl").read_text()
    config = config.replace("https://vault.internal:8200", world.addr)
    config = config.replace("/etc/azsidecar/agent/", f"{shipped}/")
    config = config.replace("/run/azsidecar/", f"{tmp_path}/")
    config_file = write_file(tmp_path / "agent.hcl", config + "\nexit_after_auth = true\n")
    write_file(tmp_path / "ci.jwt", world.jwt(stack, phase))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env |= {"AZSIDECAR_STACK": stack, "AZSIDECAR_PHASE": phase, "AZSIDECAR_MOUNT": MOUNT}
    env |= {"AZSIDECAR_CERTIFICATE_FILE": str(tmp_path / "client-certificate.pfx")}
    env |= extra_env or {}
    result = subprocess.run(
        [find_bao(), "agent", f"-config={config_file}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return tmp_path / "arm.env", result


def attached_integration(
    world: RunnerWorld, emulator: EmulatorServer, kind: CredentialKind = CredentialKind.SECRET
) -> tuple[World, IntegrationRecord, UserTenant]:
    """The product over this OpenBao and ``emulator``: an integration ``web`` of ``kind``
    made through Graph, consented in a new user tenant, both phases of stack ``A``."""
    product = make_world(
        emulator, world.store, world.addr, world.bao.pb.server.root_token, start=None
    )
    rt = product.runtime
    service = Integrations(
        rt.store,
        rt.graph(),
        rt.clock,
        rt.config.timing,
        redirect_uri=rt.config.azure.consent_redirect_uri,
    )
    tenant = product.add_tenant()
    record = service.create("web", tenant.tenant_id, tenant.subscription_id, kind)
    product.consent_and_grant(record.client_id, tenant)
    world.store.save_stack(StackRecord(name="A", read="web", write="web"), cas=0)
    return product, record, tenant
