"""`azsidecar policies render` fills the shipped templates for one deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar.cli.policies import policies
from sidecar.errors import InputError
from sidecar.policies import render_policy, template


def test_render_writes_every_policy_with_the_accessor(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        policies,
        [
            "render",
            "--jwt-accessor",
            "auth_jwt_1234",
            "--kv-mount",
            "kv",
            "--prefix",
            "az/prod",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"azsidecar-{n}.hcl" for n in ("issuer", "operator", "plugin", "runner", "sidecar")
    ]
    runner = (tmp_path / "azsidecar-runner.hcl").read_text()
    assert (
        'path "azsidecar/creds/{{identity.entity.aliases.auth_jwt_1234.metadata.stack}}/'
        '{{identity.entity.aliases.auth_jwt_1234.metadata.phase}}"' in runner
    )
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert "<" not in text.replace("<-", ""), path.name
    assert 'path "kv/data/az/prod/*"' in (tmp_path / "azsidecar-sidecar.hcl").read_text()
    issuer = (tmp_path / "azsidecar-issuer.hcl").read_text()
    assert 'path "transit/sign/azsidecar-issuer/sha2-256"' in issuer


def test_the_templates_default_to_secret_and_azsidecar() -> None:
    result = CliRunner().invoke(policies, ["render", "--jwt-accessor", "acc"])
    assert result.exit_code == 0, result.output
    assert 'path "secret/metadata/azsidecar/credentials/*"' in result.output


@pytest.mark.parametrize("bad", ["../x", "a b", "x}}", ""])
def test_values_that_change_a_path_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        render_policy(template("runner"), {"jwt_accessor": bad})
