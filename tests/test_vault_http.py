"""The runner's standard-library Vault transport answers as the hvac one does (issue 17).

Both carry :mod:`sidecar.vault_transport`'s requests for :class:`VaultLogin`;
the runner helper uses :class:`HttpTransport` so that it need not import hvac
and requests. Same answers, same error translation, no secret in an error.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import hvac.utils
import pytest

from sidecar import vault_transport as transports
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.emulator import EmulatorServer
from sidecar.errors import (
    SidecarError,
    VaultError,
    VaultForbidden,
    VaultLoginError,
    VaultNotFound,
    VaultUnavailable,
)
from sidecar.vault import HvacTransport, PathRefusal, new_client, translate_errors
from sidecar.vault_http import HttpTransport, _Refused, _translate
from sidecar.vault_login import LoginSpec, VaultLogin
from sidecar.vault_transport import VaultTransport


def _both(addr: str, token: str | None) -> list[VaultTransport]:
    light = HttpTransport(addr)
    heavy = HvacTransport(new_client(addr))
    for transport in (light, heavy):
        transport.token = token
    return [light, heavy]


def test_both_transports_read_the_token_alike(openbao: OpenBaoDevServer) -> None:
    light, heavy = _both(openbao.addr, openbao.root_token)
    assert isinstance(light, VaultTransport) and isinstance(heavy, VaultTransport)
    assert light.url == heavy.url == openbao.addr
    mine, theirs = transports.lookup_self(light), transports.lookup_self(heavy)
    assert mine["data"]["policies"] == theirs["data"]["policies"] == ["root"]
    assert light.read_data("auth/token/lookup-self") == heavy.read_data("auth/token/lookup-self")


@pytest.mark.parametrize("which", [0, 1], ids=["http", "hvac"])
def test_errors_translate_alike(openbao: OpenBaoDevServer, which: int) -> None:
    bogus = f"hvs.{uuid.uuid4().hex}"
    transport = _both(openbao.addr, bogus)[which]
    with pytest.raises(VaultForbidden) as denied:
        transports.lookup_self(transport)
    assert denied.value.status == 403 and bogus not in str(denied.value)
    with pytest.raises(VaultForbidden):
        transports.renew_self(transport, "60s")

    transport.token = openbao.root_token
    missing = f"secret/data/nothing-{uuid.uuid4().hex[:8]}"
    assert transport.read_data(missing) is None
    with pytest.raises(VaultNotFound) as absent:
        transport.get(missing)
    assert absent.value.status == 404
    assert transport.read_data(f"nowhere-{uuid.uuid4().hex[:8]}/x") is None  # no handler

    refused = transport.read_data("sys/wrapping/lookup")  # a 400: no wrapping token given
    assert refused == PathRefusal(["wrapping token is not valid or does not exist"], None)
    with pytest.raises(VaultError) as rejected:
        transport.get("sys/wrapping/lookup")
    assert rejected.value.status == 400 and "Vault rejected the request" in str(rejected.value)


def test_the_same_statuses_give_the_same_errors() -> None:
    """Each status hvac raises for, through translate_errors, and through the light one."""
    for status in (400, 401, 403, 404, 405, 412, 429, 500, 501, 502, 503, 504):
        for errors in (["permission denied"], ["check-and-set parameter did not match"]):
            with pytest.raises(SidecarError) as heavy, translate_errors("p/q"):
                hvac.utils.raise_for_error("GET", "http://v/v1/p/q", status, errors=errors)
            light = _translate(_Refused(status, {"errors": errors}), "p/q")
            assert type(light) is type(heavy.value), status
            assert str(light) == str(heavy.value), status
            assert isinstance(light, VaultError) and light.status == heavy.value.status


def test_an_unreachable_vault_is_unavailable() -> None:
    transport = HttpTransport("http://127.0.0.1:9")
    with pytest.raises(VaultUnavailable, match="cannot reach Vault"):
        transport.get("auth/token/lookup-self")
    with pytest.raises(VaultUnavailable, match="cannot reach Vault"):
        transport.read_data("azure/creds/A/plan")
    with pytest.raises(VaultError, match="http:// or https://"):
        HttpTransport("file:///etc/passwd")


def test_tls_is_verified_against_the_given_ca(emulator: EmulatorServer) -> None:
    """Against an HTTPS server (the emulator's): its CA is trusted, no CA is not."""
    trusted = HttpTransport(emulator.base_url, ca_cert=str(emulator.ca_path))
    with pytest.raises(VaultError) as answered:  # it answers: not Vault, but TLS held
        trusted.get("sys/health")
    assert not isinstance(answered.value, VaultUnavailable)
    untrusted = HttpTransport(emulator.base_url)
    with pytest.raises(VaultUnavailable, match="cannot reach Vault"):
        untrusted.get("sys/health")


def test_a_refused_login_on_the_light_transport_keeps_the_secret_out(
    openbao: OpenBaoDevServer, tmp_path: Path
) -> None:
    root = new_client(openbao.addr)
    root.token = openbao.root_token
    mount = f"approle-{uuid.uuid4().hex[:6]}"
    root.sys.enable_auth_method("approle", path=mount)
    secret = f"s-{uuid.uuid4()}"
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret)
    spec = LoginSpec(
        addr=openbao.addr,
        method="approle",
        role_id="no-such-role",
        secret_id_file=str(secret_file),
        approle_mount=mount,
    )
    login = VaultLogin(spec, transport=HttpTransport(openbao.addr), name="runner")
    with pytest.raises(VaultLoginError) as refused:
        login.open()
    assert "AppRole login refused" in str(refused.value)
    assert secret not in str(refused.value) and secret not in repr(refused.value.__cause__)
    with pytest.raises(TypeError, match="no hvac client"):
        _ = login.client


@pytest.mark.parametrize("which", [0, 1], ids=["http", "hvac"])
def test_a_hostile_path_reaches_vault_encoded(openbao: OpenBaoDevServer, which: int) -> None:
    """A mount or name with bytes outside ASCII (``--mount $'\\x80'``) is percent-encoded,
    as requests does, so Vault answers it: no client-side encoding crash."""
    transport = _both(openbao.addr, openbao.root_token)[which]
    answer = transport.read_data("\x80/creds/ok/plan")  # Vault refuses the name: a 400
    assert answer is None or isinstance(answer, PathRefusal)
    with pytest.raises(VaultError):
        transport.get("secret/data/\u00e9t\u00e9 ?#x")
