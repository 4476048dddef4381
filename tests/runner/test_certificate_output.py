"""`azsidecar creds` output of a certificate credential (issue 19): the azurerm provider's names,
quoted as secrets are, hostile values refused in every shell format and never shown."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.answers import ClientCertificate, ResolvedCredential
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.errors import InputError
from sidecar.model import CredentialKind
from sidecar.runner.envfmt import arm_variables, pkcs12_bytes, render
from sidecar.sensitive import Sensitive
from tests.ids import guid
from tests.pfx import make_certificate
from tests.runner.test_hostile_values import _kv1_with, _render_template, consume, payloads

NOW = datetime.now(UTC).replace(microsecond=0)
MADE = make_certificate(client_id=guid("app"), tenant_id=guid("tenant"), created=NOW)
BUNDLE = MADE.version.pfx.reveal()
PASSWORD = MADE.version.pfx_password.reveal()


def answer(bundle: str = BUNDLE, password: str = PASSWORD) -> ResolvedCredential:
    return ResolvedCredential(
        client_id=guid("app"),
        client_secret=Sensitive(""),
        tenant_id=guid("tenant"),
        subscription_id=guid("sub"),
        integration="I1",
        key_id="k1",
        created=NOW - timedelta(hours=1),
        expires=NOW + timedelta(days=29),
        safe_until=NOW + timedelta(days=28),
        kind=CredentialKind.CERTIFICATE,
        certificate=ClientCertificate(Sensitive(bundle), Sensitive(password), "AB" * 20),
    )


def test_the_variables_name_the_certificate_as_the_provider_reads_it() -> None:
    assert arm_variables(answer()) == {
        "ARM_CLIENT_ID": guid("app"),
        "ARM_CLIENT_CERTIFICATE": BUNDLE,
        "ARM_CLIENT_CERTIFICATE_PASSWORD": PASSWORD,
        "ARM_TENANT_ID": guid("tenant"),
        "ARM_SUBSCRIPTION_ID": guid("sub"),
    }
    with_path = arm_variables(answer(), certificate_path="/tmp/x/client-certificate.pfx")
    assert "ARM_CLIENT_CERTIFICATE" not in with_path and "ARM_CLIENT_SECRET" not in with_path
    assert with_path["ARM_CLIENT_CERTIFICATE_PATH"] == "/tmp/x/client-certificate.pfx"
    assert with_path["ARM_CLIENT_CERTIFICATE_PASSWORD"] == PASSWORD


@pytest.mark.parametrize("fmt", ["env", "dotenv"])
def test_every_shell_format_gives_the_bundle_and_password_verbatim(
    tmp_path: Path, fmt: str
) -> None:
    env_file = tmp_path / "arm.env"
    env_file.write_text(render(answer(), fmt))  # type: ignore[arg-type]
    shown = subprocess.run(
        [
            "sh",
            "-c",
            f"set -a; . '{env_file}'; printf '%s\\n%s' \"$ARM_CLIENT_CERTIFICATE\""
            ' "$ARM_CLIENT_CERTIFICATE_PASSWORD"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == f"{BUNDLE}\n{PASSWORD}"
    assert "ARM_CLIENT_SECRET" not in env_file.read_text()


def test_json_is_the_plugins_fields() -> None:
    data = json.loads(render(answer(), "json"))
    assert data["kind"] == "certificate"
    assert data["client_certificate"] == BUNDLE
    assert data["client_certificate_password"] == PASSWORD
    assert "client_secret" not in data
    assert ResolvedCredential.from_data(data) == answer()


@pytest.mark.parametrize("field", ["bundle", "password"])
def test_shell_formats_refuse_hostile_certificate_values(tmp_path: Path, field: str) -> None:
    canary = tmp_path / "ran"
    for value in payloads(canary):
        cred = answer(**{field: value})
        for fmt in ("env", "dotenv"):
            with pytest.raises(InputError, match="unsafe in shell or dotenv output") as info:
                render(cred, fmt)
            assert value not in str(info.value)
        parsed = json.loads(render(cred, "json"))  # JSON goes to a parser, escaped
        key = "client_certificate" if field == "bundle" else "client_certificate_password"
        assert parsed[key] == value


def test_a_bundle_that_is_not_base64_is_refused_before_any_file_is_written() -> None:
    secretish = "bm90IGEgYnVuZGxl$(touch /tmp/ran)"
    cred = answer(bundle=secretish)
    assert cred.certificate is not None
    with pytest.raises(InputError, match="client_certificate is not base64") as info:
        pkcs12_bytes(cred.certificate)
    assert secretish not in str(info.value)
    assert MADE.version.pfx.reveal() not in repr(answer()) + str(answer().certificate)


# -- the shipped agent template, rendered by a real `bao agent` -----------------


def test_the_agent_template_renders_a_hostile_certificate_password_inert(
    openbao: OpenBaoDevServer, tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    for value in payloads(canary):
        data = {
            "kind": "certificate",
            "client_id": guid("app"),
            "client_certificate": BUNDLE,
            "client_certificate_password": value,
            "tenant_id": guid("tenant"),
            "subscription_id": guid("sub"),
        }
        env_file = _render_template(openbao, tmp_path, _kv1_with(openbao, data))
        lines = env_file.read_text().splitlines()
        assert [line.split("=", 1)[0] for line in lines] == [
            "ARM_CLIENT_ID",
            "ARM_CLIENT_CERTIFICATE_PATH",
            "ARM_CLIENT_CERTIFICATE_PASSWORD",
            "ARM_TENANT_ID",
            "ARM_SUBSCRIPTION_ID",
        ]
        for line in lines:
            _, rendered = line.split("=", 1)
            assert all(ch.isalnum() or ch in "._~+/=-" for ch in rendered), line
        consume(env_file, tmp_path)
    assert not canary.exists()
