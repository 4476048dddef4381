"""Vault unreachable for 10 emulated minutes, with everything running as processes.

The daemon (with its embedded resolver) reaches Vault through a TCP proxy
that the test cuts. A renewal comes due during the outage. Two runners ask
for a credential while Vault is away: one with a ``--wait`` longer than the
outage (it must report the outage, keep asking and then succeed) and one with
a shorter ``--wait`` (it must give up with a clear error). Once Vault is back
the daemon and the resolver recover without a restart.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from sidecar.devstack.openbao import free_port
from sidecar.model import Phase
from sidecar.ready import Ready, choose_ready
from sidecar.resolve import resolve_credential
from tests.processes import azsidecar, azsidecar_env, write_config
from tests.tcpproxy import TcpProxy
from tests.test_daemon_processes import healthz, wait_for
from tests.test_rotation_e2e import create_integrations
from tests.world import World, run_terraform

FACTOR = 60.0  # emulated seconds per real second: 10 emulated minutes = 10 s
OUTAGE = timedelta(minutes=10)


def runner_token(world: World, stack: str) -> str:
    """A token that may read only ``azsidecar/creds/<stack>/plan``, as a runner's would."""
    root = world.store.kv.client
    name = f"runner-{world.store.kv.prefix}"
    root.sys.create_or_update_policy(
        name, f'path "azsidecar/creds/{stack}/plan" {{ capabilities = ["read"] }}'
    )
    created = root.auth.token.create(policies=[name], ttl="1h")
    return str(created["auth"]["client_token"])


@pytest.mark.slow
def test_ten_minutes_without_vault(world: World, tmp_path: Path) -> None:
    integrations = create_integrations(world, count=2, tenants=1)
    name, tenant = integrations[0]
    first = {n: world.store.credentials(n) for n, _ in integrations}
    # The renewals (22 h after creation) come due 4 emulated minutes into the outage.
    due = first[name][0].created + timedelta(hours=22)
    world.time.advance(due - timedelta(minutes=20) - world.time.now())
    world.emu.state.clock.set_factor(FACTOR)
    proxy = TcpProxy("127.0.0.1", int(world.config.vault.addr.rsplit(":", 1)[1]))
    metrics_port, resolver_port = free_port(), free_port()
    config = write_config(
        world,
        tmp_path / "daemon.toml",
        metrics_addr=f"127.0.0.1:{metrics_port}",
        resolver_addr=f"127.0.0.1:{resolver_port}",
        log_format="json",
    )
    text = config.read_text().replace(world.config.vault.addr, proxy.addr)
    config.write_text(text)
    env = azsidecar_env(world.config.vault.token or "")
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        azsidecar("daemon", "--config", str(config)), env=env, stderr=daemon_log, text=True
    )
    token = runner_token(world, "stack-0")
    runner_env = azsidecar_env(token, AZSIDECAR_VAULT_ADDR=proxy.addr)

    def runner(wait: str) -> subprocess.Popen[str]:
        args = azsidecar(
            "creds",
            "--stack",
            "stack-0",
            "--phase",
            "plan",
            "--via",
            "resolver",
            "--resolver",
            f"127.0.0.1:{resolver_port}",
            "--format",
            "json",
            "--wait",
            wait,
        )
        return subprocess.Popen(
            args, env=runner_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    runners: list[subprocess.Popen[str]] = []
    try:
        wait_for(
            lambda: (healthz(metrics_port) or {}).get("leader") is True, 30, "the daemon to lead"
        )
        before = runner("0s")
        out, err = before.communicate(timeout=60)
        assert before.returncode == 0, err

        wait_for(lambda: world.time.now() >= due - timedelta(minutes=4), 60, "the cut")
        proxy.sever()
        cut_at = world.time.now()
        print(f"\nVault cut at {cut_at:%H:%M:%S} emulated")
        patient, impatient = runner("90s"), runner("4s")
        runners += [patient, impatient]
        # The daemon notices: its lease cannot be renewed, /healthz says why.
        wait_for(
            lambda: "Vault unavailable" in str((healthz(metrics_port) or {}).get("last_error")),
            30,
            "the daemon to report the outage",
        )
        assert (healthz(metrics_port) or {})["status"] == "failing"
        _, short_err = impatient.communicate(timeout=60)
        assert impatient.returncode != 0
        assert "unavailable" in short_err and "still unreachable after --wait 4s" in short_err
        assert "Traceback" not in short_err
        # The renewal came due while Vault was away and could not happen.
        wait_for(lambda: world.time.now() - cut_at >= OUTAGE, 60, "10 emulated minutes")
        assert [c.version for c in world.store.credentials(name)] == [
            c.version for c in first[name]
        ]
        proxy.restore()
        restored_at = time.monotonic()
        print(f"Vault back at {world.time.now():%H:%M:%S} emulated")

        out, err = patient.communicate(timeout=120)
        waited = time.monotonic() - restored_at
        assert patient.returncode == 0, err
        assert "unavailable" in err and "asking again in" in err
        answer = json.loads(out)
        assert answer["integration"] == name
        print(f"the waiting runner got its credential {waited:.1f}s after Vault came back")

        # The daemon catches up by itself: the renewal is made and stored, health is ok.
        wait_for(
            lambda: all(len(world.store.credentials(n)) == 2 for n, _ in integrations),
            60,
            "the overdue renewals",
        )
        recovered = time.monotonic() - restored_at
        wait_for(lambda: (healthz(metrics_port) or {}).get("status") == "ok", 30, "healthy again")
        print(f"renewals stored {recovered:.1f}s after Vault came back")
        for n, _ in integrations:
            record, _ = world.store.integration(n)
            held = world.our_key_ids(record.app_object_id)
            assert held == {c.key_id for c in world.store.credentials(n)}, "Azure equals Vault"
        # The resolver answers again, and the credential it hands out works.
        after = runner("0s")
        out, err = after.communicate(timeout=60)
        assert after.returncode == 0, err
        choice = choose_ready(world.store.credentials(name), world.time.now(), world.config.timing)
        assert isinstance(choice, Ready) and json.loads(out)["key_id"] == choice.credential.key_id
        now = world.time.now()
        resolved = resolve_credential(
            world.store.kv, "stack-0", Phase.PLAN, now, world.config.timing
        )
        ok, why = run_terraform(world, world.emu.session(), resolved, tenant)
        assert ok, why
    finally:
        for process in [*runners, daemon]:
            if process.poll() is None:
                process.kill()
                process.wait()
        daemon_log.close()
        proxy.close()
