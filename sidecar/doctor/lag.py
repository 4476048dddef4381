"""What the daemon's sign-in probes measured, and whether ``propagation_delay`` covers it."""

from __future__ import annotations

from sidecar.config import Config
from sidecar.doctor.check import Check
from sidecar.errors import VaultError
from sidecar.probes import lag
from sidecar.store import Store


def observed_lag(store: Store, config: Config) -> Check:
    """The quantiles of the measured lag (:mod:`sidecar.probes.lag`) and the verdict."""
    try:
        samples, _ = store.lag_samples()
    except VaultError as exc:
        return Check("warn", f"cannot read the measured lag: {exc}")
    if not samples:
        return Check("ok", "lag: no probe measurements yet (the daemon records them)")
    first = [s.first_success for s in samples]
    last = [s.last_failure for s in samples]

    def spread(values: list[float]) -> str:
        qs = ", ".join(f"p{int(q * 100)} {lag.quantile(values, q):.0f}s" for q in (0.5, 0.9, 0.99))
        return f"{qs}, max {max(values):.0f}s"

    safe, verdict = lag.assessment(samples, config.timing)
    line = (
        f"lag over {len(samples)} secrets: first sign-in {spread(first)}; last refusal "
        f"{spread(last)}; {verdict}"
    )
    return Check("ok" if safe else "warn", line)
