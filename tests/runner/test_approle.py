"""The runner helper signs in with AppRole (ids from files, never argv)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from sidecar.cli.creds import creds
from tests.runner.conftest import RunnerWorld, seed, write_file


def test_creds_with_approle_reads_only_its_own_path(world: RunnerWorld, tmp_path: Path) -> None:
    seed(world.store, datetime.now(UTC))
    root = world.root
    mounts = root.adapter.get("/v1/sys/auth")
    if "approle/" not in mounts.get("data", mounts):
        root.sys.enable_auth_method("approle")
    # AppRole metadata cannot be templated per run: one policy per stack and phase.
    policy = f"approle-{world.prefix}"
    root.sys.create_or_update_policy(
        policy, 'path "azure/creds/A/plan" { capabilities = ["read"] }'
    )
    role = f"runner-{world.prefix}"
    root.auth.approle.create_or_update_approle(role, token_policies=[policy])
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    args = [
        "--role-id-file",
        str(write_file(tmp_path / "role-id", role_id)),
        "--secret-id-file",
        str(write_file(tmp_path / "secret-id", secret_id)),
        "--format",
        "json",
        "--mount",
        "azure",
    ]
    env = world.env(VAULT_TOKEN=None)
    ok = CliRunner().invoke(creds, ["--stack", "A", "--phase", "plan", *args], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["client_secret"] == "secret-of-I1"
    denied = CliRunner().invoke(creds, ["--stack", "A", "--phase", "apply", *args], env=env)
    assert denied.exit_code == 1
    assert "secret-of-I2" not in denied.output
