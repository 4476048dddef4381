"""The OIDC issuer: how long a token takes to sign, how fast the JWKS is served.

One OpenBao dev server with Transit, the issuer's key made and published
(a :class:`ManualClock` moved past ``publish_ahead`` from Transit's stamp):

* ``sign_token``: :meth:`sidecar.issuer.signing.Issuer.sign_token`, sequential,
  one hvac client: a key read and a sign call to Transit, plus the JWT's
  encoding; p50 / p95 in ms;
* ``jwks read``: :meth:`Issuer.jwks`, the Transit key read and the JWKS built,
  what a daemon does at most every 5 s;
* ``jwks endpoint``: GET of the JWKS from the daemon's HTTPS listener
  (:mod:`sidecar.issuer.listener`, a CA made for the run), served from its
  cache; a new TLS connection per request (the listener closes each), with 1
  and 4 client threads, in requests per second.

``python -m bench.issuer [--quick]`` prints the figures and the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from sidecar.clock import ManualClock
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.emulator.tls import prepare_server_tls
from sidecar.issuer.documents import IssuerIdentity, TokenRequest
from sidecar.issuer.listener import serve, tls_context
from sidecar.issuer.signing import Issuer
from sidecar.transit import Transit
from sidecar.vault import connect

URL = "https://issuer.example.com/azsidecar"
REQUEST = TokenRequest(subject="azsidecar:web:plan", stack="web", phase="plan", integration="w")


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def _timed(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def _rate(url: str, ca: str, threads: int, seconds: float) -> dict[str, float]:
    """Requests per second from ``threads`` clients for ``seconds``, and errors."""
    done = [0] * threads
    errors = [0] * threads
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            answer = session.get(url, verify=ca, timeout=10)
            if answer.status_code == 200:
                done[index] += 1
            else:
                errors[index] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return {"threads": threads, "rps": sum(done) / elapsed, "errors": float(sum(errors))}


def run(quick: bool = False) -> dict[str, Any]:
    count = 30 if quick else 300
    seconds = 1.0 if quick else 5.0
    with (
        tempfile.TemporaryDirectory(prefix="bench-issuer-") as work,
        OpenBaoDevServer() as openbao,
    ):
        client = connect(openbao.addr, token=openbao.root_token)
        client.sys.enable_secrets_engine("transit", path="transit")
        transit = Transit(client, "transit")
        key = transit.ensure_key("issuer")
        created = key.versions[key.latest_version].created
        clock = ManualClock(datetime.now(UTC))
        issuer = Issuer(transit, IssuerIdentity(URL), clock, key_name="issuer")
        clock.set(created + issuer.policy.publish_ahead + timedelta(minutes=1))
        issuer.sign_token(REQUEST)  # warm the connection
        sign = _percentiles(_timed(lambda: issuer.sign_token(REQUEST), count))
        read = _percentiles(_timed(issuer.jwks, count))
        tls = prepare_server_tls(Path(work) / "tls")
        server = serve(issuer, "127.0.0.1", 0, tls_context(str(tls.cert_path), str(tls.key_path)))
        try:
            url = f"https://localhost:{server.port}/azsidecar/.well-known/jwks.json"
            ca = str(tls.ca_path)
            one = _rate(url, ca, 1, seconds)
            four = _rate(url, ca, 4, seconds)
        finally:
            server.shutdown()
    return {"sign_token": sign, "jwks_read": read, "endpoint": [one, four]}


def rows(result: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Rows for bench.report's table."""
    if not result:
        return []
    sign, read = result["sign_token"], result["jwks_read"]
    out = [
        (
            "issuer",
            "sign_token (Transit key read + sign)",
            f"p50 {sign['p50_ms']:.2f} ms, p95 {sign['p95_ms']:.2f} ms",
            f"n={sign['n']}, sequential",
        ),
        (
            "issuer",
            "JWKS from Transit (cache miss)",
            f"p50 {read['p50_ms']:.2f} ms, p95 {read['p95_ms']:.2f} ms",
            f"n={read['n']}; a daemon reads it at most every 5 s",
        ),
    ]
    for figures in result["endpoint"]:
        side = "HTTPS, a TLS handshake per request (cached JWKS)"
        if figures["errors"]:
            side += f", {figures['errors']:.0f} FAILED"
        out.append(
            (
                "issuer",
                f"JWKS endpoint, {figures['threads']} client thread(s)",
                f"{figures['rps']:.0f} req/s",
                side,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.issuer", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = run(args.quick)
    for row in rows(result):
        print(" | ".join(row))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
