"""End to end (issue 19): a run signs in with the certificate its integration hands out.

A real integration at the emulator (HTTPS, no replication lag, real time), a real
OpenBao with the plugin, and a certificate credential seeded as the daemon will
make one: a key pair made here, the certificate added to the integration's
application through Graph (``PATCH /applications/{id}`` with ``keyCredentials``,
as the management application), the PKCS#12 bundle stored as a
``credentials/<name>`` version. After the propagation delay a run signs in through
MSAL with what it was handed and reads its subscription through ARM -- through
the plugin, the resolver, and ``azsidecar exec`` (whose PFX file exists only
while the child runs).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sidecar.answers import ResolvedCredential
from sidecar.cli.creds import creds, exec_
from sidecar.demo.runs import token_form
from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.model import CredentialKind, IntegrationRecord, Phase
from sidecar.resolver.client import ResolverClient
from sidecar.runner.source import read_plugin
from sidecar.sensitive import Sensitive
from tests.pfx import MadeCertificate, make_certificate, sign_in_and_read_subscription
from tests.runner.conftest import ROOT, RunnerWorld, attached_integration, run_agent, write_file
from tests.world import UserTenant, World, run_terraform

#: What the plugin and the resolver are told of Azure AD's replication here (no lag).
DELAY = timedelta(seconds=2)


def propagate(delay: timedelta) -> None:
    """Wait out the propagation delay on the plugin's clock (real time here).

    The index rounds a credential's creation up to the whole second, so readiness
    may come up to a second after ``created + delay``.
    """
    time.sleep(delay.total_seconds() + 1.5)


@pytest.fixture
def live_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(lag_profile="none", seed=19)) as server:
        yield server


@dataclass
class CertWorld:
    runner: RunnerWorld
    product: World
    emu: EmulatorServer
    record: IntegrationRecord
    tenant: UserTenant
    certificates: list[MadeCertificate] = field(default_factory=list)

    def add_certificate(self) -> MadeCertificate:
        """As the daemon will: upload the certificate through Graph, then store the bundle."""
        rt = self.product.runtime
        graph = rt.graph()
        path = f"/applications/{self.record.app_object_id}"
        app = graph.request("GET", path, "get_application").json()
        made = make_certificate(
            client_id=self.record.client_id,
            tenant_id=self.record.tenant_id,
            created=rt.clock.now(),
        )
        kept = [{"keyId": k["keyId"]} for k in app.get("keyCredentials") or []]
        new = {
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": made.graph_key,
            "displayName": f"azsidecar {made.version.intent_id}",
        }
        graph.request("PATCH", path, "patch_keys", json={"keyCredentials": [*kept, new]})
        after = graph.request("GET", path, "get_application").json()
        key_id = next(
            k["keyId"]
            for k in after["keyCredentials"]
            if k.get("customKeyIdentifier") == made.version.thumbprint
            or k.get("displayName") == new["displayName"]
        )
        version = replace(made.version, key_id=str(key_id), created=rt.clock.now())
        self.runner.store.store_secret(self.record.name, version)
        self.certificates.append(MadeCertificate(version, made.graph_key))
        return self.certificates[-1]

    def want(self, kind: CredentialKind) -> None:
        found, version = self.runner.store.integration(self.record.name)
        self.runner.store.save_integration(replace(found, kind=kind), cas=version)

    def run(self, cred: ResolvedCredential) -> tuple[bool, str]:
        """Terraform's azurerm with what the run was handed, whichever kind."""
        if cred.certificate is None:
            return run_terraform(self.product, self.emu.session(), cred, self.tenant)
        assert cred.subscription_id == self.tenant.subscription_id
        return sign_in_and_read_subscription(
            login_url=self.emu.base_url,
            arm_url=self.emu.arm_url,
            session=self.emu.session(),
            tenant_id=cred.tenant_id,
            client_id=cred.client_id,
            subscription_id=cred.subscription_id,
            bundle=base64.b64decode(cred.certificate.bundle.reveal()),
            password=cred.certificate.password.reveal(),
        )


