"""The daemon's own identity without a certificate: configuration, `management init --federated`,
the assertion it signs, and doctor's checks that need no Graph (issue #18).

The end-to-end run against the emulator is in tests/test_federated_management_e2e.py.
"""

from __future__ import annotations

import json
import logging
import shlex
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import hvac
import jwt
import pytest
from click.testing import CliRunner

from sidecar.cli.main import main
from sidecar.cli.management_federated import init_federated
from sidecar.clock import ManualClock
from sidecar.config import AzureConfig, Config, IssuerConfig, VaultConfig, load_config
from sidecar.daemon import Daemon
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.doctor.management_federated import SIGN_IN_HINTS, federated_identity, issuer_key
from sidecar.errors import ConfigError, InvalidRecord
from sidecar.graph import (
    AssertionCredential,
    CertificateCredential,
    FederatedCredential,
    msal_client_credential,
    sign_in_lag_codes,
)
from sidecar.issuer.documents import ENTRA_AUDIENCE, IssuerIdentity
from sidecar.issuer.management import (
    MANAGEMENT_CREDENTIAL_NAME,
    MANAGEMENT_SUBJECT,
    FederatedCredentialSpec,
    assertion_credential,
    az_command,
    graph_request,
)
from sidecar.issuer.planner import IssuerPolicy
from sidecar.issuer.signing import Issuer
from sidecar.management import ManagementIdentity, load_certificates, load_identity, save_identity
from sidecar.model import intent_of_federated
from sidecar.runtime import Runtime
from sidecar.sensitive import Sensitive
from sidecar.store import IDENTITY_PATH, Store
from sidecar.transit import Transit
from sidecar.vault import VaultKV

ISSUER_URL = "https://issuer.example.com/azsidecar"
TENANT, OBJECT, CLIENT = (str(uuid.uuid4()) for _ in range(3))


@pytest.fixture
def transit(root_client: hvac.Client) -> Iterator[Transit]:
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    yield Transit(root_client, mount)
    root_client.adapter.delete(f"/v1/sys/mounts/{mount}")


def write_config(tmp_path: Path, openbao: OpenBaoDevServer, kv: VaultKV, transit: Transit) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[vault]\naddr = "{openbao.addr}"\nprefix = "{kv.prefix}"\n'
        f'[issuer]\nurl = "{ISSUER_URL}"\ntransit_mount = "{transit.mount}"\nkey = "mgmt"\n'
    )
    return path


def init_args(*extra: str) -> list[str]:
    return [
        "management",
        "init",
        "--tenant",
        TENANT,
        "--app-object-id",
        OBJECT,
        "--client-id",
        CLIENT,
        *extra,
    ]


# -- configuration -----------------------------------------------------------------------------


def test_management_auth_defaults_to_certificate() -> None:
    assert load_config(None, env={}).azure.management_auth == "certificate"


def test_federated_management_auth_needs_the_issuer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"azure\.management_auth.*issuer\.url"):
        load_config(None, env={"AZSIDECAR_AZURE_MANAGEMENT_AUTH": "federated"})
    path = tmp_path / "c.toml"
    path.write_text(f'[azure]\nmanagement_auth = "federated"\n[issuer]\nurl = "{ISSUER_URL}"\n')
    assert load_config(path, env={}).azure.management_auth == "federated"
    with pytest.raises(ConfigError, match=r"azure\.management_auth.*'certificate', 'federated'"):
        load_config(None, env={"AZSIDECAR_AZURE_MANAGEMENT_AUTH": "secret"})


# -- the identity record ---------------------------------------------------------------------


def test_identity_records_the_mode_and_old_records_read_as_certificate(kv: VaultKV) -> None:
    store = Store(kv)
    old = {"tenant_id": TENANT, "app_object_id": OBJECT, "client_id": CLIENT}
    kv.write(IDENTITY_PATH, old, cas=0)
    assert load_identity(store).auth == "certificate"
    save_identity(store, ManagementIdentity(TENANT, OBJECT, CLIENT, auth="federated"))
    assert load_identity(store).auth == "federated"
    assert kv.read(IDENTITY_PATH).data["auth"] == "federated"
    kv.write(IDENTITY_PATH, {**old, "auth": "password"}, cas=None)
    with pytest.raises(InvalidRecord, match="field auth"):
        load_identity(store)
    with pytest.raises(ValueError, match="auth"):
        ManagementIdentity(TENANT, OBJECT, CLIENT, auth="password")


# -- the assertion ----------------------------------------------------------------------------


