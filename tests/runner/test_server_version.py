"""A `+` stack claim never widens the runner policy (issue 16, point 6).

Servers before the identity-template wildcard guard (OpenBao 2.6.1, GH-3401;
Vault about 1.20) render a `stack` claim of `+` as a path matching every
stack. `doctor` and `jwt-setup.sh` check the version; the login check of the
plugin and the resolver refuses such a token on any version.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.devstack.openbao import OpenBaoDevServer, find_bao
from sidecar.doctor import template_wildcard_guard
from sidecar.errors import VaultError
from sidecar.login_scope import scope_refusal
from sidecar.model import Phase
from sidecar.resolver.client import ResolverClient
from sidecar.runner.source import read_plugin
from sidecar.server_version import wildcard_guard
from sidecar.vault import connect
from tests.runner.conftest import ROOT, RunnerWorld, seed, write_file


@pytest.mark.parametrize(
    ("version", "guarded"),
    [
        ("2.7.2", True),
        ("v2.6.1", True),
        ("2.6.0", False),
        ("2.5.3", False),
        ("1.20.0", True),
        ("1.19.5+ent", False),
        ("", None),
        ("dev", None),
    ],
)
def test_which_versions_guard_template_values(version: str, guarded: bool | None) -> None:
    assert wildcard_guard(version) is guarded


def test_doctor_reports_the_guard_of_the_real_server(world: RunnerWorld) -> None:
    check = template_wildcard_guard(world.root)
    assert check.status == "ok", check.line
    assert "rejects wildcards" in check.line


def test_a_plus_stack_claim_reads_nothing(world: RunnerWorld) -> None:
    seed(world.store, datetime.now(UTC))
    handle = world.resolver()
    client = ResolverClient(f"127.0.0.1:{handle.port}", timeout=10)
    try:
        try:
            token = connect(world.addr, jwt=("jwt", "azsidecar-runner", world.jwt("+", "plan")))
        except VaultError:
            return  # refused at login: nothing to read with
        # OpenBao 2.7.2's guard answers every request of such a token with 400
        # "Forbidden"; on older servers the plugin's and the resolver's login check
        # (test_shared_login.py) refuses it with 403.
        for stack in ("A", "B"):
            with pytest.raises(VaultError):
                read_plugin(token, "azure", stack, Phase.PLAN)
            with pytest.raises(VaultError):
                client.resolve(str(token.token), stack, Phase.PLAN)
    finally:
        client.close()
        handle.stop(grace=0)


# -- jwt-setup.sh against a real server --------------------------------------------------


@pytest.fixture
def fresh_bao() -> Iterator[OpenBaoDevServer]:
    server = OpenBaoDevServer().start()
    yield server
    server.cleanup()


def _setup_env(server: OpenBaoDevServer, tmp_path: Path, bao: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pubkey = write_file(tmp_path / "ci.pub", public.decode())
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {
        "PATH": path,
        "HOME": str(tmp_path),
        "BAO": bao,
        "BAO_ADDR": server.addr,
        "BAO_TOKEN": server.root_token,
        "JWT_PUBKEY_FILE": str(pubkey),
    }


def _old_bao(tmp_path: Path) -> str:
    """The real `bao`, except that `status` reports a version before the guard."""
    wrapper = tmp_path / "old-bao"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = status ]; then\n'
        f'  "{find_bao()}" "$@" | sed \'s/"version": "[^"]*"/"version": "2.5.0"/\'\n'
        "  exit 0\n"
        "fi\n"
        f'exec "{find_bao()}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def _run_setup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "vault-config" / "jwt-setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_jwt_setup_refuses_a_server_without_the_guard(
    fresh_bao: OpenBaoDevServer, tmp_path: Path
) -> None:
    env = _setup_env(fresh_bao, tmp_path, _old_bao(tmp_path))
    refused = _run_setup(env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "server version 2.5.0 does not reject wildcards" in refused.stderr
    client = connect(fresh_bao.addr, token=fresh_bao.root_token)
    assert "jwt/" not in client.sys.list_auth_methods()["data"]  # type: ignore[no-untyped-call]
    allowed = _run_setup(env | {"ALLOW_UNGUARDED_SERVER": "1"})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "going on with an unguarded server" in allowed.stderr


def test_jwt_setup_configures_a_guarded_server(fresh_bao: OpenBaoDevServer, tmp_path: Path) -> None:
    result = _run_setup(_setup_env(fresh_bao, tmp_path, find_bao()))
    assert result.returncode == 0, result.stdout + result.stderr
    client = connect(fresh_bao.addr, token=fresh_bao.root_token)
    role = client.adapter.get("/v1/auth/jwt/role/azsidecar-runner")["data"]
    assert role["user_claim"] == "stack_phase"
    runner = client.sys.read_policy("azsidecar-runner")["data"]["rules"]  # type: ignore[no-untyped-call]
    assert 'path "azsidecar/creds/' in runner


@pytest.mark.parametrize(
    ("metadata", "stack", "phase", "admitted"),
    [
        ({"stack": "A", "phase": "plan", "role": "r"}, "A", Phase.PLAN, True),
        ({"stack": "+", "phase": "plan"}, "A", Phase.PLAN, False),  # older servers' wildcard
        ({"stack": "*", "phase": "plan"}, "B", Phase.PLAN, False),
        ({"stack": "A", "phase": "+"}, "A", Phase.APPLY, False),
        ({"stack": "A", "phase": "plan"}, "A", Phase.APPLY, False),
        ({"stack": "A"}, "A", Phase.PLAN, False),  # half a login names no phase
        ({"role_name": "ci-a-plan"}, "A", Phase.PLAN, True),  # AppRole: the policy decides
        ({}, "B", Phase.APPLY, True),
    ],
)
def test_the_login_check_refuses_what_the_login_does_not_name(
    metadata: dict[str, str], stack: str, phase: Phase, admitted: bool
) -> None:
    assert (scope_refusal(metadata, stack, phase) is None) is admitted
