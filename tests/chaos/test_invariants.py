"""The chaos checker's own rules catch what they are meant to (so a clean run means something)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.chaos.invariants import AzureView, Checker, ReadyRule, VaultView

RULE = ReadyRule(timedelta(minutes=65), timedelta(minutes=30))


class _Vault:
    secrets_seen: ClassVar[set[str]] = {"s3cr3t-value-1234"}


def _checker() -> Checker:
    return Checker(cast(VaultView, _Vault()), cast(AzureView, None), RULE)


def _log(path: Path, lines: list[tuple[float, str]]) -> Path:
    path.write_text(
        "\n".join(
            json.dumps({"time": datetime.fromtimestamp(t, UTC).isoformat(), "message": m})
            for t, m in lines
        )
        + "\n"
    )
    return path


def test_the_ready_rule_is_the_documented_one() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    expires = created + timedelta(hours=24)
    assert not RULE.ready(created, expires, created + timedelta(minutes=64))
    assert RULE.ready(created, expires, created + timedelta(minutes=65))
    assert RULE.ready(created, expires, expires - timedelta(minutes=31))
    assert not RULE.ready(created, expires, expires - timedelta(minutes=30))


def test_one_writer_accepts_a_takeover_and_flags_two_writers_in_one_lease(tmp_path: Path) -> None:
    made = "created a client secret for app (version 2)"
    ok = _checker()
    logs = {
        "a": _log(tmp_path / "a.log", [(1, "acquired the leader lease"), (2, made)]),
        "b": _log(tmp_path / "b.log", [(3, "acquired the leader lease"), (4, made)]),
    }
    assert ok.one_writer(logs) == 2
    assert ok.findings.violations == []

    bad = _checker()
    logs = {
        "a": _log(tmp_path / "a2.log", [(1, "acquired the leader lease"), (3, made)]),
        "b": _log(tmp_path / "b2.log", [(2, "acquired the leader lease"), (4, made)]),
        "c": _log(tmp_path / "c2.log", [(5, made)]),
    }
    bad.one_writer(logs)
    found = " ".join(bad.findings.violations)
    assert "one-writer-per-lease" in found and "write-under-lease: c wrote" in found


def test_the_hygiene_sweep_finds_a_secret_and_a_private_key() -> None:
    checker = _checker()
    checker.hygiene({"clean": "nothing here", "log": "oops s3cr3t-value-1234"})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    checker.hygiene({"argv": pem})
    assert len(checker.findings.violations) == 2


class _Azure:
    def __init__(self, app: dict[str, object] | None) -> None:
        self.app = app

    def application(self, ident: str) -> dict[str, object] | None:
        return self.app


def test_a_handed_key_missing_from_its_application_is_a_violation() -> None:
    """An application that lost the key is a violation; an application deleted by the
    operator while the run was in flight is reported apart (the chaos run's seed 5)."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    app: dict[str, object] = {
        "passwordCredentials": [
            {"keyId": "other", "displayName": "azsidecar:x", "start": 0, "end": 0}
        ]
    }
    lost = Checker(cast(VaultView, _Vault()), cast(AzureView, _Azure(app)), RULE)
    lost.handed(now, now, "i", "client", "handed-key")
    assert lost.findings.violations and "does not hold" in lost.findings.violations[0]
    deleted = Checker(cast(VaultView, _Vault()), cast(AzureView, _Azure(None)), RULE)
    deleted.handed(now, now, "i", "client", "handed-key")
    assert not deleted.findings.violations and deleted.findings.excused
