"""docker-compose.yml: its shape, the files it names, and no secrets in it.

These read the files only; tests/compose/test_compose_stack.py runs the stack
on a Docker engine.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import load_config

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_services_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"openbao", "emulator", "bootstrap", "daemon", "ci", "runner"}
    for name in ("openbao", "emulator", "daemon"):
        assert services[name]["healthcheck"]["test"], name
    assert services["bootstrap"]["restart"] == "no"
    assert services["daemon"]["depends_on"]["bootstrap"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["runner"]["depends_on"]["daemon"]["condition"] == "service_healthy"
    assert services["runner"]["depends_on"]["ci"]["condition"] == "service_completed_successfully"


def test_each_secret_volume_is_mounted_only_where_needed(compose: dict[str, Any]) -> None:
    """Issue #16.3: the runner has its JWT, never the daemon's token or the signing key."""
    users: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            users.setdefault(volume.split(":")[0], set()).add(name)
    assert users["daemon-token"] == {"bootstrap", "daemon"}
    assert users["ci-issuer"] == {"bootstrap", "ci"}
    assert users["runner-jwt"] == {"ci", "runner"}
    runner = compose["services"]["runner"]
    assert "user" not in runner  # the image's unprivileged openbao user
    assert "BAO_TOKEN" not in runner.get("environment", {})


def test_named_volumes_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
        build = service.get("build")
        if build:
            assert (ROOT / build["dockerfile"]).is_file()


def test_openbao_is_the_official_image() -> None:
    dockerfile = (ROOT / "docker" / "openbao.Dockerfile").read_text()
    assert re.search(r"^FROM openbao/openbao:\d+\.\d+\.\d+$", dockerfile, re.M)
    # apk needs root; the image goes back to the unprivileged user at the end.
    users = re.findall(r"^USER (\w+)$", dockerfile, re.M)
    assert users == ["root", "openbao"]
    assert "azsidecar plugin install --plugin-dir /openbao/plugins" in dockerfile
    assert ">" not in dockerfile.split("plugin install", 1)[1].split("\n")[0], (
        "plugin dir: only the plugin"
    )
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_no_secrets_in_the_files() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(
        r"(?i)^\s*(\w*(token|secret|password)\w*):\s*(.+)$", compose_text, re.M
    ):
        assert match.group(3).startswith("${"), f"{match.group(1)} must come from the environment"
    for path in (ROOT / "docker").iterdir():
        text = path.read_text()
        assert "BEGIN PRIVATE KEY" not in text and "BEGIN RSA" not in text, path
        assert not re.search(r"\b(hvs|s)\.[A-Za-z0-9]{20,}", text), path


def test_daemon_config_is_valid_and_uses_a_token_file(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(ROOT / "docker" / "daemon.toml", env={})
    assert config.vault.token_file == "/run/azsidecar/sidecar-token"
    assert config.vault.token is None
    assert config.azure.ca_bundle == "/emulator-ca/ca.pem"
    agent = (ROOT / "docker" / "runner-agent.hcl").read_text()
    template = re.search(r'source\s*=\s*"/src/(.+?)"', agent)
    assert template is not None and (ROOT / template.group(1)).is_file()


def test_bootstrap_without_the_root_token_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """`down` and `logs` work without BAO_ROOT_TOKEN, so `up` must explain its absence."""
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "docker" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)
    monkeypatch.setenv("AZSIDECAR_CONFIG", str(ROOT / "docker" / "daemon.toml"))
    monkeypatch.delenv("BAO_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        bootstrap.main()
    assert "BAO_ROOT_TOKEN is not set" in str(exited.value.code)
    compose_text = (ROOT / "docker-compose.yml").read_text()
    assert ":?" not in compose_text  # an unset variable would stop every compose command
