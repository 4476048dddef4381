"""The issuer against a real OpenBao: Transit signs, PyJWT verifies against the exported JWKS.

The issuer's clock is a :class:`ManualClock` moved to times measured from
Transit's own ``creation_time`` of each version (Transit stamps versions
with the real time), so a day of publication passes in no time while the
planner compares the same instants Transit recorded.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import hvac.exceptions
import jwt
import pytest
from click.testing import CliRunner

from sidecar.cli.main import main
from sidecar.clock import AcceleratedClock, ManualClock, SystemClock
from sidecar.config import load_config
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.errors import (
    ConfigError,
    InputError,
    NotReadyError,
    VaultError,
    VaultForbidden,
    VaultNotFound,
)
from sidecar.issuer import documents
from sidecar.issuer.documents import IssuerIdentity, TokenRequest
from sidecar.issuer.export import Exported, export
from sidecar.issuer.planner import IssuerPolicy
from sidecar.issuer.signing import IssuedToken, Issuer, public_key
from sidecar.policies import render_all
from sidecar.transit import Signature, Transit, _signature
from sidecar.vault import connect

IDENTITY = IssuerIdentity("https://issuer.example.com/azsidecar")
POLICY = IssuerPolicy()  # publish 24 h ahead, tokens 10 min, skew 5 min, rotate every 30 d
AHEAD = POLICY.publish_ahead
TAIL = POLICY.token_lifetime + POLICY.clock_skew
REQUEST = TokenRequest(subject="azsidecar:web:plan", stack="web", phase="plan", integration="w")
VALUES = {"jwt_accessor": "acc", "kv_mount": "secret", "prefix": "p", "creds_mount": "azure"}


@pytest.fixture
def transit(root_client: hvac.Client) -> Iterator[Transit]:
    """Transit enabled at a fresh mount."""
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    yield Transit(root_client, mount)
    root_client.adapter.delete(f"/v1/sys/mounts/{mount}")


def make_issuer(transit: Transit, start: datetime, key: str = "issuer") -> Issuer:
    return Issuer(transit, IDENTITY, ManualClock(start), key_name=key, policy=POLICY)


def clock(issuer: Issuer) -> ManualClock:
    assert isinstance(issuer.clock, ManualClock)
    return issuer.clock


def verify(token: IssuedToken, jwks_file: Path, at: datetime) -> dict[str, object]:
    """PyJWT's verdict on ``token`` with the keys of an exported JWKS file, at time ``at``."""
    text = token.token.reveal()
    keys = jwt.PyJWKSet.from_dict(json.loads(jwks_file.read_text()))
    kid = jwt.get_unverified_header(text)["kid"]
    claims: dict[str, object] = jwt.decode(
        text,
        keys[kid].key,
        algorithms=["RS256"],
        audience="api://AzureADTokenExchange",
        issuer=IDENTITY.url,
        # PyJWT reads the wall clock; the times are checked against the issuer's clock below.
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["nbf"] == claims["iat"] == int(at.timestamp())
    assert claims["exp"] == int(at.timestamp()) + int(POLICY.token_lifetime.total_seconds())
    return claims


def exported_kids(path: Path) -> list[str]:
    return [k["kid"] for k in json.loads(path.read_text())["keys"]]


def matches_the_plan(done: Exported, transit: Transit) -> bool:
    """The exported JWKS holds exactly the planner's published versions, newest first."""
    key = transit.read_key("issuer")
    expected = [
        public_key(v, key.versions[v].public_key_pem, "issuer").kid
        for v in sorted(done.plan.published, reverse=True)
    ]
    return exported_kids(done.jwks) == expected == list(done.kids)


def test_ensure_key_creates_an_rsa_2048_key_once(transit: Transit) -> None:
    first = transit.ensure_key("issuer")
    again = transit.ensure_key("issuer")
    assert first.type == again.type == "rsa-2048"
    assert sorted(first.versions) == sorted(again.versions) == [1]
    assert first.versions[1].created == again.versions[1].created
    assert "BEGIN PUBLIC KEY" in first.versions[1].public_key_pem


def test_ensure_key_refuses_a_key_of_another_type(
    transit: Transit, root_client: hvac.Client
) -> None:
    root_client.adapter.post(f"/v1/{transit.mount}/keys/aes", json={"type": "aes256-gcm96"})
    with pytest.raises(VaultError, match="not rsa-2048: choose another key name"):
        transit.ensure_key("aes")


def test_a_token_signed_in_transit_verifies_against_the_exported_jwks(
    transit: Transit, tmp_path: Path
) -> None:
    created = transit.ensure_key("issuer").versions[1].created
    issuer = make_issuer(transit, created)
    with pytest.raises(NotReadyError) as early:
        issuer.sign_token(REQUEST)
    assert early.value.ready_at == created + AHEAD

    clock(issuer).set(created + AHEAD)
    token = issuer.sign_token(REQUEST)
    done = export(issuer, tmp_path / "site")
    assert done.jwks == tmp_path / "site" / ".well-known" / "jwks.json"
    claims = verify(token, done.jwks, created + AHEAD)
    assert claims["sub"] == "azsidecar:web:plan"
    assert (claims["stack"], claims["phase"], claims["integration"]) == ("web", "plan", "w")
    assert claims["iss"] == IDENTITY.url
    assert len(str(claims["jti"])) == 32
    header = jwt.get_unverified_header(token.token.reveal())
    assert header == {"alg": "RS256", "kid": token.kid, "typ": "JWT"}
    assert json.loads(done.discovery.read_text()) == documents.discovery(IDENTITY)
    assert token.expires_at == created.replace(microsecond=0) + AHEAD + POLICY.token_lifetime


def test_rotation_publishes_ahead_and_retires_after_the_last_token(
    transit: Transit, tmp_path: Path
) -> None:
    """One rotation, step by step, with the JWKS exported at each step."""
    issuer = make_issuer(transit, datetime.now().astimezone())
    issuer.maintain()
    c1 = transit.read_key("issuer").versions[1].created
    clock(issuer).set(max(clock(issuer).now(), c1 + AHEAD))
    old = issuer.sign_token(REQUEST)
    assert old.version == 1

    c2 = transit.rotate("issuer").versions[2].created
    # v2 is published at once, but signs only publish_ahead after its creation.
    step = export(issuer, tmp_path / "a")
    assert matches_the_plan(step, transit)
    new_kid = documents.PublicKey(2, *_numbers(transit, 2)).kid
    assert new_kid in exported_kids(step.jwks)
    assert step.plan.published == (1, 2)
    clock(issuer).set(max(clock(issuer).now(), c2 + AHEAD - timedelta(seconds=1)))
    assert issuer.sign_token(REQUEST).version == 1

    clock(issuer).set(c2 + AHEAD)
    new = issuer.sign_token(REQUEST)
    assert (new.version, new.kid) == (2, new_kid)
    step = export(issuer, tmp_path / "b")
    assert matches_the_plan(step, transit)
    verify(new, step.jwks, c2 + AHEAD)
    assert old.kid in exported_kids(step.jwks)  # v1's tokens still live

    clock(issuer).set(c2 + AHEAD + TAIL - timedelta(seconds=1))
    assert issuer.maintain().published == (1, 2)
    assert sorted(transit.read_key("issuer").versions) == [1, 2]

    clock(issuer).set(c2 + AHEAD + TAIL)
    assert old.expires_at + POLICY.clock_skew <= clock(issuer).now()
    assert issuer.maintain().published == (2,)
    assert sorted(transit.read_key("issuer").versions) == [2]
    step = export(issuer, tmp_path / "c")
    assert matches_the_plan(step, transit)
    assert exported_kids(step.jwks) == [new_kid]
    assert step.plan.published == (2,)
    with pytest.raises(VaultError, match="no such version"):
        transit.sign("issuer", 1, b"data")


def test_maintain_creates_the_key_and_rotates_when_due(transit: Transit) -> None:
    # Real time on both sides, so Transit's stamp of the rotated version agrees with ours.
    quick = IssuerPolicy(publish_ahead=timedelta(seconds=1), rotation_period=timedelta(seconds=2))
    issuer = Issuer(transit, IDENTITY, SystemClock(), key_name="fresh", policy=quick)
    assert issuer.maintain().published == (1,)
    assert issuer.maintain().rotate is False
    created = transit.read_key("fresh").versions[1].created
    time.sleep(max(0.0, (created + quick.rotation_period - datetime.now(UTC)).total_seconds()))
    plan = issuer.maintain()
    assert sorted(transit.read_key("fresh").versions) == [1, 2]
    assert plan.published == (1, 2)
    assert plan.signer == 1  # v2 was created just now: published, not yet signing
    assert issuer.maintain().published == (1, 2)  # no second rotation


def test_an_accelerated_clock_reads_transit_stamps_in_its_own_time(transit: Transit) -> None:
    """A version made a moment ago is a moment old in emulated time too, not hours."""
    fast = AcceleratedClock(datetime(2030, 1, 1, tzinfo=UTC), factor=3600.0)
    issuer = Issuer(transit, IDENTITY, fast, key_name="fast", policy=POLICY)
    plan = issuer.maintain()
    assert plan.signer is None  # 24 emulated hours are 24 real seconds away
    assert plan.ready_at is not None
    assert timedelta(hours=23) < plan.ready_at - fast.now() <= AHEAD


def _numbers(transit: Transit, version: int) -> tuple[int, int]:
    key = public_key(version, transit.read_key("issuer").versions[version].public_key_pem, "k")
    return key.n, key.e


def test_an_unknown_key_says_how_to_create_it(transit: Transit) -> None:
    issuer = make_issuer(transit, datetime.now().astimezone(), key="missing")
    with pytest.raises(VaultNotFound, match=r"no Transit key 'missing'.*azsidecar issuer init"):
        issuer.sign_token(REQUEST)
    with pytest.raises(VaultNotFound, match="no Transit key 'missing'"):
        transit.sign("missing", 1, b"data")


def test_transit_not_mounted_says_how_to_enable_it(root_client: hvac.Client) -> None:
    issuer = make_issuer(Transit(root_client, "nowhere"), datetime.now().astimezone())
    message = re.escape(
        "Transit is not mounted at nowhere/: enable it with "
        "`bao secrets enable -path=nowhere transit`"
    )
    with pytest.raises(VaultNotFound, match=message):
        issuer.jwks()
    with pytest.raises(VaultNotFound, match=message):
        issuer.maintain()


def test_a_token_may_not_outlive_the_policy(transit: Transit) -> None:
    created = transit.ensure_key("issuer").versions[1].created
    issuer = make_issuer(transit, created + AHEAD)
    with pytest.raises(InputError, match="token_lifetime"):
        issuer.sign_token(REQUEST, lifetime=POLICY.token_lifetime + timedelta(seconds=1))


def test_the_issuer_policy_grants_exactly_what_the_issuer_does(
    transit: Transit, root_client: hvac.Client, openbao: OpenBaoDevServer
) -> None:
    text = render_all({**VALUES, "transit_mount": transit.mount, "issuer_key": "issuer"})["issuer"]
    name = f"issuer-{transit.mount}"
    root_client.sys.create_or_update_policy(name, text)
    created = root_client.auth.token.create(policies=[name], no_default_policy=True, ttl="10m")
    limited = Transit(connect(openbao.addr, token=created["auth"]["client_token"]), transit.mount)

    start = datetime.now().astimezone()
    issuer = Issuer(limited, IDENTITY, ManualClock(start), key_name="issuer", policy=POLICY)
    issuer.maintain()  # creates the key
    key = limited.rotate("issuer")
    clock(issuer).set(max(start, key.versions[2].created) + AHEAD + TAIL)
    assert issuer.maintain().published == (2,)  # retires v1 through keys/<key>/config
    assert issuer.sign_token(REQUEST).version == 2
    assert len(issuer.jwks()["keys"]) == 1

    root_client.adapter.post(f"/v1/{transit.mount}/keys/other", json={"type": "rsa-2048"})
    with pytest.raises(VaultForbidden):
        limited.read_key("other")
    with pytest.raises(VaultForbidden):
        limited.ensure_key("other")
    with pytest.raises(hvac.exceptions.Forbidden):  # no export, not even of the public key
        limited.client.adapter.get(f"/v1/{transit.mount}/export/public-key/issuer")


def test_no_signature_or_key_material_in_logs(
    transit: Transit, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer = make_issuer(transit, datetime.now().astimezone())
    issuer.maintain()
    created = transit.rotate("issuer").versions[2].created
    clock(issuer).set(max(clock(issuer).now(), created + AHEAD))
    token = issuer.sign_token(REQUEST)
    export(issuer, tmp_path / "site")
    signature = token.token.reveal().rsplit(".", 1)[1]
    pems = [v.public_key_pem for v in transit.read_key("issuer").versions.values()]
    assert "signed a token for azsidecar:web:plan with key version 2" in caplog.text
    assert signature not in caplog.text
    assert token.token.reveal() not in caplog.text
    for pem in pems:
        for line in pem.splitlines()[1:-1]:
            assert line not in caplog.text
    assert token.token.reveal() not in repr(token)


def test_cli_export_writes_the_site_and_init_creates_the_key(
    openbao: OpenBaoDevServer, transit: Transit, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[vault]\naddr = "{openbao.addr}"\n'
        f'[issuer]\nurl = "{IDENTITY.url}"\ntransit_mount = "{transit.mount}"\nkey = "cli"\n'
    )
    env = {"VAULT_TOKEN": openbao.root_token, "AZSIDECAR_CONFIG": str(config)}
    runner = CliRunner()
    result = runner.invoke(main, ["issuer", "init"], env=env)
    assert result.exit_code == 0, result.output
    assert "type rsa-2048, versions 1" in result.output

    site = tmp_path / "site"
    result = runner.invoke(main, ["issuer", "export", "--out", str(site)], env=env)
    assert result.exit_code == 0, result.output
    assert "no key version signs yet" in result.output
    assert json.loads((site / ".well-known/openid-configuration").read_text()) == (
        documents.discovery(IDENTITY)
    )
    assert len(exported_kids(site / ".well-known/jwks.json")) == 1

    elsewhere = ["--jwks-uri", "https://elsewhere.example.com/jwks", "--out", str(site)]
    result = runner.invoke(main, ["issuer", "export", *elsewhere], env=env)
    assert result.exit_code == 1
    assert "is not below the issuer URL" in result.output

    short = ["--publish-ahead", "40d", "--out", str(site)]
    result = runner.invoke(main, ["issuer", "export", *short], env=env)
    assert result.exit_code == 1
    assert "issuer.rotation_period: must be longer than issuer.publish_ahead" in result.output

    result = runner.invoke(main, ["issuer", "init", "--transit-mount", "absent"], env=env)
    assert result.exit_code == 1
    assert "Transit is not mounted at absent/" in result.output


def test_the_issuer_section_of_the_configuration() -> None:
    env = {"AZSIDECAR_ISSUER_URL": IDENTITY.url, "AZSIDECAR_ISSUER_PUBLISH_AHEAD": "2d"}
    config = load_config(env=env)
    assert config.issuer.identity() == IDENTITY
    assert config.issuer.policy() == IssuerPolicy(publish_ahead=timedelta(days=2))
    assert load_config(env={}).issuer.policy() == IssuerPolicy()
    with pytest.raises(ConfigError) as caught:
        load_config(env={"AZSIDECAR_ISSUER_URL": "http://plain.example.com"})
    assert caught.value.key == "issuer.url"
    with pytest.raises(ConfigError, match=r"issuer\.url: not set"):
        load_config(env={}).issuer.identity()


def test_transit_signature_framing_is_stripped_and_checked() -> None:
    raw = bytes(range(256))
    url = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    standard = base64.b64encode(raw).decode()
    assert _signature(f"vault:v3:{url}", "p") == Signature(3, raw)
    assert _signature(f"vault:v3:{standard}", "p") == Signature(3, raw)  # asn1-style encoding
    for bad in ("", url, "vault:v:abc", "vault:v3:", "vault:v3:a!b"):
        with pytest.raises(VaultError, match="no signature of the expected form"):
            _signature(bad, "p")


def test_a_nested_transit_mount_works(root_client: hvac.Client) -> None:
    mount = f"nested/transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    try:
        transit = Transit(root_client, f"/{mount}/")
        assert transit.mount == mount
        created = transit.ensure_key("issuer").versions[1].created
        issuer = make_issuer(transit, created + AHEAD)
        assert issuer.sign_token(REQUEST).version == 1
    finally:
        root_client.adapter.delete(f"/v1/sys/mounts/{mount}")
    with pytest.raises(VaultError, match="Transit mount"):
        Transit(root_client, "a/../b")
