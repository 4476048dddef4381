"""Hostile values in stored records never run anything in a runner (issue 16, point 1).

An operator may write a stack or integration record through the KV API, past
the CLI's checks. Every field is checked when it is read (plugin, resolver,
CLI), every output format of ``azsidecar creds`` refuses what a shell could
interpret, and the shipped agent template reduces values to inert characters.
Each test feeds payloads that would create a canary file if a shell ran them.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import pytest
from click.testing import CliRunner

from sidecar.answers import ResolvedCredential
from sidecar.cli.creds import creds
from sidecar.devstack.openbao import OpenBaoDevServer, find_bao
from sidecar.errors import InputError
from sidecar.resolver.server import ResolverHandle
from sidecar.runner.envfmt import render
from sidecar.sensitive import Sensitive
from tests.ids import guid
from tests.runner.conftest import ROOT, RunnerWorld, seed, write_file


def payloads(canary: Path) -> list[str]:
    """Values that create ``canary`` if any shell, eval or `. file` interprets them."""
    c = str(canary)
    return [
        f"`touch {c}`",
        f"$(touch {c})",
        f"'; touch {c}; '",
        f'"; touch {c}; "',
        f"x\ntouch {c}\n",
        f"x\r\ntouch {c}",
        f"x\x00$(touch {c})",
        f"${{IFS}}$(touch {c})",
        f"\\`touch {c}\\`",
        f"x';touch {c};'",
    ]


def consume(env_file: Path, tmp_path: Path) -> None:
    """What runners do with such a file: source it, eval it, eval the `env` output."""
    for script in (
        f"set -a; . '{env_file}'; set +a",
        f"eval \"$(cat '{env_file}')\"",
        f"eval $(cat '{env_file}')",
    ):
        for shell in ("sh", "bash"):
            subprocess.run(
                [shell, "-c", script], cwd=tmp_path, capture_output=True, timeout=30, check=False
            )


# -- every output format, fed values that bypassed the read checks -------------


def _credential(**fields: str) -> ResolvedCredential:
    now = datetime.now(UTC)
    values = {
        "client_id": guid("app"),
        "tenant_id": guid("tenant"),
        "subscription_id": guid("sub"),
        "secret": "abc8Q~good.secret_value-1",
    } | fields
    return ResolvedCredential(
        client_id=values["client_id"],
        client_secret=Sensitive(values["secret"]),
        tenant_id=values["tenant_id"],
        subscription_id=values["subscription_id"],
        integration="I1",
        key_id="k1",
        created=now - timedelta(hours=1),
        expires=now + timedelta(hours=23),
        safe_until=now + timedelta(hours=22),
    )


@pytest.mark.parametrize("field", ["client_id", "tenant_id", "subscription_id", "secret"])
def test_shell_formats_refuse_hostile_values_and_json_escapes_them(
    tmp_path: Path, field: str
) -> None:
    canary = tmp_path / "ran"
    for value in payloads(canary):
        cred = _credential(**{field: value})
        for fmt in ("env", "dotenv"):
            with pytest.raises(InputError, match="unsafe in shell or dotenv output") as info:
                render(cred, fmt)
            assert value not in str(info.value)
        text = render(cred, "json")
        assert text.isascii() and text.count("\n") == text.strip().count("\n") + 1
        parsed = json.loads(text)
        key = "client_secret" if field == "secret" else field
        assert parsed[key] == value


def test_dotenv_and_env_keep_every_legitimate_value_verbatim_in_sh(tmp_path: Path) -> None:
    for secret in ("abc8Q~x.y_z-1", "~leading.tilde", "a+b/c=d"):
        cred = _credential(secret=secret)
        for fmt in ("env", "dotenv"):
            env_file = tmp_path / f"{fmt}.env"
            env_file.write_text(render(cred, fmt))
            shown = subprocess.run(
                ["sh", "-c", f"set -a; . '{env_file}'; printf %s \"$ARM_CLIENT_SECRET\""],
                capture_output=True,
                text=True,
                check=True,
            )
            assert shown.stdout == secret


# -- the records themselves, through the real OpenBao, plugin and resolver ------


@pytest.fixture
def seeded(world: RunnerWorld) -> RunnerWorld:
    seed(world.store, datetime.now(UTC))
    return world


@pytest.fixture
def resolver(seeded: RunnerWorld) -> Iterator[ResolverHandle]:
    handle = seeded.resolver()
    yield handle
    handle.stop(grace=0)


def _write_raw(world: RunnerWorld, path: str, data: dict[str, Any]) -> None:
    """As an operator with the KV API would: no azsidecar checks on the way in."""
    world.root.secrets.kv.v2.create_or_update_secret(
        path=f"{world.prefix}/{path}", secret=data, mount_point="secret"
    )


@pytest.mark.parametrize("via", ["plugin", "resolver"])
@pytest.mark.parametrize("record", ["stack", "integration"])
def test_hostile_records_are_refused_on_read_and_nothing_runs(
    seeded: RunnerWorld, resolver: ResolverHandle, tmp_path: Path, via: str, record: str
) -> None:
    canary = tmp_path / "ran"
    jwt_file = write_file(tmp_path / "ci.jwt", seeded.jwt("A", "plan"))
    base = ["--stack", "A", "--phase", "plan", "--jwt-file", str(jwt_file)]
    base += ["--role", "azsidecar-runner", "--via", via, "--resolver", f"127.0.0.1:{resolver.port}"]
    base += ["--mount", "azure"]
    stored_integration = seeded.store.integration("I1")[0].to_data()
    for value in payloads(canary):
        if record == "stack":
            stack = {"name": "A", "read": "I1", "write": "I2", "subscription_id": value}
            _write_raw(seeded, "stacks/A", stack)
        else:
            _write_raw(seeded, "integrations/I1", {**stored_integration, "tenant_id": value})
        # The caches of the plugin and the resolver hold records for 2 s.
        deadline = datetime.now(UTC) + timedelta(seconds=15)
        for fmt in ("env", "dotenv", "json"):
            while True:
                result = CliRunner().invoke(
                    creds, [*base, "--format", fmt], env=seeded.env(VAULT_TOKEN=None)
                )
                if result.exit_code != 0 or datetime.now(UTC) > deadline:
                    break
            if fmt != "json":  # JSON goes to a JSON parser, never to a shell
                out = tmp_path / f"{fmt}.out"
                out.write_text(result.stdout)
                consume(out, tmp_path)
            assert result.exit_code == 1, result.output
            field = "subscription_id" if record == "stack" else "tenant_id"
            assert f"field {field} is not a GUID" in result.output
            assert value not in result.output
            assert "secret-of-" not in result.output
    assert not canary.exists()


# -- the shipped agent template, rendered by a real `bao agent` -----------------


def _kv1_with(openbao: OpenBaoDevServer, data: dict[str, str]) -> str:
    """A KV v1 mount standing in for the plugin's mount, so any value reaches the template."""
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    mount = f"hostile-{uuid.uuid4().hex[:8]}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    client.write_data(f"{mount}/creds/S/plan", data=data)
    return mount


