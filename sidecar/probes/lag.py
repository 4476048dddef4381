"""The lag the probes measured, kept in Vault, and what it says about the delay.

Each verified credential leaves one sample: seconds from creation to its
first successful probe and to its last refused one (0 if none was refused).
The last refusal is the better estimate of the directory's lag: a sign-in
refused at ``t`` proves some replica lacked the secret ``t`` after creation.
Samples live in Vault through :class:`sidecar.store.Store` (the newest
:data:`KEEP`), written by the leader only, so ``azsidecar doctor`` and a
restarted daemon see the same history. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sidecar.probes.rule import ProbeRecord
from sidecar.timing import TimingPolicy

#: How many samples :meth:`sidecar.store.Store.append_lag_sample` keeps (the newest).
KEEP = 500


@dataclass(frozen=True)
class LagSample:
    first_success: float
    last_failure: float


def sample_of(record: ProbeRecord, created: datetime) -> LagSample | None:
    if record.first_success is None:
        return None
    last = record.last_failure
    return LagSample(
        first_success=max(0.0, (record.first_success - created).total_seconds()),
        last_failure=0.0 if last is None else max(0.0, (last - created).total_seconds()),
    )


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def worst(samples: Sequence[LagSample]) -> float:
    return max((max(s.first_success, s.last_failure) for s in samples), default=0.0)


def raised_delay(samples: Sequence[LagSample], policy: TimingPolicy) -> timedelta:
    """The delay a new secret gets: the floor, or (``raise_delay``) the worst lag seen
    plus ``raise_margin``, never beyond what ``secret_renew_before`` leaves room for."""
    if not policy.raise_delay or not samples:
        return policy.propagation_delay
    wanted = timedelta(seconds=worst(samples)) + policy.raise_margin
    return max(policy.propagation_delay, min(wanted, policy.max_effective_delay))


def assessment(samples: Sequence[LagSample], policy: TimingPolicy) -> tuple[bool, str]:
    """Whether ``propagation_delay`` covers what the probes saw, in one sentence."""
    if not samples:
        return True, "no probe measurements yet"
    seen = timedelta(seconds=round(worst(samples)))
    if seen < policy.propagation_delay:
        return True, (
            f"propagation_delay {policy.propagation_delay} covers the worst lag observed "
            f"({seen} over {len(samples)} secrets)"
        )
    return False, (
        f"propagation_delay {policy.propagation_delay} is SHORTER than the worst lag observed "
        f"({seen} over {len(samples)} secrets): probes held those secrets back; raise "
        f"timing.propagation_delay or set timing.raise_delay = true (at most "
        f"{policy.max_effective_delay} with secret_renew_before {policy.secret_renew_before})"
    )
