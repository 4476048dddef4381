"""No client secret or private key in logs, metrics, error texts, argv or other environments.

A daemon process rotates against the emulator and a real OpenBao while every
process on the machine is inspected through /proc: command lines and
environments (the one place a secret may be is the environment of the child
that `azsidecar exec` starts, which is not running here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests
from click.testing import CliRunner

from sidecar.cli.main import main
from sidecar.devstack.openbao import free_port
from sidecar.keypairs import load_bundle
from sidecar.management import load_certificates
from sidecar.model import CertificateVersion, CredentialKind
from tests.processes import azsidecar, azsidecar_env, write_config
from tests.test_certificate_e2e import create_integrations as create_certificate_integrations
from tests.test_rotation_e2e import create_integrations
from tests.world import World


def proc_texts() -> list[tuple[int, str]]:
    """Every readable command line and environment on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for name in ("cmdline", "environ"):
            try:
                raw = (entry / name).read_bytes()
            except OSError:
                continue
            found.append((int(entry.name), raw.replace(b"\0", b" ").decode(errors="replace")))
    return found


def test_the_sweep_sees_other_processes_arguments_and_environments() -> None:
    """A control: a canary in another process's argv and environment is found."""
    canary = os.urandom(8).hex()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", canary],
        env={"AZS_CANARY": canary[::-1], "PATH": os.environ["PATH"]},
    )
    try:
        time.sleep(0.2)
        texts = "\n".join(text for _, text in proc_texts())
        assert canary in texts and canary[::-1] in texts
    finally:
        child.kill()
        child.wait()


def secrets_of(world: World, names: list[str]) -> list[str]:
    values = []
    for name in names:
        for stored in world.store.credentials(name):
            values.append(world.store.secret(name, stored.version).secret.reveal())
    for certificate in load_certificates(world.store):
        key = certificate.key_pem.reveal()
        # The body of the key, line by line: any fragment of it is a leak.
        values += [line for line in key.splitlines() if line and "PRIVATE KEY" not in line]
    return values


@dataclass
class Sweep:
    """A daemon at work and the texts an observer can see of it, gathered for a sweep."""

    world: World
    config: Path
    port: int
    log_path: Path
    texts: list[str] = field(default_factory=list)

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text

    def commands_under_graph_failure(self, commands: list[list[str]]) -> None:
        """Operator commands while Graph fails: their output and error texts are swept."""
        self.world.emu.state.faults.fail_next(50, status=500, prefix="/graph/v1.0/applications/")
        cli_env = {
            "AZSIDECAR_CONFIG": str(self.config),
            "VAULT_TOKEN": self.world.config.vault.token or "",
        }
        for args in commands:
            result = CliRunner().invoke(main, args, env=cli_env)
            self.texts.append(result.output)
            if result.exception is not None:
                self.texts.append(repr(result.exception) + str(result.exception))
        self.world.emu.state.faults.clear()
        self.texts += [text for _, text in proc_texts()]

    def assert_clean(self, material: list[str], what: str) -> None:
        everything = "\n".join(self.texts)
        leaks = [s[:6] + "..." for s in material if s in everything]
        assert leaks == [], f"{what} found: {leaks}"
        assert '"level": "info"' in everything, "the daemon's JSON log was inspected"


