"""The resolver's gRPC server: authorise the caller, then answer with the ready credential.

Nothing is cached: every call reads the index and the chosen version (two KV
reads), so a credential is never handed out before it is ready nor after the
daemon destroyed it. The choice itself is :func:`sidecar.resolve.resolve_credential`,
the same as the plugin's. A federated credential's token is signed at each call
with the issuer's Transit key named in ``[issuer]`` (``transit_mount``, ``key``,
and the daemon's ``publish_ahead`` and ``token_lifetime``), with the resolver's
own Vault token (the ``plugin`` policy grants the key read and the signature).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sidecar.answers import (
    ANSWER_METADATA,
    Refusal,
    ResolvedCredential,
    check_name,
    creds_path,
    iso,
    parse_phase,
)
from sidecar.clock import Clock
from sidecar.config import Config
from sidecar.errors import (
    ConfigError,
    InputError,
    NotFoundError,
    NotReadyError,
    VaultError,
    VaultForbidden,
    VaultUnavailable,
)
from sidecar.http_listener import BoundedHTTPServer
from sidecar.issuer.handout import TransitSigner
from sidecar.login_scope import OTHER_LOGIN
from sidecar.model import DEFAULT_CREDS_MOUNT, Phase
from sidecar.resolve import FederatedSigner, ReadCache, resolve_credential
from sidecar.resolver import rpc
from sidecar.resolver.auth import Access, VaultAuthorizer
from sidecar.resolver.limiter import FailureLimiter
from sidecar.resolver.oidc_request import OidcTokenApp
from sidecar.resolver.proto.resolver_pb2 import Credential, ResolveRequest
from sidecar.resolver.tls import ReloadingCertificate
from sidecar.store import Store
from sidecar.timing import TimingPolicy
from sidecar.tls_files import ReloadingServerContext
from sidecar.vault import VaultKV
from sidecar.vault_login import VaultLogin

log = logging.getLogger(__name__)


def _abort(context: Any, code: Any, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("grpc context.abort returned")


def _refuse(context: Any, code: Any, refusal: Refusal) -> NoReturn:
    """Abort with ``code`` and the refusal in the trailing metadata (:data:`ANSWER_METADATA`).

    ``x-ready-at`` and ``x-retry-after`` are kept for clients that predate it.
    """
    metadata: list[tuple[str, str | bytes]] = [
        (ANSWER_METADATA, json.dumps(refusal.to_data()).encode())
    ]
    if refusal.ready_at is not None and refusal.retry_after is not None:
        metadata += [
            (rpc.READY_AT_METADATA, iso(refusal.ready_at)),
            (rpc.RETRY_AFTER_METADATA, str(int(refusal.retry_after.total_seconds()))),
        ]
    context.set_trailing_metadata(tuple(metadata))
    _abort(context, code, refusal.message)


def _peer_host(context: Any) -> str:
    """``ipv4:10.0.0.5:41234`` -> ``ipv4:10.0.0.5``: a peer is an address, not a connection."""
    peer = str(context.peer() or "")
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


def _token(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == rpc.TOKEN_METADATA and isinstance(value, str):
            return value
    return None


class ResolverService:
    """One ``Resolve`` call: validate, authorise with the caller's token, resolve."""

    def __init__(
        self,
        kv: VaultKV,
        clock: Clock,
        policy: TimingPolicy,
        authorizer: VaultAuthorizer,
        cache: ReadCache | None = None,
        limiter: FailureLimiter | None = None,
        vault_login: VaultLogin | None = None,
        signer: FederatedSigner | None = None,
    ) -> None:
        self.kv = kv
        self.signer = signer
        self.vault_login = vault_login
        self.cache = cache or ReadCache()
        self.clock = clock
        self.policy = policy
        self.authorizer = authorizer
        self.limiter = limiter or FailureLimiter()

    def resolve(self, request: ResolveRequest, context: Any) -> Credential:
        try:
            stack = check_name(request.stack, "stack")
            phase = parse_phase(request.phase)
        except InputError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self._authorise(context, stack, phase)
        now = self.clock.now()
        try:
            cred = self._resolve(stack, phase, now)
        except NotReadyError as exc:
            self._not_ready(context, exc, now, stack, phase)
        except NotFoundError as exc:
            _refuse(context, grpc.StatusCode.NOT_FOUND, Refusal.not_found(str(exc)))
        except VaultUnavailable as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        except VaultError as exc:
            log.error("resolver cannot read KV for stack %s phase %s: %s", stack, phase, exc)
            _abort(context, grpc.StatusCode.INTERNAL, "the resolver cannot read its KV data")
        log.info(
            "resolved stack %s phase %s: integration %s key %s",
            stack,
            phase,
            cred.integration,
            cred.key_id,
        )
        return rpc.to_message(cred)

    def read(self, stack: str, phase: Phase, now: datetime) -> ResolvedCredential:
        """The answer for an authorised caller (the ID-token endpoint's read too)."""
        result: ResolvedCredential = self._resolve(stack, phase, now)
        return result

    def _resolve(self, stack: str, phase: Phase, now: Any) -> Any:
        try:
            return resolve_credential(
                self.kv, stack, phase, now, self.policy, self.cache, self.signer
            )
        except VaultForbidden:
            if self.vault_login is None:
                raise
            # The resolver's own token was refused (revoked?): log in again, try once more.
            self.vault_login.recover()
            return resolve_credential(
                self.kv, stack, phase, now, self.policy, self.cache, self.signer
            )

    def _authorise(self, context: Any, stack: str, phase: Phase) -> None:
        peer = _peer_host(context)
        wait = self.limiter.retry_after(peer)
        if wait:
            _abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many invalid tokens from this address; retry in {wait} s",
            )
        token = _token(context)
        asks_vault = token is not None and not self.authorizer.known_refused(token)
        try:
            access = self.authorizer.check(token, stack, phase)
        except VaultError as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, f"cannot check the token: {exc}")
        if access is Access.UNAUTHENTICATED:
            if asks_vault:
                self.limiter.refused(peer)  # only refusals that cost Vault a call count
            _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                f"send a valid Vault token in the {rpc.TOKEN_METADATA!r} metadata",
            )
        if access is not Access.GRANTED:  # DENIED, and anything added later: fail closed
            path = creds_path(self.authorizer.mount, stack, phase)
            why = f": {OTHER_LOGIN}" if access is Access.OTHER_LOGIN else ""
            refusal = Refusal.denied(f"the token may not read {path}{why}")
            _refuse(context, grpc.StatusCode.PERMISSION_DENIED, refusal)

    def _not_ready(
        self, context: Any, exc: NotReadyError, now: Any, stack: str, phase: Phase
    ) -> NoReturn:
        refusal = Refusal.not_ready(f"stack {stack} phase {phase}: {exc}", exc, now)
        _refuse(context, grpc.StatusCode.FAILED_PRECONDITION, refusal)


