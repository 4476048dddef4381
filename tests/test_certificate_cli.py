"""``integration create --kind`` and ``integration set-kind``: kinds at the command line."""

from __future__ import annotations

import json
from pathlib import Path

from sidecar.model import CertificateVersion, CredentialKind
from tests.processes import write_config
from tests.test_cli import invoke
from tests.world import World


def test_certificate_integrations_and_kind_switches_through_the_cli(
    world: World, tmp_path: Path
) -> None:
    tenant = world.add_tenant()
    env = {
        "AZSIDECAR_CONFIG": str(write_config(world, tmp_path / "c.toml")),
        "VAULT_TOKEN": world.config.vault.token or "",
    }
    code, out = invoke(
        [
            "integration",
            "create",
            "--name",
            "pki",
            "--tenant",
            tenant.tenant_id,
            "--kind",
            "certificate",
        ],
        env,
    )
    assert code == 0, out
    assert "first certificate stored" in out
    record, _ = world.store.integration("pki")
    assert record.kind is CredentialKind.CERTIFICATE
    [stored] = world.store.credentials("pki")
    assert stored.kind is CredentialKind.CERTIFICATE
    version = world.store.credential_version("pki", stored.version)
    assert isinstance(version, CertificateVersion)

    code, out = invoke(["integration", "show", "pki"], env)
    assert code == 0 and "kind                   certificate" in out
    assert f"certificate v{stored.version} key {stored.key_id}" in out
    assert version.pfx.reveal() not in out and version.pfx_password.reveal() not in out
    code, out = invoke(["integration", "show", "pki", "--json"], env)
    shown = json.loads(out)
    assert shown["kind"] == "certificate" and shown["secrets"][0]["kind"] == "certificate"
    code, out = invoke(["integration", "list", "--json"], env)
    assert [row["kind"] for row in json.loads(out)] == ["certificate"]

    # Federated is a kind now (#18), refused while no [issuer] url is configured.
    code, out = invoke(["integration", "set-kind", "pki", "federated"], env)
    assert code == 1 and "set [issuer] url" in out
    assert world.store.integration("pki")[0].kind is CredentialKind.CERTIFICATE
    code, out = invoke(["integration", "set-kind", "pki", "kerberos"], env)
    assert code == 2 and "'kerberos' is not one of 'secret', 'certificate', 'federated'" in out
    code, out = invoke(["integration", "set-kind", "nope", "secret"], env)
    assert code == 1 and "no integration named 'nope'" in out
    code, out = invoke(["integration", "set-kind", "pki", "certificate"], env)
    assert code == 0 and "already hands out certificates" in out
    code, out = invoke(["integration", "set-kind", "pki", "SECRET"], env)
    assert code == 0 and "now wants secrets" in out
    assert world.store.integration("pki")[0].kind is CredentialKind.SECRET
    # Only the record changed: the certificate keeps serving until a secret is ready.
    assert [c.kind for c in world.store.credentials("pki")] == [CredentialKind.CERTIFICATE]

    code, out = invoke(
        [
            "integration",
            "create",
            "--name",
            "bad",
            "--tenant",
            tenant.tenant_id,
            "--kind",
            "password",
        ],
        env,
    )
    assert code == 2 and "Invalid value for '--kind': 'password' is not one of" in out
    assert world.store.find_integration("bad") is None
