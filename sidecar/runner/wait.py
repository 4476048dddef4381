"""Waiting for a credential that is not ready yet (a brand-new integration).

The wait follows the server's own "retry after" count rather than comparing
its ``ready_at`` with the local clock, so clock skew between the runner and
Vault (or an emulated clock in the demo) cannot make it give up early or
hammer the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sidecar.durations import format_duration
from sidecar.errors import NotReadyError
from sidecar.resolve import ResolvedCredential
from sidecar.resolver.client import NotReadyYet

#: How often to ask again when the server does not say when.
POLL = 5.0
#: Longest single sleep, so progress keeps showing.
MAX_STEP = 30.0
#: Added to the server's count, which is rounded to whole seconds.
MARGIN = 0.25


def fetch_ready(
    fetch: Callable[[], ResolvedCredential],
    wait: timedelta,
    progress: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> ResolvedCredential:
    """``fetch()``, retried while it raises NotReadyError, for at most ``wait``."""
    deadline = monotonic() + wait.total_seconds()
    while True:
        try:
            return fetch()
        except NotReadyError as exc:
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
