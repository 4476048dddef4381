"""Failpoints for crash-safety tests.

``AZSIDECAR_TEST_CRASH_AT=<name>`` makes the process kill itself with SIGKILL
when it reaches the named step, the way a power cut or an OOM kill would stop
it. Unset (always, in production) it does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "AZSIDECAR_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
