"""Typed glue between grpcio and the generated messages.

grpcio's generated ``*_pb2_grpc.py`` is untyped, so the service's handler and
its client stub are built here from the method names of ``resolver.proto``;
the descriptor check in the tests keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.answers import ResolvedCredential, iso
from sidecar.model import CredentialKind
from sidecar.resolver.proto.resolver_pb2 import Credential, ResolveRequest

SERVICE = "azsidecar.resolver.v1.Resolver"
RESOLVE = "Resolve"
RESOLVE_PATH = f"/{SERVICE}/{RESOLVE}"

#: Call metadata carrying the caller's own Vault token.
TOKEN_METADATA = "x-vault-token"  # noqa: S105 - a metadata key, not a token
#: Trailing metadata of FAILED_PRECONDITION: when a credential will be ready.
READY_AT_METADATA = "x-ready-at"
RETRY_AFTER_METADATA = "x-retry-after"

ResolveHandler = Callable[[ResolveRequest, Any], Credential]


def service_handler(resolve: ResolveHandler) -> Any:
    """The generic handler to pass to ``grpc.Server.add_generic_rpc_handlers``."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            RESOLVE: grpc.unary_unary_rpc_method_handler(
                resolve,
                request_deserializer=ResolveRequest.FromString,
                response_serializer=Credential.SerializeToString,
            )
        },
    )


class ResolverStub:
    """Client side of the ``Resolver`` service on an open channel."""

    def __init__(self, channel: Any) -> None:
        self._resolve = channel.unary_unary(
            RESOLVE_PATH,
            request_serializer=ResolveRequest.SerializeToString,
            response_deserializer=Credential.FromString,
        )

    def resolve(
        self, request: ResolveRequest, *, metadata: Sequence[tuple[str, str]], timeout: float
    ) -> Credential:
        response = self._resolve(request, metadata=metadata, timeout=timeout)
        if not isinstance(response, Credential):
            raise TypeError(f"unexpected response type {type(response).__name__}")
        return response


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def to_message(cred: ResolvedCredential) -> Credential:
    """A secret's message carries no kind, as before certificates; other kinds no secret."""
    message = Credential(
        client_id=cred.client_id,
        client_secret=cred.client_secret.reveal(),
        tenant_id=cred.tenant_id,
        subscription_id=cred.subscription_id or "",
        integration=cred.integration,
        key_id=cred.key_id,
        created=_timestamp(cred.created),
        expires=_timestamp(cred.expires),
        safe_until=_timestamp(cred.safe_until),
    )
    if cred.federated is not None:
        message.kind = str(cred.kind)
        message.oidc_token = cred.federated.token.reveal()
        message.oidc_token_expires.CopyFrom(_timestamp(cred.federated.expires))
    elif cred.certificate is not None:
        message.kind = str(cred.kind)
        message.client_certificate = cred.certificate.bundle.reveal()
        message.client_certificate_password = cred.certificate.password.reveal()
        message.thumbprint = cred.certificate.thumbprint
    return message


def from_message(message: Credential) -> ResolvedCredential:
    """The answer; a certificate's or token's fields are checked as the plugin's answer's are."""
    data: dict[str, Any] = {
        "kind": message.kind or str(CredentialKind.SECRET),
        "client_id": message.client_id,
        "tenant_id": message.tenant_id,
        "subscription_id": message.subscription_id,
        "integration": message.integration,
        "key_id": message.key_id,
        "created_at": iso(message.created.ToDatetime(tzinfo=UTC)),
        "expires_at": iso(message.expires.ToDatetime(tzinfo=UTC)),
        "safe_until": iso(message.safe_until.ToDatetime(tzinfo=UTC)),
    }
    if message.kind == CredentialKind.FEDERATED:
        data["use_oidc"] = True
        data["oidc_token"] = message.oidc_token
        if message.HasField("oidc_token_expires"):
            data["oidc_token_expires"] = iso(message.oidc_token_expires.ToDatetime(tzinfo=UTC))
    elif message.kind:
        data["client_certificate"] = message.client_certificate
        data["client_certificate_password"] = message.client_certificate_password
        data["thumbprint"] = message.thumbprint
    else:
        data["client_secret"] = message.client_secret
    return ResolvedCredential.from_data(data)