def _cert_world(world: RunnerWorld, emu: EmulatorServer, delay: timedelta) -> CertWorld:
    product, record, tenant = attached_integration(world, emu)
    seconds = f"{int(delay.total_seconds())}s"
    world.root.write_data("azure/config", data={"propagation_delay": seconds})
    return CertWorld(world, product, emu, record, tenant)


@pytest.fixture
def ready_certificate(world: RunnerWorld, live_emulator: EmulatorServer) -> CertWorld:
    """An integration that wants certificates and has a ready one."""
    cw = _cert_world(world, live_emulator, DELAY)
    cw.want(CredentialKind.CERTIFICATE)
    cw.add_certificate()
    propagate(DELAY)
    return cw


def test_a_run_signs_in_with_the_certificate_read_from_the_plugin(
    ready_certificate: CertWorld,
) -> None:
    cw = ready_certificate
    answer = cw.runner.login("A", "apply").read("azure/creds/A/apply")
    assert isinstance(answer, dict)
    data = answer["data"]
    assert data["kind"] == "certificate" and "client_secret" not in data
    assert data["client_id"] == cw.record.client_id
    assert data["subscription_id"] == cw.tenant.subscription_id
    cred = read_plugin(cw.runner.login("A", "apply"), "azure", "A", Phase.APPLY)
    assert cred.certificate is not None
    assert cred.certificate.bundle.reveal() == data["client_certificate"]
    ok, why = cw.run(cred)
    assert ok, why


def test_a_run_signs_in_with_the_certificate_from_the_resolver(
    ready_certificate: CertWorld, caplog: pytest.LogCaptureFixture
) -> None:
    cw = ready_certificate
    caplog.set_level(logging.DEBUG)
    handle = cw.runner.resolver(propagation=DELAY)
    client = ResolverClient(f"127.0.0.1:{handle.port}")
    try:
        token = str(cw.runner.login("A", "plan").token)
        cred = client.resolve(token, "A", Phase.PLAN)
    finally:
        client.close()
        handle.stop(grace=0)
    assert cred.kind is CredentialKind.CERTIFICATE and not cred.client_secret
    ok, why = cw.run(cred)
    assert ok, why
    version = cw.certificates[-1].version
    assert "resolved stack A phase plan" in caplog.text
    assert version.pfx_password.reveal() not in caplog.text
    assert version.pfx.reveal()[:64] not in caplog.text


@pytest.mark.parametrize("via", ["plugin", "resolver"])
def test_creds_prints_the_bundle_in_base64_and_a_run_signs_in_with_it(
    ready_certificate: CertWorld, tmp_path: Path, via: str
) -> None:
    cw = ready_certificate
    handle = cw.runner.resolver(propagation=DELAY)
    jwt_file = write_file(tmp_path / "ci.jwt", cw.runner.jwt("A", "apply"))
    args = ["--stack", "A", "--phase", "apply", "--jwt-file", str(jwt_file), "--format", "dotenv"]
    args += ["--role", "azsidecar-runner", "--mount", "azure", "--via", via]
    args += ["--resolver", f"127.0.0.1:{handle.port}"]
    try:
        result = CliRunner().invoke(creds, args, env=cw.runner.env(VAULT_TOKEN=None))
    finally:
        handle.stop(grace=0)
    assert result.exit_code == 0, result.output
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if line)
    assert set(values) == {
        "ARM_CLIENT_ID",
        "ARM_CLIENT_CERTIFICATE",
        "ARM_CLIENT_CERTIFICATE_PASSWORD",
        "ARM_TENANT_ID",
        "ARM_SUBSCRIPTION_ID",
    }
    ok, why = sign_in_and_read_subscription(
        login_url=cw.emu.base_url,
        arm_url=cw.emu.arm_url,
        session=cw.emu.session(),
        tenant_id=values["ARM_TENANT_ID"],
        client_id=values["ARM_CLIENT_ID"],
        subscription_id=values["ARM_SUBSCRIPTION_ID"],
        bundle=base64.b64decode(values["ARM_CLIENT_CERTIFICATE"]),
        password=values["ARM_CLIENT_CERTIFICATE_PASSWORD"],
    )
    assert ok, why
    assert values["ARM_CLIENT_CERTIFICATE_PASSWORD"] not in result.stderr


