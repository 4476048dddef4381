"""Doctor's look at a running daemon's ``/healthz`` (our own process, not Vault or Azure)."""

from __future__ import annotations

import requests

from sidecar.doctor.check import Check


def daemon_health(url: str) -> Check:
    try:
        response = requests.get(f"{url.rstrip('/')}/healthz", timeout=5)
        health = response.json()
    except (requests.RequestException, ValueError):
        return Check(
            "warn",
            f"no daemon answering at {url}/healthz",
            "start `azsidecar daemon`, or pass --daemon-url if it runs elsewhere",
        )
    if response.status_code == 200:
        last = health.get("last_tick") or "none yet"
        leader = "leader" if health.get("leader") else "standby"
        return Check("ok", f"daemon at {url}: healthy, {leader}, last tick {last}")
    problem = str(health.get("last_error") or "")
    token = health.get("vault_token")
    if isinstance(token, dict) and token.get("problem"):
        problem = f"Vault token: {token['problem']}"
    return Check(
        "fail",
        f"daemon at {url} reports a problem: {problem[:240]}",
        "see the daemon's logs; `azsidecar doctor` above names what is broken",
    )