def test_the_assertion_is_signed_anew_for_every_sign_in(transit: Transit) -> None:
    """MSAL gets a callable, so each token request carries a newly signed assertion."""
    key = transit.ensure_key("mgmt")
    clock = ManualClock(key.versions[1].created)
    issuer = Issuer(transit, IssuerIdentity(ISSUER_URL), clock, key_name="mgmt")
    clock.advance(IssuerPolicy().publish_ahead)
    credential = assertion_credential(issuer)
    assert credential.thumbprint == f"assertion:{ISSUER_URL}"
    assert "sign" not in repr(credential)
    client_credential = msal_client_credential(credential)
    assert set(client_credential) == {"client_assertion"}
    sign = client_credential["client_assertion"]
    assert callable(sign)
    first = sign()
    clock.advance(60)
    second = sign()
    assert first != second
    jwks = jwt.PyJWKSet.from_dict(issuer.jwks())
    for token in (first, second):
        kid = jwt.get_unverified_header(token)["kid"]
        claims = jwt.decode(
            token,
            jwks[kid].key,
            algorithms=["RS256"],
            audience=ENTRA_AUDIENCE,
            issuer=ISSUER_URL,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        assert claims["sub"] == MANAGEMENT_SUBJECT
        assert (claims["stack"], claims["phase"], claims["integration"]) == (
            "azsidecar",
            "daemon",
            "management",
        )
    assert 70021 in sign_in_lag_codes(credential)
    certificate = CertificateCredential(cert_pem="", key_pem=Sensitive(""), thumbprint="AB")
    assert 70021 not in sign_in_lag_codes(certificate)


def test_the_credential_name_is_no_integration_intent() -> None:
    """Cleaning up integrations' federated credentials can never take the daemon's for one."""
    assert intent_of_federated(MANAGEMENT_CREDENTIAL_NAME) is None


def test_az_command_and_graph_request_carry_the_same_credential() -> None:
    spec = FederatedCredentialSpec(issuer=ISSUER_URL)
    argv = shlex.split(az_command(OBJECT, spec))
    assert argv[:6] == ["az", "ad", "app", "federated-credential", "create", "--id"]
    assert argv[6] == OBJECT
    assert argv[7] == "--parameters"
    assert json.loads(argv[8]) == spec.body()
    assert spec.body()["subject"] == MANAGEMENT_SUBJECT
    assert spec.body()["audiences"] == [ENTRA_AUDIENCE]
    text = graph_request("https://graph.microsoft.com", OBJECT, spec)
    head, _, body = text.partition("\n\n")
    assert head.splitlines()[0] == (
        f"POST https://graph.microsoft.com/v1.0/applications/{OBJECT}/federatedIdentityCredentials"
    )
    assert json.loads(body) == spec.body()
    listed = FederatedCredential("x", spec.name, spec.issuer, spec.subject, spec.audience)
    assert spec.matches(listed)
    assert not spec.matches(replace(listed, subject="azsidecar:other"))


# -- `management init --federated` --------------------------------------------------------------


def test_init_federated_stores_no_certificate_and_prints_the_credential(
    openbao: OpenBaoDevServer, kv: VaultKV, transit: Transit, tmp_path: Path
) -> None:
    config = write_config(tmp_path, openbao, kv, transit)
    env = {"AZSIDECAR_CONFIG": str(config), "VAULT_TOKEN": openbao.root_token}
    result = CliRunner().invoke(main, init_args("--federated"), env=env)
    assert result.exit_code == 0, result.output
    store = Store(kv)
    assert load_identity(store) == ManagementIdentity(TENANT, OBJECT, CLIENT, auth="federated")
    assert load_certificates(store) == []
    assert sorted(transit.read_key("mgmt").versions) == [1], "the issuer key was created"
    spec = FederatedCredentialSpec(issuer=ISSUER_URL)
    assert az_command(OBJECT, spec) in result.output
    assert graph_request("https://graph.microsoft.com", OBJECT, spec) in result.output
    assert "cannot add it to itself" in result.output
    assert "may sign from" in result.output
    assert "BEGIN" not in result.output

    status = CliRunner().invoke(main, ["management", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert "signing in with a federated assertion" in status.output
    assert "azure.management_auth is 'certificate'" in status.output
    as_json = CliRunner().invoke(main, ["management", "status", "--json"], env=env)
    assert json.loads(as_json.output)["identity"]["auth"] == "federated"


def test_init_federated_refuses_certificate_options_and_a_missing_issuer(
    openbao: OpenBaoDevServer, kv: VaultKV, transit: Transit, tmp_path: Path
) -> None:
    config = write_config(tmp_path, openbao, kv, transit)
    env = {"AZSIDECAR_CONFIG": str(config), "VAULT_TOKEN": openbao.root_token}
    result = CliRunner().invoke(main, init_args("--federated", "--generate"), env=env)
    assert result.exit_code != 0
    assert "takes no certificate" in result.output
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[vault]\naddr = "{openbao.addr}"\nprefix = "{kv.prefix}"\n')
    result = CliRunner().invoke(
        main, init_args("--federated"), env={**env, "AZSIDECAR_CONFIG": str(bare)}
    )
    assert result.exit_code != 0
    assert "[issuer] url" in result.output
    with pytest.raises(Exception, match="management init"):
        load_identity(Store(kv))


# -- doctor, the parts before Graph ------------------------------------------------------------


def test_doctor_checks_the_recorded_mode_and_the_issuer_key(kv: VaultKV, transit: Transit) -> None:
    store = Store(kv)
    check, usable = federated_identity(store)
    assert check.failed and not usable
    save_identity(store, ManagementIdentity(TENANT, OBJECT, CLIENT))
    check, usable = federated_identity(store)
    assert check.status == "warn" and usable
    assert "records certificate" in check.line
    save_identity(store, ManagementIdentity(TENANT, OBJECT, CLIENT, auth="federated"))
    check, usable = federated_identity(store)
    assert check.status == "ok" and usable

    assert issuer_key(None).failed
    missing = Issuer(
        transit, IssuerIdentity(ISSUER_URL), ManualClock(datetime.now(UTC)), key_name="mgmt"
    )
    check = issuer_key(missing)
    assert check.failed and "issuer init" in check.fix
    key = transit.ensure_key("mgmt")
    created = key.versions[1].created
    clock = ManualClock(created)
    issuer = Issuer(transit, IssuerIdentity(ISSUER_URL), clock, key_name="mgmt")
    check = issuer_key(issuer)
    assert check.failed and "publish_ahead" in check.line
    clock.advance(IssuerPolicy().publish_ahead)
    check = issuer_key(issuer)
    assert check.status == "ok", check.line
    assert "version 1 signs" in check.line


def test_every_federated_sign_in_code_has_a_hint() -> None:
    for code in ("AADSTS70021", "AADSTS700211", "AADSTS700212", "AADSTS700213", "AADSTS50166"):
        assert SIGN_IN_HINTS[code]


def test_daemon_skips_certificate_renewal_and_says_so_once(
    kv: VaultKV, transit: Transit, openbao: OpenBaoDevServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(kv)
    save_identity(store, ManagementIdentity(TENANT, OBJECT, CLIENT, auth="federated"))
    config = Config(
        vault=VaultConfig(addr=openbao.addr, token=openbao.root_token, prefix=kv.prefix),
        azure=AzureConfig(management_auth="federated"),
        issuer=IssuerConfig(url=ISSUER_URL, transit_mount=transit.mount, key="mgmt"),
    )
    daemon = Daemon(
        Runtime(config=config, clock=ManualClock(datetime.now(UTC)), store=store), holder="t"
    )
    with caplog.at_level(logging.INFO, logger="sidecar.daemon"):
        assert daemon.certificate_tick()
        assert daemon.certificate_tick()
    said = [r for r in caplog.records if "renewal skipped" in r.getMessage()]
    assert len(said) == 1
    assert daemon.certificate_reports == []
    assert load_certificates(store) == []


def test_one_audience_setting_serves_the_daemon_and_init(
    kv: VaultKV,
    transit: Transit,
    openbao: OpenBaoDevServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``azure.management_audience`` is the assertions' ``aud`` and the printed credential's."""
    audience = "api://AzureADTokenExchangeChina"
    created = transit.ensure_key("mgmt").versions[1].created
    config = Config(
        vault=VaultConfig(addr=openbao.addr, token=openbao.root_token, prefix=kv.prefix),
        azure=AzureConfig(management_auth="federated", management_audience=audience),
        issuer=IssuerConfig(url=ISSUER_URL, transit_mount=transit.mount, key="mgmt"),
    )
    clock = ManualClock(created + IssuerPolicy().publish_ahead)
    runtime = Runtime(config=config, clock=clock, store=Store(kv))
    credential = runtime.management_credential()()
    assert isinstance(credential, AssertionCredential)
    claims = jwt.decode(credential.sign(), options={"verify_signature": False})
    assert (claims["aud"], claims["sub"]) == (audience, MANAGEMENT_SUBJECT)
    init_federated(runtime, ManagementIdentity(TENANT, OBJECT, CLIENT, auth="federated"))
    spec = FederatedCredentialSpec(issuer=ISSUER_URL, audience=audience)
    assert az_command(OBJECT, spec) in capsys.readouterr().out
