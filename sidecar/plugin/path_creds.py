"""``creds/<stack>/<phase>``: the ready Azure credential for a run.

The response carries a non-renewable lease whose TTL ends when the credential
leaves its safe window (``safe_until``: expiry minus the safety margin).
Vault/OpenBao Agent templates re-render a leased secret shortly before its
lease ends (without a lease they would wait for
``static_secret_render_interval``), so agents switch to the next ready secret
in time. OpenBao records each lease; revoking one is a no-op because the
secret is shared and its lifetime is managed by the rotation daemon.

A federated credential (issue 18) is answered with a token signed at the
read, and without a lease: the token expires on its own
(``oidc_token_expires``, the issuer's token lifetime), which a lease could
only repeat; an agent template re-reads it at its render interval.

A credential that is not ready yet, or a stack or integration that does not
exist, is an error response: its message names the time to retry (as an ISO
timestamp and in seconds) for people, and its ``data`` carries the same as a
:class:`sidecar.answers.Refusal` for programs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sidecar.answers import (
    CREDS_PATTERN,
    Refusal,
    ResolvedCredential,
    check_name,
    iso,
    parse_phase,
)
from sidecar.errors import NotFoundError, NotReadyError
from sidecar.login_scope import scope_refusal
from sidecar.model import Phase
from sidecar.plugin.framework import (
    ErrType,
    Field,
    FieldData,
    FieldType,
    Lease,
    LogicalError,
    Op,
    Path,
    Request,
    Response,
    error_response,
)
from sidecar.plugin.mount import CredsMount
from sidecar.resolve import resolve_credential, resolve_from_cache

SECRET_TYPE = "azure_ready_credential"  # noqa: S105 (a lease type, not a secret)


def _response(cred: ResolvedCredential, stack: str, phase: Phase, now: datetime) -> Response:
    if cred.federated is not None:
        return Response(data=cred.to_data())
    # A zero TTL would mean "the mount's default" to OpenBao, so never send one.
    ttl = max(cred.safe_until - now, timedelta(seconds=1))
    return Response(
        data=cred.to_data(),
        lease=Lease(
            ttl=ttl,
            internal={
                "secret_type": SECRET_TYPE,
                "stack": stack,
                "phase": str(phase),
                "integration": cred.integration,
                "key_id": cred.key_id,
            },
        ),
    )


def refusal_response(refusal: Refusal) -> Response:
    """An error response: the message for people, the refusal as ``data`` for programs.

    OpenBao answers 400 with ``{"errors": [message], "data": {...}}``.
    """
    return Response(data={"error": refusal.message, "data": refusal.to_data()})


def _not_ready(exc: NotReadyError, stack: str, phase: Phase, now: datetime) -> Response:
    refusal = Refusal.not_ready("", exc, now)
    if exc.ready_at is None or refusal.retry_after is None:
        message = f"no ready credential for stack {stack} phase {phase}: {exc}"
    else:
        seconds = int(refusal.retry_after.total_seconds())
        message = (
            f"no ready credential yet for stack {stack} phase {phase}: retry after"
            f" {iso(exc.ready_at)} (in {seconds} s)"
        )
    return refusal_response(replace(refusal, message=message))


def path_creds(backend: CredsMount) -> list[Path]:
    async def read(request: Request, data: FieldData) -> Response | None:
        stack = check_name(data.get("stack"), "stack")
        phase = parse_phase(data.get("phase"))
        refusal = scope_refusal(
            await backend.login_metadata(request.client_token_accessor), stack, phase
        )
        if refusal is not None:
            raise LogicalError(ErrType.PERMISSION_DENIED, refusal)
        policy = await backend.timing_policy()
        signer = await backend.federated_signer()
        now = backend.clock()
        cache = backend.read_cache
        try:
            # Warm requests are answered here; only a cache miss costs a thread and a read.
            cred = resolve_from_cache(stack, phase, now, policy, cache)
            if cred is None:
                cred = await backend.with_kv(
                    lambda kv: resolve_credential(kv, stack, phase, now, policy, cache, signer)
                )
        except NotReadyError as exc:
            return _not_ready(exc, stack, phase, now)
        except NotFoundError as exc:
            return refusal_response(Refusal.not_found(str(exc)))
        return _response(cred, stack, phase, now)

    async def revoke(request: Request, data: FieldData) -> Response | None:
        return None

    async def renew(request: Request, data: FieldData) -> Response | None:
        return error_response("this credential is not renewable: read creds/<stack>/<phase> again")

    return [
        Path(
            pattern=CREDS_PATTERN,
            fields={
                "stack": Field(FieldType.STRING, "Name of the stack."),
                "phase": Field(FieldType.STRING, "plan (read integration) or apply (write)."),
            },
            operations={Op.READ: read, Op.REVOKE: revoke, Op.RENEW: renew},
            synopsis="The ready Azure credential for a stack's plan or apply run.",
            description="""
Returns kind, client_id, tenant_id and subscription_id of a credential that
has had time to replicate through Azure AD and is not close to expiry, with
client_secret for kind "secret", or for kind "certificate" client_certificate
(a base64 PKCS#12 bundle) and client_certificate_password, or for kind
"federated" use_oidc (true), oidc_token (a JWT signed by the OIDC issuer's
Transit key, for ARM_OIDC_TOKEN) and oidc_token_expires, with no lease. The
lease ends when the credential leaves that safe window; read again then. If
none is ready yet, the error says when to retry.
""",
        )
    ]
