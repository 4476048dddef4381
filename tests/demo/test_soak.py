"""The real-time soak, shortened to two minutes (``make soak`` runs ten, with the issue's TTLs).

The demo's whole set-up (OpenBao with the plugin, the emulator, the daemon, a
stand-alone TLS resolver, CI runs through the plugin and the resolver, a JWT
signed per run) where every component logs in with AppRole tokens that live
10 s (30 s at most): four maximum TTLs in two minutes. The resolver's certificate,
from the soak's CA, lives 80 s and is replaced every 40 s. No run and no daemon
operation may fail; every component renews and logs in again as the rule says;
memory and open files stay flat.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sidecar.demo.soak import SoakOptions, run_soak

MINUTES = 2.0
TTL, MAX_TTL = timedelta(seconds=10), timedelta(seconds=30)


@pytest.mark.slow
def test_two_minutes_of_short_logins_and_certificate_rotations(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_soak(
        SoakOptions(
            minutes=MINUTES,
            token_ttl=TTL,
            token_max_ttl=MAX_TTL,
            cert_every=timedelta(seconds=40),
            speed=720.0,  # 24 emulated hours: a rotation per integration, a certificate renewal
            logs=tmp_path / "logs",
        ),
        lines.append,
    )
    start = next(i for i, line in enumerate(lines) if line.startswith("soak: "))
    print("\n" + "\n".join(lines[start : start + 13]))
    assert result.demo.failed == 0 and result.demo.runs >= 400, lines[-30:]
    assert result.demo.rotations >= 2 and result.demo.doctor_ok
    assert not any(result.daemon_failures.values()), result.daemon_failures
    assert result.token_problems == {"daemon": "", "plugin": ""}, result.token_problems
    assert result.unhealthy_samples == 0
    periods = int(MINUTES * 60 / MAX_TTL.total_seconds())
    for part, (renewals, logins) in result.tokens.items():
        # A login per maximum TTL (the first one included), renewals at 2/3 of each TTL.
        assert logins >= periods, (part, result.tokens)
        assert renewals >= logins, (part, result.tokens)
    # Each run connects to the resolver afresh: every rotation was served.
    assert result.resolver_runs >= 200
    assert result.cert_rotations >= 2
    assert result.cert_reloads_logged == result.cert_rotations
    for name, (rss0, rss1, fd0, fd1) in result.growth().items():
        assert rss1 <= rss0 * 1.25 + 10 * 1024, (name, rss0, rss1)
        assert fd1 <= fd0 + 10, (name, fd0, fd1)