def _render_template(openbao: OpenBaoDevServer, tmp_path: Path, mount: str) -> Path:
    source = ROOT / "vault-config" / "arm-env.ctmpl"
    token_file = write_file(tmp_path / "token", openbao.root_token)
    out = tmp_path / "arm.env"
    config = f"""
vault {{ address = "{openbao.addr}" }}
auto_auth {{
  method "token_file" {{ config = {{ token_file_path = "{token_file}" }} }}
}}
template_config {{ exit_on_retry_failure = true }}
template {{
  source = "{source}"
  destination = "{out}"
  perms = "0600"
  error_on_missing_key = true
}}
exit_after_auth = true
"""
    config_file = write_file(tmp_path / "agent.hcl", config)
    env = {"PATH": "/usr/bin:/bin", "AZSIDECAR_STACK": "S", "AZSIDECAR_PHASE": "plan"}
    env["AZSIDECAR_MOUNT"] = mount  # a KV v1 mount holding whatever the test wrote
    result = subprocess.run(
        [find_bao(), "agent", f"-config={config_file}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.exists(), result.stderr[-2000:]
    return out


def test_the_agent_template_renders_hostile_values_inert(
    openbao: OpenBaoDevServer, tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    for value in payloads(canary):
        mount = _kv1_with(
            openbao,
            {
                "client_id": value,
                "client_secret": value,
                "tenant_id": value,
                "subscription_id": value,
            },
        )
        env_file = _render_template(openbao, tmp_path, mount)
        lines = env_file.read_text().splitlines()
        assert [line.split("=", 1)[0] for line in lines] == [
            "ARM_CLIENT_ID",
            "ARM_CLIENT_SECRET",
            "ARM_TENANT_ID",
            "ARM_SUBSCRIPTION_ID",
        ]
        for line in lines:
            _, rendered = line.split("=", 1)
            assert all(ch.isalnum() or ch in "._~+/=-" for ch in rendered), line
            assert not rendered.startswith("~")
        consume(env_file, tmp_path)
    assert not canary.exists()


def test_the_agent_template_keeps_legitimate_values(
    openbao: OpenBaoDevServer, tmp_path: Path
) -> None:
    good = {
        "client_id": guid("app"),
        "client_secret": "abc8Q~x.y_z-1",
        "tenant_id": guid("tenant"),
        "subscription_id": guid("sub"),
    }
    env_file = _render_template(openbao, tmp_path, _kv1_with(openbao, good))
    lines = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert lines == {f"ARM_{k.upper()}": v for k, v in good.items()}


# -- the resolver template: `bao agent` runs `azsidecar creds --format dotenv` --------------


def _render_resolver_template(
    world: RunnerWorld, tmp_path: Path, port: int, stack: str, phase: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The shipped arm-env-resolver.ctmpl, pointed at this world's resolver (no TLS here)."""
    template = (ROOT / "vault-config" / "arm-env-resolver.ctmpl").read_text()
    for old, new in (
        ('"resolver.internal:50051"', f'"127.0.0.1:{port}"'),
        ('"--resolver-ca" "/etc/azsidecar/resolver-ca.pem" ', ""),
        ('"/run/azsidecar/token"', f'"{tmp_path / "token"}"'),
        ('"--wait" "15m"', '"--wait" "0s"'),
    ):
        assert old in template
        template = template.replace(old, new)
    source = write_file(tmp_path / "arm-env-resolver.ctmpl", template)
    run = world.login(stack, phase)
    token_file = write_file(tmp_path / "token", str(run.token))
    out = tmp_path / "arm.env"
    config = f"""
vault {{ address = "{world.addr}" }}
auto_auth {{
  method "token_file" {{ config = {{ token_file_path = "{token_file}" }} }}
}}
template_config {{ exit_on_retry_failure = true }}
template {{
  source = "{source}"
  destination = "{out}"
  perms = "0600"
}}
exit_after_auth = true
"""
    config_file = write_file(tmp_path / "agent.hcl", config)
    bin_dir = Path(find_bao()).parent
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AZSIDECAR_STACK": stack,
        "AZSIDECAR_PHASE": phase,
        "AZSIDECAR_VAULT_ADDR": world.addr,
        "AZSIDECAR_VAULT_PREFIX": world.prefix,
    }
    result = subprocess.run(
        [find_bao(), "agent", f"-config={config_file}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return out, result


def test_the_resolver_template_renders_a_good_record(
    seeded: RunnerWorld, resolver: ResolverHandle, tmp_path: Path
) -> None:
    out, result = _render_resolver_template(seeded, tmp_path, resolver.port, "A", "plan")
    assert out.exists(), result.stderr[-2000:]
    values = dict(line.split("=", 1) for line in out.read_text().splitlines() if line)
    assert values["ARM_CLIENT_SECRET"] == "secret-of-I1"
    assert values["ARM_SUBSCRIPTION_ID"] == guid("sub-I1")


def test_the_resolver_template_renders_nothing_from_a_hostile_record(
    seeded: RunnerWorld, resolver: ResolverHandle, tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    value = f"`touch {canary}`$(touch {canary})"
    _write_raw(
        seeded, "stacks/A", {"name": "A", "read": "I1", "write": "I2", "subscription_id": value}
    )
    time.sleep(2.5)  # past the resolver's record cache
    out, result = _render_resolver_template(seeded, tmp_path, resolver.port, "A", "plan")
    if out.exists():
        assert value not in out.read_text()
        consume(out, tmp_path)
    assert "field subscription_id is not a GUID" in result.stderr + result.stdout
    assert "secret-of-" not in result.stderr + result.stdout
    assert not canary.exists()
