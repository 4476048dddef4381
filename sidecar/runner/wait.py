"""Waiting for a credential that is not ready yet, or for Vault to come back.

Two things are retried while ``--wait`` lasts: a credential that is not ready
yet (a brand-new integration), and Vault or the resolver being unreachable
(a restart, a leader election, a network cut). Everything else -- a refusal,
a missing stack, bad input -- is final at once.

The wait for readiness follows the server's own "retry after" count rather than comparing
its ``ready_at`` with the local clock, so clock skew between the runner and
Vault (or an emulated clock in the demo) cannot make it give up early or
hammer the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sidecar.answers import NotReadyYet, ResolvedCredential
from sidecar.durations import format_duration
from sidecar.errors import NotReadyError, VaultUnavailable

#: How often to ask again when the server does not say when.
POLL = 5.0
#: Longest single sleep, so progress keeps showing.
MAX_STEP = 30.0
#: Added to the server's count, which is rounded to whole seconds.
MARGIN = 0.25
#: First and longest pause while Vault or the resolver cannot be reached.
OUTAGE_FIRST, OUTAGE_MAX = 1.0, 15.0


def fetch_ready(
    fetch: Callable[[], ResolvedCredential],
    wait: timedelta,
    progress: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> ResolvedCredential:
    """``fetch()``, retried while not ready or unreachable, for at most ``wait``."""
    deadline = monotonic() + wait.total_seconds()
    outage_step = OUTAGE_FIRST
    while True:
        try:
            return fetch()
        except VaultUnavailable as exc:
            remaining = deadline - monotonic()
            if wait <= timedelta(0):
                raise
            if remaining <= 0:
                raise VaultUnavailable(
                    f"{exc} -- still unreachable after --wait {format_duration(wait)}"
                ) from exc
            step = min(outage_step, remaining)
            outage_step = min(outage_step * 2, OUTAGE_MAX)
            progress(f"{exc}; asking again in {step:.0f}s")
            sleep(step)
        except NotReadyError as exc:
            outage_step = OUTAGE_FIRST
            remaining = deadline - monotonic()
            retry = exc.retry_after if isinstance(exc, NotReadyYet) else None
            if wait <= timedelta(0):
                raise
            if remaining <= 0 or (retry is not None and retry.total_seconds() > remaining):
                raise NotReadyError(
                    f"{exc} -- not within --wait {format_duration(wait)}", exc.ready_at
                ) from exc
            step = retry.total_seconds() + MARGIN if retry is not None else POLL
            step = min(step, remaining, MAX_STEP)
            when = f"ready in {format_duration(retry)}" if retry is not None else "not yet ready"
            progress(f"waiting for a ready credential ({when}); asking again in {step:.0f}s")
            sleep(step)
