"""`azsidecar doctor` says whether the Vault token will outlive the process."""

from __future__ import annotations

import time
from pathlib import Path

from sidecar.doctor import token_lifetime
from sidecar.vault_login import LoginSpec, VaultLogin
from tests.runner.conftest import RunnerWorld
from tests.runner.lifecycle import Credentials


def test_a_token_that_cannot_be_renewed_is_a_warning(world: RunnerWorld) -> None:
    created = world.root.auth.token.create(policies=["default"], ttl="20m", renewable=False)
    login = VaultLogin(LoginSpec(addr=world.addr, token=created["auth"]["client_token"]))
    login.login()
    check = token_lifetime(login)
    assert check.status == "warn"
    assert "cannot be renewed" in check.line and "vault.token_file" in check.line
    assert "AppRole or JWT" in check.fix


def test_a_renewable_token_and_an_approle_login_pass(world: RunnerWorld, tmp_path: Path) -> None:
    created = world.root.auth.token.create(policies=["default"], ttl="20m", renewable=True)
    login = VaultLogin(LoginSpec(addr=world.addr, token=created["auth"]["client_token"]))
    login.login()
    assert token_lifetime(login).status == "ok"
    files = Credentials(world, tmp_path, "approle", 60, 120).add("doctor", "plugin")
    approle = VaultLogin(
        LoginSpec(
            addr=world.addr, method="approle", role_id=files.role_id, secret_id_file=str(files.path)
        )
    )
    approle.login()
    check = token_lifetime(approle)
    assert check.status == "ok" and "new login" in check.line


def test_the_shipped_policies_let_a_token_without_the_default_policy_renew_itself(
    world: RunnerWorld,
) -> None:
    for policy in ("sidecar", "plugin"):
        created = world.root.auth.token.create(
            policies=[f"azsidecar-{policy}"], ttl="20m", no_default_policy=True, renewable=True
        )
        login = VaultLogin(LoginSpec(addr=world.addr, token=created["auth"]["client_token"]))
        login.login()
        assert login.view is not None and login.view.renewable
        login._renew()
        assert login.renewals == 1 and login.problem == ""


def test_a_plain_token_near_its_end_is_reported_before_it_expires(world: RunnerWorld) -> None:
    created = world.root.auth.token.create(policies=["default"], ttl="3s", renewable=False)
    login = VaultLogin(LoginSpec(addr=world.addr, token=created["auth"]["client_token"]))
    login.login()
    assert login.status().problem == ""
    deadline = time.monotonic() + 10
    while not login.status().problem and time.monotonic() < deadline:
        time.sleep(0.1)
    status = login.status()
    remaining = status.remaining(status.checked_at)
    assert "cannot be renewed" in status.problem and "token file" in status.problem
    assert remaining is not None and remaining > 0  # reported while it still works
    assert token_lifetime(login).status == "fail"