class ResolverHandle:
    """A running resolver; ``stop()`` drains calls in flight for ``grace`` seconds."""

    def __init__(
        self,
        server: Any,
        health_servicer: Any,
        port: int,
        certificate: ReloadingCertificate | None = None,
        oidc: BoundedHTTPServer | None = None,
    ) -> None:
        self._server = server
        self._health = health_servicer
        self.port = port
        self.certificate = certificate  # the TLS pair, reloaded when its files change
        self.oidc = oidc  # the HTTPS ID-token endpoint, when daemon.resolver_oidc_addr is set

    @property
    def oidc_port(self) -> int | None:
        return None if self.oidc is None else int(self.oidc.port)

    def set_serving(self, serving: bool) -> None:
        """What the gRPC health service answers (NOT_SERVING while the Vault token fails)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", rpc.SERVICE):
            self._health.set(name, status)

    def stop(self, grace: float = 5.0) -> None:
        self._health.enter_graceful_shutdown()
        if self.oidc is not None:
            self.oidc.shutdown()
        self._server.stop(grace).wait()

    def wait(self) -> None:
        self._server.wait_for_termination()


def _server_certificate(config: Config) -> ReloadingCertificate | None:
    cert, key = config.daemon.tls_cert, config.daemon.tls_key
    if not (cert and key):
        return None
    return ReloadingCertificate(cert, key)


def start_resolver(
    config: Config,
    store_or_kv: Store | VaultKV,
    clock: Clock,
    *,
    mount: str = DEFAULT_CREDS_MOUNT,
    addr: str | None = None,
    vault_login: VaultLogin | None = None,
) -> ResolverHandle:
    """Serve the resolver and the gRPC health service on ``addr`` (default daemon.resolver_addr).

    ``store_or_kv`` reads with the resolver's own (read-only) token; callers
    are authorised with their own token against Vault at ``config.vault.addr``.
    """
    kv = store_or_kv.kv if isinstance(store_or_kv, Store) else store_or_kv
    authorizer = VaultAuthorizer(
        config.vault.addr,
        mount=mount,
        ca_cert=config.vault.ca_cert,
        namespace=config.vault.namespace,
        timeout=config.vault.timeout,
    )
    cache = ReadCache(index_ttl=config.daemon.resolver_cache_ttl.total_seconds())
    signer = TransitSigner(
        mount=config.issuer.transit_mount,
        key=config.issuer.key,
        policy=config.issuer.policy(),
        clock=clock,
    )
    service = ResolverService(
        kv, clock, config.timing, authorizer, cache, vault_login=vault_login, signer=signer
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=config.daemon.concurrency))
    server.add_generic_rpc_handlers((rpc.service_handler(service.resolve),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    listen = addr or config.daemon.resolver_addr
    certificate = _server_certificate(config)
    try:
        if certificate is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, certificate.credentials())
    except RuntimeError as exc:
        raise ConfigError("daemon.resolver_addr", f"cannot listen on {listen}: {exc}") from exc
    if not port:
        raise ConfigError("daemon.resolver_addr", f"cannot listen on {listen}: address in use?")
    oidc = _oidc_endpoint(config, service) if config.daemon.resolver_oidc_addr else None
    server.start()
    for name in ("", rpc.SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("resolver listening on %s (port %d, tls %s)", listen, port, certificate is not None)
    return ResolverHandle(server, health_servicer, int(port), certificate, oidc)


def _oidc_endpoint(config: Config, service: ResolverService) -> BoundedHTTPServer:
    """The HTTPS ID-token endpoint (:mod:`sidecar.resolver.oidc_request`), started.

    Its certificate is the resolver's (``daemon.tls_cert``/``tls_key``), reloaded
    like the gRPC listener's when the files are rotated in place.
    """
    addr = config.daemon.resolver_oidc_addr
    cert, key = config.daemon.tls_cert, config.daemon.tls_key
    if not (cert and key):
        raise ConfigError(
            "daemon.resolver_oidc_addr",
            "the ID-token endpoint is served over HTTPS only: set daemon.tls_cert and tls_key",
        )
    context = ReloadingServerContext(
        cert, key, setting="daemon.tls_cert", label="resolver ID-token endpoint TLS"
    )
    app = OidcTokenApp(
        service.authorizer,
        service.read,
        service.clock.now,
        service.limiter,
    )
    host, _, port = addr.rpartition(":")
    try:
        server = BoundedHTTPServer(
            host.strip("[]") or "127.0.0.1",
            int(port),
            app,
            workers=config.daemon.concurrency,
            ssl_context=context,
        )
    except (OSError, ValueError) as exc:
        raise ConfigError("daemon.resolver_oidc_addr", f"cannot listen on {addr}: {exc}") from exc
    log.info("resolver ID-token endpoint listening on %s (port %d)", addr, server.port)
    return server.start()
