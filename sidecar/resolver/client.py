"""Calling the resolver; gRPC status codes become the package's errors once, here."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc

from sidecar.answers import (
    ANSWER_METADATA,
    NotReadyYet,
    Refusal,
    ResolvedCredential,
    Status,
    iso,
    parse_time,
)
from sidecar.errors import (
    InputError,
    NotFoundError,
    SidecarError,
    VaultForbidden,
    VaultUnavailable,
)
from sidecar.model import Phase
from sidecar.resolver import rpc
from sidecar.resolver.proto.resolver_pb2 import ResolveRequest


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
        refusal = _refusal(details, exc.trailing_metadata() or ())
        if refusal is not None:
            if refusal.status is Status.NOT_READY:
                return _not_ready(refusal)
            if refusal.status is Status.NOT_FOUND:
                return NotFoundError(refusal.message)
            return VaultForbidden(f"the resolver refused the token: {refusal.message}")
        if code == codes.FAILED_PRECONDITION:
            return _not_ready(_legacy_not_ready(details, exc.trailing_metadata() or ()))
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


def _refusal(details: str, metadata: Any) -> Refusal | None:
    """The server's answer from the trailing metadata, if it sent one."""
    for key, value in metadata:
        if key == ANSWER_METADATA and isinstance(value, bytes):
            try:
                data = json.loads(value[:4096])
            except ValueError:
                return None
            return Refusal.from_data(data, details)
    return None


def _legacy_not_ready(details: str, metadata: Any) -> Refusal:
    """A resolver from before :data:`ANSWER_METADATA`: ``x-ready-at`` and ``x-retry-after``."""
    found = {key: value for key, value in metadata if isinstance(value, str)}
    ready_at = retry_after = None
    with contextlib.suppress(KeyError, ValueError):
        ready_at = parse_time(found[rpc.READY_AT_METADATA])
    with contextlib.suppress(KeyError, ValueError):
        retry_after = timedelta(seconds=int(found[rpc.RETRY_AFTER_METADATA]))
    return Refusal(Status.NOT_READY, details, ready_at, retry_after)


def _not_ready(refusal: Refusal) -> NotReadyYet:
    details = refusal.message
    if refusal.ready_at is not None and refusal.retry_after is not None:
        seconds = int(refusal.retry_after.total_seconds())
        details = f"{details}: retry after {iso(refusal.ready_at)} (in {seconds} s)"
    return NotReadyYet(details, refusal.ready_at, refusal.retry_after)
