"""`azsidecar management init` and `status`: import PEM or PKCS#12, or generate a pair."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    load_pem_private_key,
    pkcs12,
)

from sidecar.cli.main import main
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.management import generate_key_pair, load_certificates, load_identity
from sidecar.store import Store
from sidecar.vault import VaultKV

TENANT, OBJECT, CLIENT = (str(uuid.uuid4()) for _ in range(3))


def env_for(openbao: OpenBaoDevServer, kv: VaultKV, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "c.toml"
    config.write_text(f'[vault]\naddr = "{openbao.addr}"\nprefix = "{kv.prefix}"\n')
    return {"AZSIDECAR_CONFIG": str(config), "VAULT_TOKEN": openbao.root_token}


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


def test_generate_stores_the_key_only_in_vault(
    openbao: OpenBaoDevServer, kv: VaultKV, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, init_args("--generate"), env=env_for(openbao, kv, tmp_path))
    assert result.exit_code == 0, result.output
    assert "-----BEGIN CERTIFICATE-----" in result.output
    assert "PRIVATE KEY" not in result.output
    store = Store(kv)
    assert load_identity(store).client_id == CLIENT
    [cert] = load_certificates(store)
    stored_key = load_pem_private_key(cert.key_pem.reveal().encode(), password=None)
    assert stored_key.public_key() is not None
    assert cert.not_after - cert.not_before == timedelta(days=30)
    printed = result.output[result.output.index("-----BEGIN CERTIFICATE-----") :]
    assert x509.load_pem_x509_certificate(printed.encode()).fingerprint is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"], "nothing else on disk"


def test_import_pem(openbao: OpenBaoDevServer, kv: VaultKV, tmp_path: Path) -> None:
    pair = generate_key_pair("imported", datetime.now(UTC), timedelta(days=90))
    (tmp_path / "cert.pem").write_text(pair.cert_pem)
    (tmp_path / "key.pem").write_text(pair.key_pem.reveal())
    result = CliRunner().invoke(
        main,
        init_args(
            "--cert",
            str(tmp_path / "cert.pem"),
            "--key",
            str(tmp_path / "key.pem"),
            "--key-id",
            "k-1",
        ),
        env=env_for(openbao, kv, tmp_path),
    )
    assert result.exit_code == 0, result.output
    [cert] = load_certificates(Store(kv))
    assert (cert.thumbprint, cert.key_id) == (pair.thumbprint, "k-1")

    status = CliRunner().invoke(
        main, ["management", "status", "--json"], env=env_for(openbao, kv, tmp_path)
    )
    assert status.exit_code == 0
    body = json.loads(status.output)
    assert body["certificates"][0]["active"] is True
    assert "PRIVATE" not in status.output


def test_import_pkcs12_with_password(
    openbao: OpenBaoDevServer, kv: VaultKV, tmp_path: Path
) -> None:
    pair = generate_key_pair("pfx", datetime.now(UTC), timedelta(days=90))
    key = load_pem_private_key(pair.key_pem.reveal().encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate(pair.cert_pem.encode())
    blob = pkcs12.serialize_key_and_certificates(
        b"mgmt",
        key,
        cert,
        None,
        BestAvailableEncryption(b"hunter2"),
    )
    (tmp_path / "m.pfx").write_bytes(blob)
    result = CliRunner().invoke(
        main,
        init_args("--pkcs12", str(tmp_path / "m.pfx")),
        env=env_for(openbao, kv, tmp_path),
        input="hunter2\n",
    )
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert load_certificates(Store(kv))[0].thumbprint == pair.thumbprint


def test_bad_input_is_refused_before_writing(
    openbao: OpenBaoDevServer, kv: VaultKV, tmp_path: Path
) -> None:
    env = env_for(openbao, kv, tmp_path)
    (tmp_path / "junk.pem").write_text("not a certificate")
    cases = [
        (
            init_args("--cert", str(tmp_path / "junk.pem"), "--key", str(tmp_path / "junk.pem")),
            "cannot load the certificate",
        ),
        (init_args(), "give --cert and --key"),
        (
            [
                "management",
                "init",
                "--tenant",
                "x",
                "--app-object-id",
                OBJECT,
                "--client-id",
                CLIENT,
                "--generate",
            ],
            "invalid tenant id",
        ),
    ]
    for args, message in cases:
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1, result.output
        assert message in result.output
    assert kv.list("management") == []