@contextlib.contextmanager
def rotating_daemon(world: World, tmp_path: Path, names: list[str]) -> Iterator[Sweep]:
    """A daemon process (debug, JSON logs) that has rotated every integration in ``names``
    once and probed the new credentials; its log joins the sweep's texts when it stops."""
    world.time.advance(timedelta(hours=22, minutes=30))  # a rotation is due
    port = free_port()
    config = write_config(
        world,
        tmp_path / "d.toml",
        metrics_addr=f"127.0.0.1:{port}",
        log_format="json",
        log_level="debug",
        resolver_addr=f"127.0.0.1:{free_port()}",
    )
    sweep = Sweep(world, config, port, tmp_path / "daemon.log")
    env = azsidecar_env(world.config.vault.token or "")
    with open(sweep.log_path, "w") as log:
        daemon = subprocess.Popen(
            azsidecar("daemon", "--config", str(config)), env=env, stderr=log, stdout=log
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(len(world.store.credentials(n)) == 2 for n in names):
                break
            time.sleep(0.2)
        log_text = sweep.log_path.read_text
        assert all(len(world.store.credentials(n)) == 2 for n in names), log_text()
        # The new credentials are probed (sign-ins with them on fresh connections): their
        # results, metrics and log lines are swept too.
        metrics_text = ""
        while time.monotonic() < deadline:
            metrics_text = sweep.metrics()
            if _probe_sign_ins(metrics_text) >= 2:
                break
            time.sleep(0.2)
        assert _probe_sign_ins(metrics_text) >= 2, log_text()
        sweep.texts.append(metrics_text)
        for name in names:
            custom = world.store.kv.read_metadata(f"credentials/{name}").custom_metadata
            sweep.texts += [repr(custom), repr(world.store.probes(name))]
        sweep.texts += [text for _, text in proc_texts()]
        yield sweep
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    sweep.texts.append(sweep.log_path.read_text())


def test_secrets_stay_out_of_logs_metrics_errors_argv_and_environments(
    world: World, tmp_path: Path
) -> None:
    names = [name for name, _ in create_integrations(world, count=2, tenants=1)]
    with rotating_daemon(world, tmp_path, names) as sweep:
        sweep.texts.append(sweep.metrics())
        sweep.texts.append(requests.get(f"http://127.0.0.1:{sweep.port}/healthz", timeout=5).text)
        tenant = world.add_tenant()
        sweep.commands_under_graph_failure(
            [
                ["integration", "create", "--name", "broken", "--tenant", tenant.tenant_id],
                ["integration", "show", names[0]],
                ["integration", "list", "--json"],
                ["management", "status"],
            ]
        )
    secrets = secrets_of(world, names)
    assert len(secrets) >= 4
    sweep.assert_clean(secrets, "secret material")


def _probe_sign_ins(metrics_text: str) -> float:
    """Probe sign-ins the daemon made that gave an answer (ok or refused)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("azsidecar_probe_sign_ins_total{") and "inconclusive" not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def certificate_material_of(world: World, names: list[str]) -> list[str]:
    """Each certificate credential's PFX password, PFX (in 64-character pieces) and key lines."""
    values = []
    for name in names:
        for stored in world.store.credentials(name):
            found = world.store.credential_version(name, stored.version)
            assert isinstance(found, CertificateVersion)
            values.append(found.pfx_password.reveal())
            pfx = found.pfx.reveal()
            values += [pfx[i : i + 64] for i in range(0, len(pfx) - 64, 64)]
            key = load_bundle(found.pfx, found.pfx_password).key_pem.reveal()
            values += [line for line in key.splitlines() if line and "PRIVATE KEY" not in line]
    return values


def test_certificate_keys_and_bundles_stay_out_of_logs_metrics_errors_and_argv(
    world: World, tmp_path: Path
) -> None:
    """The same sweep for certificate integrations: made in memory, probed, renewed."""
    made = create_certificate_integrations(
        world, count=2, tenants=1, kind=CredentialKind.CERTIFICATE
    )
    names = [name for name, _ in made]
    with rotating_daemon(world, tmp_path, names) as sweep:  # a renewal (addKey) is due
        for name in names:
            sweep.texts += [repr(c) for c in world.store.credentials(name)]
            sweep.texts += [
                repr(world.store.credential_version(name, c.version))
                for c in world.store.credentials(name)
            ]
        tenant = world.add_tenant()
        sweep.commands_under_graph_failure(
            [
                [
                    *["integration", "create", "--name", "broken", "--kind", "certificate"],
                    *["--tenant", tenant.tenant_id],
                ],
                ["integration", "show", names[0]],
                ["integration", "show", names[0], "--json"],
                ["integration", "list", "--json"],
            ]
        )
    material = certificate_material_of(world, names)
    assert len(material) >= 4 * 30
    sweep.assert_clean(material, "certificate material")
