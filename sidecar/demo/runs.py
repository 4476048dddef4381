"""Simulated CI runs: what a runner does for ``terraform plan`` / ``apply``, minus terraform.

One run: the CI platform signs a JWT naming the stack and phase; the runner
logs in to Vault with it, fetches the ready credential (through the plugin's
``azsidecar/creds/<stack>/<phase>`` or the daemon's gRPC resolver, with the same
token), signs in at the emulator's token endpoint with the client secret as
the azurerm provider would (each request lands on a random directory replica,
so a secret that has not replicated fails with AADSTS7000215), and reads the
subscription through ARM. Any step failing fails the run.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import hvac
import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from sidecar.answers import ResolvedCredential
from sidecar.demo.emulator_admin import https_session
from sidecar.errors import SidecarError
from sidecar.graph import ARM_SCOPE
from sidecar.model import DEFAULT_CREDS_MOUNT, Phase
from sidecar.resolver.client import ResolverClient
from sidecar.runner.source import read_plugin
from sidecar.vault import connect

Path_ = Literal["plugin", "resolver"]

#: https://learn.microsoft.com/entra/identity-platform/certificate-credentials
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def token_form(credential: ResolvedCredential, token_url: str) -> dict[str, str]:
    """The client-credentials request body: the client secret, or a certificate's assertion.

    The assertion is what MSAL sends for a certificate (Microsoft's "certificate
    credentials" format, linked above): RS256 over ``aud`` (the token endpoint),
    ``iss`` = ``sub`` = the client id, a ``jti`` and a ten-minute life, with the
    certificate's SHA-1 thumbprint as ``x5t``. The key is read from the PKCS#12
    bundle in memory and dropped with it.
    """
    form = {
        "grant_type": "client_credentials",
        "client_id": credential.client_id,
        "scope": ARM_SCOPE,
    }
    if credential.certificate is None:
        return form | {"client_secret": credential.client_secret.reveal()}
    key, cert, _ = pkcs12.load_key_and_certificates(
        base64.b64decode(credential.certificate.bundle.reveal()),
        credential.certificate.password.reveal().encode(),
    )
    if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
        raise ValueError("the certificate credential's bundle holds no RSA key and certificate")
    digest = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest()  # noqa: S324
    now = int(time.time())
    claims = {
        "aud": token_url,
        "iss": credential.client_id,
        "sub": credential.client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    }
    x5t = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assertion = jwt.encode(claims, key, algorithm="RS256", headers={"x5t": x5t})
    return form | {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}


PATHS: tuple[Path_, ...] = ("plugin", "resolver")
AUDIENCE = "azsidecar"  # vault-config/runner-role.json: bound_audiences


@dataclass(frozen=True)
class RunResult:
    at: datetime
    stack: str
    phase: Phase
    path: Path_
    integration: str
    ok: bool
    stage: str = ""  # where it failed: login, credential, sign-in, arm
    reason: str = ""
    fetch_seconds: float = 0.0  # real seconds to log in and get the credential
    status: int = 0  # the HTTP status of the answer that failed the run (sign-in, arm)

    @property
    def auth_failure(self) -> bool:
        """Azure refused the credential: the failure this product exists to prevent."""
        return not self.ok and self.stage == "sign-in"


@dataclass
class RunTally:
    """Thread-safe totals for the progress lines and the summary."""

    results: list[RunResult] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, results: Iterable[RunResult]) -> None:
        with self._lock:
            self.results.extend(results)

    @property
    def runs(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if not r.ok]

    def by(self, *, integration: str | None = None, path: str | None = None) -> list[RunResult]:
        return [
            r
            for r in self.results
            if (integration is None or r.integration == integration)
            and (path is None or r.path == path)
        ]

    def failure_reasons(self) -> Counter[str]:
        return Counter(f"{r.stage}: {r.reason}" for r in self.failed)


class Runner:
    """Plays the CI platform (JWT issuer) and its runners against the demo's services."""

    def __init__(
        self,
        *,
        vault_addr: str,
        jwt_key: rsa.RSAPrivateKey,
        jwt_role: str,
        resolver_addr: str,
        login_url: str,
        arm_url: str,
        ca_path: str,
        plugin_mount: str = DEFAULT_CREDS_MOUNT,
        resolver_ca: str | None = None,
    ) -> None:
        self.vault_addr = vault_addr
        self.jwt_key = jwt_key
        self.jwt_role = jwt_role
        self.login_url = login_url.rstrip("/")
        self.arm_url = arm_url.rstrip("/")
        self.plugin_mount = plugin_mount
        self.resolver_addr = resolver_addr
        self.resolver_ca = resolver_ca
        self.resolver = ResolverClient(resolver_addr, ca_file=resolver_ca, timeout=30)
        self._local = threading.local()
        self._ca_path = ca_path
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="demo-run")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.resolver.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = https_session(self._ca_path)
            self._local.session = session
        return session

    def ci_jwt(self, stack: str, phase: Phase) -> str:
        """The CI platform's token for one run (real time: OpenBao checks it)."""
        now = datetime.now(UTC)
        claims = {
            "iss": "https://ci.example/demo",
            "sub": f"{stack}:{phase}",
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now - timedelta(seconds=5),
            "exp": now + timedelta(minutes=5),
            "stack": stack,
            "phase": str(phase),
            "stack_phase": f"{stack}:{phase}",  # the runner role's user claim
        }
        return jwt.encode(claims, self.jwt_key, algorithm="RS256")

    def submit_slot(self, stack: str, at: datetime, tally: RunTally) -> list[Future[RunResult]]:
        """One schedule slot: a plan and an apply run, each through both paths.

        The runs go to a small pool and are not waited for, so a slow slot
        delays the next one's runs rather than dropping them.
        """
        jobs = []
        for phase in (Phase.PLAN, Phase.APPLY):
            for path in PATHS:
                job = self._pool.submit(self.run, stack, phase, path, at)
                job.add_done_callback(lambda done: tally.add([done.result()]))
                jobs.append(job)
        return jobs

    def run(self, stack: str, phase: Phase, path: Path_, at: datetime) -> RunResult:
        def failed(stage: str, reason: str, integration: str = "") -> RunResult:
            return RunResult(at, stack, phase, path, integration, False, stage, reason[:160])

        started = time.monotonic()
        try:
            client = connect(self.vault_addr, jwt=("jwt", self.jwt_role, self.ci_jwt(stack, phase)))
        except SidecarError as exc:
            return failed("login", str(exc))
        try:
            credential = self._fetch(client, stack, phase, path)
        except SidecarError as exc:
            return failed("credential", f"{type(exc).__name__}: {exc}")
        finally:
            client.adapter.close()
        fetched = time.monotonic() - started
        return replace(self._use(credential, stack, phase, path, at), fetch_seconds=fetched)

    def _fetch(
        self, client: hvac.Client, stack: str, phase: Phase, path: Path_
    ) -> ResolvedCredential:
        if path == "plugin":
            return read_plugin(client, self.plugin_mount, stack, phase)
        if self.resolver_ca is None:
            return self.resolver.resolve(str(client.token), stack, phase)
        # Over TLS each run connects afresh, as a runner process does, so every run
        # sees the certificate the resolver serves now (the soak rotates it).
        fresh = ResolverClient(self.resolver_addr, ca_file=self.resolver_ca, timeout=30)
        try:
            return fresh.resolve(str(client.token), stack, phase)
        finally:
            fresh.close()

    def _use(
        self, credential: ResolvedCredential, stack: str, phase: Phase, path: Path_, at: datetime
    ) -> RunResult:
        """Sign in with the credential and read the subscription, as terraform's azurerm would.

        Like the Azure SDK, a run whose access token expired before ARM saw it
        signs in again once: at thousands of times real speed an emulated hour
        of token lifetime is about a real second.
        """
        name = credential.integration

        def result(ok: bool, stage: str = "", reason: str = "", status: int = 0) -> RunResult:
            return RunResult(at, stack, phase, path, name, ok, stage, reason[:160], status=status)

        session = self._session()
        try:
            for attempt in range(2):
                token_url = f"{self.login_url}/{credential.tenant_id}/oauth2/v2.0/token"
                token = session.post(token_url, data=token_form(credential, token_url), timeout=30)
                if token.status_code != 200:
                    description = str(token.json().get("error_description"))
                    return result(False, "sign-in", description, token.status_code)
                arm = session.get(
                    f"{self.arm_url}/subscriptions/{credential.subscription_id}",
                    params={"api-version": "2022-12-01"},
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                    timeout=30,
                )
                if arm.status_code == 200:
                    return result(True)
                if "ExpiredAuthenticationToken" not in arm.text or attempt:
                    reason = f"{arm.status_code} {arm.text[:120]}"
                    return result(False, "arm", reason, arm.status_code)
        except (requests.RequestException, ValueError) as exc:
            return result(False, "network", type(exc).__name__)
        raise AssertionError("unreachable")
