"""The CI platform's part of a run, for docker-compose.yml: sign the job's JWT.

In production the CI platform signs this token for each job; here the `ci`
service does, with the key the bootstrap made (volume ci-issuer, mounted only
here). It writes one JWT for one stack and phase into the volume runner-jwt,
the only credential the runner container is given. Never prints the token.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jwt

from sidecar.answers import check_name
from sidecar.errors import InputError
from sidecar.model import Phase

ISSUER_KEY = Path("/run/ci-issuer/ci-issuer.pem")
JOB_JWT = Path("/run/ci-jwt/ci.jwt")
LIFETIME_S = 900  # long enough for a run that waits for a new secret to be ready


def sign(stack: str, phase: str, key_pem: str, now: int) -> str:
    """The claims the shipped runner role (vault-config/runner-role.json) maps."""
    claims = {
        "iss": "https://ci.example/compose",
        "sub": f"{stack}:{phase}",
        "aud": "azsidecar",
        "iat": now,
        "nbf": now - 5,
        "exp": now + LIFETIME_S,
        "stack": stack,
        "phase": phase,
        "stack_phase": f"{stack}:{phase}",
    }
    return jwt.encode(claims, key_pem, algorithm="RS256")


def main() -> None:
    stack = os.environ.get("AZSIDECAR_STACK", "example")
    phase = os.environ.get("AZSIDECAR_PHASE", "plan")
    try:
        check_name(stack, "stack")
        Phase(phase)
    except (InputError, ValueError) as exc:
        sys.exit(f"ci: {exc}")
    token = sign(stack, phase, ISSUER_KEY.read_text(), int(time.time()))
    temp = JOB_JWT.with_name(f".{JOB_JWT.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(temp, JOB_JWT)
    print(f"ci: signed a job JWT for {stack}/{phase}, valid {LIFETIME_S} s")


if __name__ == "__main__":
    main()