def test_bao_agent_renders_the_bundle_to_a_private_file_and_the_run_signs_in(
    ready_certificate: CertWorld, tmp_path: Path
) -> None:
    cw = ready_certificate
    rendered, result = run_agent(cw.runner, tmp_path, "A", "apply")
    assert rendered.exists(), result.stderr[-2000:]
    pfx = tmp_path / "client-certificate.pfx"
    assert stat.S_IMODE(pfx.stat().st_mode) == 0o600
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    version = cw.certificates[-1].version
    assert pfx.read_bytes() == base64.b64decode(version.pfx.reveal())
    values = dict(line.split("=", 1) for line in rendered.read_text().splitlines() if line)
    assert values == {
        "ARM_CLIENT_ID": cw.record.client_id,
        "ARM_CLIENT_CERTIFICATE_PATH": str(pfx),
        "ARM_CLIENT_CERTIFICATE_PASSWORD": version.pfx_password.reveal(),
        "ARM_TENANT_ID": cw.tenant.tenant_id,
        "ARM_SUBSCRIPTION_ID": cw.tenant.subscription_id,
    }
    ok, why = sign_in_and_read_subscription(
        login_url=cw.emu.base_url,
        arm_url=cw.emu.arm_url,
        session=cw.emu.session(),
        tenant_id=values["ARM_TENANT_ID"],
        client_id=values["ARM_CLIENT_ID"],
        subscription_id=values["ARM_SUBSCRIPTION_ID"],
        bundle=Path(values["ARM_CLIENT_CERTIFICATE_PATH"]).read_bytes(),
        password=values["ARM_CLIENT_CERTIFICATE_PASSWORD"],
    )
    assert ok, why


