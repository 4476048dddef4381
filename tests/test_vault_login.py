"""The login life cycle's edges against a real OpenBao: bad files, refused logins, no secrets."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import hvac
import pytest

from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.errors import VaultLoginError
from sidecar.vault_http import HttpTransport
from sidecar.vault_login import LoginSpec, VaultLogin
from sidecar.vault_transport import PathRefusal


def _token(root: hvac.Client, **extra: object) -> str:
    created = root.auth.token.create(policies=["default"], ttl="10m", **extra)
    return str(created["auth"]["client_token"])


def test_a_refused_new_token_file_keeps_the_old_token(
    openbao: OpenBaoDevServer, root_client: hvac.Client, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    good = _token(root_client)
    path.write_text(good)
    login = VaultLogin(LoginSpec(addr=openbao.addr, token_file=str(path)))
    login.login()
    path.write_text("s.not-a-token-anyone-issued")
    login.maintain()
    assert login.client.token == good
    assert "Vault denied the request" in login.problem
    assert "not-a-token" not in login.problem
    newer = _token(root_client)
    path.write_text(newer)
    login.maintain()
    assert login.client.token == newer
    assert (login.problem, login.reloads) == ("", 1)


def test_a_refused_approle_login_names_the_file_and_not_the_secret(
    openbao: OpenBaoDevServer, root_client: hvac.Client, tmp_path: Path
) -> None:
    methods = root_client.sys.list_auth_methods()  # type: ignore[no-untyped-call]
    if "approle/" not in methods.get("data", methods):
        root_client.sys.enable_auth_method("approle")
    root_client.auth.approle.create_or_update_approle("edges", token_policies=["default"])
    role_id = root_client.auth.approle.read_role_id("edges")["data"]["role_id"]
    path = tmp_path / "secret-id"
    path.write_text("00000000-dead-beef-0000-000000000000")
    login = VaultLogin(
        LoginSpec(addr=openbao.addr, method="approle", role_id=role_id, secret_id_file=str(path))
    )
    with pytest.raises(VaultLoginError) as refused:
        login.login()
    text = str(refused.value)
    assert "AppRole login refused" in text and "vault.secret_id_file" in text
    assert "dead-beef" not in text


@pytest.mark.parametrize(("content", "says"), [(None, "cannot read"), ("", "is empty")])
def test_an_unusable_jwt_file_says_which_setting(
    openbao: OpenBaoDevServer, tmp_path: Path, content: str | None, says: str
) -> None:
    path = tmp_path / "ci.jwt"
    if content is not None:
        path.write_text(content)
    login = VaultLogin(LoginSpec(addr=openbao.addr, method="jwt", jwt_role="r", jwt_file=str(path)))
    with pytest.raises(VaultLoginError, match=says) as failed:
        login.login()
    assert "vault.jwt_file" in str(failed.value)


class _Counting:
    """An HttpTransport that records the paths it was asked for (Vault stays real)."""

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def token(self) -> str | None:
        return self.inner.token

    @token.setter
    def token(self, value: str | None) -> None:
        self.inner.token = value

    def get(self, path: str) -> dict[str, Any]:
        self.paths.append(path)
        return self.inner.get(path)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.paths.append(path)
        return self.inner.post(path, body)

    def read_data(self, path: str) -> dict[str, Any] | PathRefusal | None:
        self.paths.append(path)
        return self.inner.read_data(path)


@pytest.mark.parametrize("look_up", [True, False])
def test_a_short_lived_login_takes_the_token_s_ttl_from_the_login_answer(
    openbao: OpenBaoDevServer, root_client: hvac.Client, look_up: bool
) -> None:
    """Issue 17: the runner helper (``look_up=False``) makes one request to log in, not two,
    and knows the same of its token as a ``lookup-self`` would have told it."""
    methods = root_client.sys.list_auth_methods()  # type: ignore[no-untyped-call]
    if "approle/" not in methods.get("data", methods):
        root_client.sys.enable_auth_method("approle")
    root_client.auth.approle.create_or_update_approle(
        "short", token_policies=["default"], token_ttl="7m", token_max_ttl="1h"
    )
    role_id = root_client.auth.approle.read_role_id("short")["data"]["role_id"]
    secret_id = root_client.auth.approle.generate_secret_id("short")["data"]["secret_id"]
    transport = _Counting(HttpTransport(openbao.addr))
    login = VaultLogin(
        LoginSpec(addr=openbao.addr, method="approle", role_id=role_id, secret_id=secret_id),
        transport=transport,
    )
    login.open(look_up=look_up)
    lookup = "auth/token/lookup-self"
    expected = ["auth/approle/login", lookup] if look_up else ["auth/approle/login"]
    assert transport.paths == expected
    assert login.view is not None and login.view.renewable
    if look_up:
        # lookup-self answers the time left, read a moment after the login (a second
        # or two on a loaded machine); the login answer's is the whole 7 minutes.
        assert timedelta(minutes=7) - timedelta(seconds=10) <= login.view.ttl
        assert login.view.ttl <= timedelta(minutes=7)
    else:
        assert login.view.ttl == timedelta(minutes=7)
    assert login.status().problem == "" and login.logins == 1
    seen = transport.inner.get(lookup)["data"]
    assert int(seen["creation_ttl"]) == login._creation_ttl.total_seconds() == 420
