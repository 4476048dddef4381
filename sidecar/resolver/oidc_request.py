"""The resolver's ID-token endpoint: what azurerm calls ``ARM_OIDC_REQUEST_URL``.

A long apply outlives one federated token (ten minutes by default). The
azurerm provider, through hashicorp/go-azure-sdk (``sdk/auth/github_oidc_authorizer.go``),
can fetch a fresh token whenever it needs to sign in again, the way it does in
GitHub Actions, given ``ARM_USE_OIDC=true``, ``ARM_OIDC_REQUEST_URL`` and
``ARM_OIDC_REQUEST_TOKEN``. What that client does, and so what this endpoint
answers:

* ``GET`` the URL as given, with the query parameter ``audience`` added as
  ``api://AzureADTokenExchange`` when the URL carries none;
* headers ``Authorization: Bearer <ARM_OIDC_REQUEST_TOKEN>`` and
  ``Accept: application/json``;
* any 2xx answer is read as JSON ``{"value": "<jwt>"}`` (``count`` optional);
  anything else fails the sign-in with the status and body in the message.

Here ``ARM_OIDC_REQUEST_URL`` is
``https://<resolver>/oidc/token?stack=<stack>&phase=<phase>`` and
``ARM_OIDC_REQUEST_TOKEN`` the run's own Vault token. Authorisation is the
resolver's (:class:`sidecar.resolver.auth.VaultAuthorizer`): the token must
be allowed to read ``<mount>/creds/<stack>/<phase>`` and its login must be
for that stack and phase, so one policy path still governs secrets and
tokens. The token is signed by the same path as every read
(:func:`sidecar.resolve.resolve_credential`), so a switch of kind or a key
not yet published answers as the readers do: a refusal, with ``Retry-After``
when it is known. Only a federated integration has a token to give; for
another kind the answer is 409. The Vault token and the JWT never reach a log.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from sidecar.answers import Refusal, ResolvedCredential, check_name, parse_phase
from sidecar.errors import (
    InputError,
    NotFoundError,
    NotReadyError,
    VaultError,
    VaultUnavailable,
)
from sidecar.issuer.documents import ENTRA_AUDIENCE  # what go-azure-sdk asks when none is set
from sidecar.phases import Phase
from sidecar.resolver.auth import Access, VaultAuthorizer
from sidecar.resolver.limiter import FailureLimiter

log = logging.getLogger(__name__)

PATH = "/oidc/token"
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    503: "Service Unavailable",
}

Resolve = Callable[[str, Phase, datetime], ResolvedCredential]


class OidcTokenApp:
    """The WSGI app of the endpoint; ``resolve`` is the resolver's own read (with its signer)."""

    def __init__(
        self,
        authorizer: VaultAuthorizer,
        resolve: Resolve,
        now: Callable[[], datetime],
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.authorizer = authorizer
        self.resolve = resolve
        self.now = now
        self.limiter = limiter or FailureLimiter()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        status, body, extra = self._answer(environ)
        headers = _JSON + extra
        start_response(f"{status} {_REASONS[status]}", headers)
        return [json.dumps(body).encode()]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any], list[Any]]:
        if environ.get("PATH_INFO") != PATH:
            return 404, {"error": f"not found: the token endpoint is {PATH}"}, []
        query = parse_qs(str(environ.get("QUERY_STRING") or ""), keep_blank_values=True)
        try:
            stack = check_name(_one(query, "stack"), "stack")
            phase = parse_phase(_one(query, "phase"))
            audience = _one(query, "audience", ENTRA_AUDIENCE)
        except InputError as exc:
            return 400, {"error": str(exc)}, []
        peer = str(environ.get("REMOTE_ADDR") or "")
        wait = self.limiter.retry_after(peer)
        if wait:
            return 429, {"error": "too many invalid tokens from this address"}, _retry(wait)
        token = _bearer(str(environ.get("HTTP_AUTHORIZATION") or ""))
        asks_vault = token is not None and not self.authorizer.known_refused(token)
        try:
            access = self.authorizer.check(token, stack, phase)
        except VaultError as exc:
            return 503, {"error": f"cannot check the token: {exc}"}, []
        if access is Access.UNAUTHENTICATED:
            if asks_vault:
                self.limiter.refused(peer)
            message = "send the run's Vault token as 'Authorization: Bearer <token>'"
            return 401, {"error": message}, [("WWW-Authenticate", "Bearer")]
        if access is not Access.GRANTED:
            return 403, {"error": f"the token may not read stack {stack} phase {phase}"}, []
        now = self.now()
        try:
            cred = self.resolve(stack, phase, now)
        except NotReadyError as exc:
            refusal = Refusal.not_ready(f"stack {stack} phase {phase}: {exc}", exc, now)
            after = refusal.retry_after
            extra = [] if after is None else _retry(int(after.total_seconds()))
            return 503, {"error": refusal.message, "answer": refusal.to_data()}, extra
        except NotFoundError as exc:
            return 404, {"error": str(exc)}, []
        except VaultUnavailable as exc:
            return 503, {"error": str(exc)}, []
        except VaultError as exc:
            log.error("token endpoint cannot read for stack %s phase %s: %s", stack, phase, exc)
            return 503, {"error": "the resolver cannot read its KV data"}, []
        if cred.federated is None:
            message = (
                f"stack {stack} phase {phase} hands out a {cred.kind.noun} now, not a federated"
                " token: read it with azsidecar creds"
            )
            return 409, {"error": message}, []
        token_text = cred.federated.token.reveal()
        if audience != _audience(token_text):
            message = "audience is not the one the integration's federated credential trusts"
            return 400, {"error": message}, []
        log.info("token endpoint: stack %s phase %s integration %s", stack, phase, cred.integration)
        return 200, {"value": token_text}, []


def _one(query: dict[str, list[str]], name: str, default: str | None = None) -> str:
    values = query.get(name)
    if not values:
        if default is None:
            raise InputError(f"the query parameter {name} is required")
        return default
    if len(values) > 1:
        raise InputError(f"the query parameter {name} is given more than once")
    return values[0]


def _audience(token: str) -> str:
    """The ``aud`` of a token this resolver just signed (its payload, unverified)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get("aud", ""))


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _retry(seconds: int) -> list[tuple[str, str]]:
    return [("Retry-After", str(max(1, seconds)))]