def _exec_helper(cw: CertWorld, tmp_path: Path, *child_args: str) -> subprocess.Popen[bytes]:
    jwt_file = write_file(tmp_path / "ci.jwt", cw.runner.jwt("A", "apply"))
    argv = [
        sys.executable,
        "-c",
        "from sidecar.cli.creds import exec_; exec_()",
        *("--stack", "A", "--phase", "apply", "--jwt-file", str(jwt_file)),
        *("--role", "azsidecar-runner", "--mount", "azure"),
        "--",
        sys.executable,
        "-m",
        "tests.runner.cert_child",
        *child_args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env |= {k: v for k, v in cw.runner.env().items() if v is not None}
    env |= {
        "TEST_LOGIN_URL": cw.emu.base_url,
        "TEST_ARM_URL": cw.emu.arm_url,
        "TEST_CA": str(cw.emu.ca_path),
        # Inherited credentials of another kind never reach the child.
        "ARM_CLIENT_SECRET": "inherited-secret",
        "TMPDIR": str(tmp_path),
    }
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while not path.exists() or not path.read_text():
        assert process.poll() is None, "the helper ended before its child wrote"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    seen: dict[str, object] = json.loads(path.read_text())
    return seen


def test_exec_gives_the_child_a_private_pfx_file_only_while_it_runs(
    ready_certificate: CertWorld, tmp_path: Path
) -> None:
    out = tmp_path / "seen.json"
    helper = _exec_helper(ready_certificate, tmp_path, str(out))
    assert helper.wait(timeout=60) == 0
    seen = json.loads(out.read_text())
    assert seen["ok"], seen["why"]
    assert seen["mode"] == 0o600 and seen["dir_mode"] == 0o700
    assert Path(seen["path"]).parent.parent == tmp_path  # in the runner's TMPDIR
    assert not Path(seen["path"]).exists() and not Path(seen["path"]).parent.exists()
    assert seen["secret_variables"] == []
    version = ready_certificate.certificates[-1].version
    assert version.pfx_password.reveal() not in seen["cmdline"]
    assert version.pfx.reveal()[:64] not in seen["cmdline"]


@pytest.mark.parametrize("how", ["sigterm", "sigint", "child-killed"])
def test_the_pfx_file_is_removed_when_the_run_is_cut_short(
    ready_certificate: CertWorld, tmp_path: Path, how: str
) -> None:
    out = tmp_path / "seen.json"
    mode = "--then-die" if how == "child-killed" else "--then-wait"
    helper = _exec_helper(ready_certificate, tmp_path, str(out), mode)
    try:
        seen = _wait_for(out, helper)
        assert seen["ok"], seen["why"]
        if how == "sigterm":
            helper.send_signal(signal.SIGTERM)
            expected = 128 + signal.SIGTERM
        elif how == "sigint":
            helper.send_signal(signal.SIGINT)
            expected = 128 + signal.SIGINT
        else:
            expected = 128 + signal.SIGKILL
        assert helper.wait(timeout=30) == expected
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
    assert not Path(str(seen["path"])).parent.exists()
    assert list(tmp_path.glob("azsidecar-*")) == []


def test_a_switch_to_certificates_hands_out_the_secret_until_the_certificate_is_ready(
    world: RunnerWorld, live_emulator: EmulatorServer
) -> None:
    delay = timedelta(seconds=4)
    cw = _cert_world(world, live_emulator, delay)
    cw.want(CredentialKind.CERTIFICATE)
    propagate(delay)  # the integration's first secret is ready
    made = cw.add_certificate()
    during = read_plugin(cw.runner.login("A", "apply"), "azure", "A", Phase.APPLY)
    assert during.kind is CredentialKind.SECRET
    ok, why = cw.run(during)
    assert ok, why
    propagate(delay)
    after = read_plugin(cw.runner.login("A", "apply"), "azure", "A", Phase.APPLY)
    assert after.certificate is not None and after.certificate.bundle == made.version.pfx
    ok, why = cw.run(after)
    assert ok, why


@pytest.mark.parametrize("via", ["plugin", "resolver"])
@pytest.mark.parametrize("field", ["client_certificate", "client_certificate_password"])
def test_a_tampered_certificate_is_refused_in_every_format_and_never_printed(
    ready_certificate: CertWorld, tmp_path: Path, field: str, via: str
) -> None:
    cw = ready_certificate
    canary = tmp_path / "ran"
    hostile = f"AAAA'$(touch {canary})'" if field == "client_certificate" else f"pw;touch {canary}"
    made = cw.add_certificate()
    tampered = (
        replace(made.version, pfx=Sensitive(hostile))
        if field == "client_certificate"
        else replace(made.version, pfx_password=Sensitive(hostile))
    )
    cw.runner.store.store_secret(cw.record.name, tampered)
    propagate(DELAY + timedelta(seconds=2))  # ready, and past the plugin's 2 s index cache
    handle = cw.runner.resolver(propagation=DELAY)
    jwt_file = write_file(tmp_path / "ci.jwt", cw.runner.jwt("A", "apply"))
    args = ["--stack", "A", "--phase", "apply", "--jwt-file", str(jwt_file)]
    args += ["--role", "azsidecar-runner", "--mount", "azure", "--via", via]
    args += ["--resolver", f"127.0.0.1:{handle.port}"]
    env = cw.runner.env(VAULT_TOKEN=None, TMPDIR=str(tmp_path))
    try:
        runs: list[tuple[click.Command, list[str]]] = [
            (creds, [*args, "--format", fmt]) for fmt in ("env", "dotenv", "json")
        ]
        runs.append((exec_, [*args, "--", "sh", "-c", f"touch {canary}"]))
        for command, argv in runs:
            result = CliRunner().invoke(command, argv, env=env)
            assert result.exit_code == 1, result.output
            assert f"field {field} is not" in result.output
            assert hostile not in result.output
            assert made.version.pfx_password.reveal() not in result.output
    finally:
        handle.stop(grace=0)
    assert not canary.exists()
    assert list(tmp_path.glob("azsidecar-*")) == []


def test_the_demos_runs_sign_in_with_a_certificate_assertion(
    ready_certificate: CertWorld,
) -> None:
    cw = ready_certificate
    cred = read_plugin(cw.runner.login("A", "apply"), "azure", "A", Phase.APPLY)
    token_url = f"{cw.emu.base_url}/{cred.tenant_id}/oauth2/v2.0/token"
    form = token_form(cred, token_url)
    assert "client_secret" not in form
    response = cw.emu.session().post(token_url, data=form, timeout=10)
    assert response.status_code == 200, response.text
