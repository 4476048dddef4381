"""The command `azsidecar exec` runs in the certificate tests: a terraform stand-in.

It looks at the file ``ARM_CLIENT_CERTIFICATE_PATH`` names (mode, its
directory's mode), signs in with it through MSAL at the emulator named by
``TEST_LOGIN_URL``/``TEST_ARM_URL`` (CA ``TEST_CA``), reads the subscription,
and writes what it saw as JSON to ``argv[1]``; with ``--then-wait`` it then
waits to be signalled, with ``--then-die`` it kills itself.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import requests

from tests.pfx import sign_in_and_read_subscription


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    path = Path(os.environ["ARM_CLIENT_CERTIFICATE_PATH"])
    session = requests.Session()
    session.verify = os.environ["TEST_CA"]
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would override verify
    ok, why = sign_in_and_read_subscription(
        login_url=os.environ["TEST_LOGIN_URL"],
        arm_url=os.environ["TEST_ARM_URL"],
        session=session,
        tenant_id=os.environ["ARM_TENANT_ID"],
        client_id=os.environ["ARM_CLIENT_ID"],
        subscription_id=os.environ["ARM_SUBSCRIPTION_ID"],
        bundle=path.read_bytes(),
        password=os.environ["ARM_CLIENT_CERTIFICATE_PASSWORD"],
    )
    seen = {
        "path": str(path),
        "mode": stat.S_IMODE(path.stat().st_mode),
        "dir_mode": stat.S_IMODE(path.parent.stat().st_mode),
        "ok": ok,
        "why": why,
        "cmdline": Path("/proc/self/cmdline").read_bytes().decode(errors="replace"),
        "secret_variables": sorted(k for k in os.environ if k == "ARM_CLIENT_SECRET"),
    }
    out.write_text(json.dumps(seen))
    if "--then-wait" in argv:
        time.sleep(60)
    if "--then-die" in argv:
        os.kill(os.getpid(), signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
