"""The emulator in its own process for the benchmarks, seeded in bulk from a file.

Run as ``python -m bench.emuproc SEED.json``. A separate process keeps the
emulator's CPU and memory out of the daemon's measurement. Seeding goes
through the emulator's state in-process (10,000 applications through the
admin API would take minutes); the seed file carries only secret hashes.

Protocol on stdin/stdout, one JSON object per line:

* at start it prints ``{"base_url", "ca_path", "mgmt": {...}}`` with the clock
  frozen (manual) at the seed's ``clock_start``;
* ``{"cmd": "start", "factor": F, "drain": bool}`` starts the clock at ``F``
  emulated seconds per real second, optionally with the write quota already
  spent, and answers with the clock (``origin_virtual``, ``origin_real``);
* ``{"cmd": "stats"}`` answers with Graph call counts since the start;
* ``{"cmd": "quit"}`` (or end of input) stops the server.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sidecar.emulator import EmulatorConfig, EmulatorServer
from sidecar.emulator.calllog import CallLog
from sidecar.emulator.records import MULTI_TENANT, Application, PasswordCredential
from sidecar.emulator.state import EmulatorState
from sidecar.emulator.throttle import ThrottleConfig


def _seed(state: EmulatorState, spec: dict[str, Any]) -> dict[str, Any]:
    tenant = str(spec["tenant"])
    state.seed_tenant(tenant, display_name="CI platform")
    mgmt = state.seed_management_app(tenant, certificate_pem=str(spec["mgmt_cert_pem"]))
    with state.lock:
        for object_id, app_id, name, key_id, key_name, start, end, digest in spec["apps"]:
            password = PasswordCredential(
                key_id, key_name, float(start), float(end), "bnc", str(digest)
            )
            app = Application(
                object_id=object_id,
                app_id=app_id,
                display_name=name,
                tenant_id=tenant,
                created=float(start),
                sign_in_audience=MULTI_TENANT,
                owners=(mgmt.app_id,),
                passwords=(password,),
            )
            state.write_app(app, None)
    return {"object_id": mgmt.object_id, "app_id": mgmt.app_id, "key_id": mgmt.key_id}


def _stats(state: EmulatorState, since: int) -> dict[str, Any]:
    with state.lock:
        calls = state.calls.query(since=since)
        dropped = state.calls.next_index - since - len(calls)
    graph = [c for c in calls if c.kind == "graph"]
    ops: Counter[str] = Counter()
    for c in graph:
        op = c.path.rsplit("/", 1)[-1] if c.method == "POST" else c.method
        ops[f"{op}:{c.status}"] += 1
    writes_ok = [c.time for c in graph if c.method != "GET" and 200 <= c.status < 300]
    throttled = [c.time for c in graph if c.status == 429]
    return {
        "graph_calls": len(graph),
        "token_calls": sum(1 for c in calls if c.kind == "token"),
        "graph_reads": sum(1 for c in graph if c.method == "GET"),
        "graph_writes_ok": len(writes_ok),
        "graph_throttled": len(throttled),
        "graph_errors": sum(1 for c in graph if c.status >= 400 and c.status != 429),
        "operations": dict(sorted(ops.items())),
        "first_call": min((c.time for c in graph), default=None),
        "last_write": max(writes_ok, default=None),
        "first_throttled": min(throttled, default=None),
        "writes_after_first_throttled": sum(
            1 for t in writes_ok if throttled and t >= throttled[0]
        ),
        "now": state.now(),
        "calls_lost": dropped,
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    throttle = spec.get("throttle")
    config = EmulatorConfig(
        clock_mode="manual",
        clock_start=float(spec["clock_start"]),
        seed=int(spec.get("seed", 1)),
        lag_profile=str(spec.get("lag_profile", "default")),
        throttle=ThrottleConfig.from_dict(throttle) if throttle else None,
    )
    server = EmulatorServer(config)
    server.state.calls = CallLog(capacity=int(spec.get("call_log", 400_000)))
    mgmt = _seed(server.state, spec)
    server.start()
    print(
        json.dumps({"base_url": server.base_url, "ca_path": str(server.ca_path), "mgmt": mgmt}),
        flush=True,
    )
    since = 0
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "start":
                state = server.state
                with state.lock:
                    state.clock.set_factor(float(command["factor"]))
                    since = state.calls.next_index
                    if command.get("drain") and state.throttle.config.writes is not None:
                        # The quota already spent: the bucket starts empty.
                        key = (mgmt["app_id"], str(spec["tenant"]), "writes")
                        state.throttle._buckets[key] = (0.0, state.now())
                print(json.dumps(state.clock.to_dict()), flush=True)
            elif command["cmd"] == "stats":
                print(json.dumps(_stats(server.state, since)), flush=True)
            elif command["cmd"] == "quit":
                break
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
