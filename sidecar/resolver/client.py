"""Calling the resolver; gRPC status codes become the package's errors once, here."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from sidecar.errors import (
    InputError,
    NotFoundError,
    NotReadyError,
    SidecarError,
    VaultForbidden,
    VaultUnavailable,
)
from sidecar.model import Phase
from sidecar.resolve import ResolvedCredential
from sidecar.resolver import rpc
from sidecar.resolver.proto.resolver_pb2 import ResolveRequest


class NotReadyYet(NotReadyError):
    """Not ready; ``retry_after`` is the server's own count, immune to clock skew."""

    def __init__(
        self, message: str, ready_at: datetime | None, retry_after: timedelta | None
    ) -> None:
        super().__init__(message, ready_at)
        self.retry_after = retry_after


class ResolverClient:
    """One channel to a resolver at ``target`` (``host:port``), TLS when ``ca_file`` is given."""

    def __init__(self, target: str, *, ca_file: str | None = None, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        if ca_file:
            try:
                roots = Path(ca_file).read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read the resolver CA {ca_file}: {exc.strerror}") from exc
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel: Any = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = rpc.ResolverStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def resolve(self, token: str, stack: str, phase: Phase) -> ResolvedCredential:
        request = ResolveRequest(stack=stack, phase=str(phase))
        try:
            message = self._stub.resolve(
                request, metadata=((rpc.TOKEN_METADATA, token),), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            raise self._translate(exc) from None
        return rpc.from_message(message)

    def _translate(self, exc: Any) -> SidecarError:
        code, details = exc.code(), str(exc.details() or "")[:300]
        codes = grpc.StatusCode
        if code == codes.FAILED_PRECONDITION:
            return _not_ready(details, exc.trailing_metadata() or ())
        if code == codes.NOT_FOUND:
            return NotFoundError(details)
        if code in (codes.UNAUTHENTICATED, codes.PERMISSION_DENIED):
            return VaultForbidden(f"the resolver refused the token: {details}")
        if code == codes.INVALID_ARGUMENT:
            return InputError(details)
        if code in (codes.UNAVAILABLE, codes.DEADLINE_EXCEEDED, codes.RESOURCE_EXHAUSTED):
            return VaultUnavailable(
                f"resolver at {self.target} unavailable ({details}); check --resolver and retry"
            )
        return SidecarError(f"resolver at {self.target} failed: {code.name} {details}")


def _not_ready(details: str, metadata: Any) -> NotReadyYet:
    found = {key: value for key, value in metadata if isinstance(value, str)}
    ready_at = retry_after = None
    with contextlib.suppress(KeyError, ValueError):
        ready_at = datetime.fromisoformat(found[rpc.READY_AT_METADATA].replace("Z", "+00:00"))
    with contextlib.suppress(KeyError, ValueError):
        retry_after = timedelta(seconds=int(found[rpc.RETRY_AFTER_METADATA]))
    if ready_at is not None and retry_after is not None:
        when = ready_at.isoformat().replace("+00:00", "Z")
        details = f"{details}: retry after {when} (in {int(retry_after.total_seconds())} s)"
    return NotReadyYet(details, ready_at, retry_after)
