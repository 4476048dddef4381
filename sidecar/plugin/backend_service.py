"""``pb.Backend``: OpenBao's calls into the plugin, translated to the framework.

Setup dials the broker for the mount's Storage; HandleRequest decodes the
JSON request data, runs the path handler and encodes the response (data and
lease internal data are JSON strings, durations are nanoseconds).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from grpclib.client import Channel
from grpclib.server import Stream

from sidecar.plugin.backend import AzureBackend
from sidecar.plugin.broker import Broker, BrokerError
from sidecar.plugin.framework import ErrType, LogicalError, Request, Response
from sidecar.plugin.proto import backend_grpc, backend_pb2
from sidecar.plugin.storage import Storage

log = logging.getLogger(__name__)

SECRETS_ENGINE = 1  # logical.TypeLogical
SEAL_WRAPPED = ["config"]
# Asked before each request by newer OpenBao; we resolve no paths ourselves.
_DECLINED_OPERATIONS = {"resolve-path", "resolve-role", "alias-lookahead", "header"}


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else {}


def _proto_response(response: Response) -> backend_pb2.Response:
    proto = backend_pb2.Response(data=json.dumps(response.data), warnings=list(response.warnings))
    if response.lease is not None:
        issued = Timestamp()
        issued.FromDatetime(datetime.now(UTC))
        proto.secret.CopyFrom(
            backend_pb2.Secret(
                lease_options=backend_pb2.LeaseOptions(
                    TTL=int(response.lease.ttl.total_seconds()) * 1_000_000_000,
                    renewable=response.lease.renewable,
                    issue_time=issued,
                ),
                internal_data=json.dumps(dict(response.lease.internal)),
            )
        )
    return proto


def _proto_error(err_type: ErrType, message: str) -> backend_pb2.ProtoError:
    return backend_pb2.ProtoError(err_type=int(err_type), err_msg=message)


class BackendService(backend_grpc.BackendBase):
    def __init__(
        self, broker: Broker, factory: Callable[[Storage], AzureBackend] = AzureBackend
    ) -> None:
        self._broker = broker
        self._factory = factory
        self._backend: AzureBackend | None = None
        self._channel: Channel | None = None

    async def Setup(self, stream: Stream[backend_pb2.SetupArgs, backend_pb2.SetupReply]) -> None:
        args = await stream.recv_message()
        assert args is not None
        try:
            channel = await self._broker.dial(args.broker_id)
        except BrokerError as exc:
            await stream.send_message(backend_pb2.SetupReply(err=str(exc)))
            return
        self._close()
        self._channel = channel
        self._backend = self._factory(Storage(channel))
        log.info("backend set up (mount uuid %s)", args.backendUUID)
        await stream.send_message(backend_pb2.SetupReply())

    async def HandleRequest(
        self, stream: Stream[backend_pb2.HandleRequestArgs, backend_pb2.HandleRequestReply]
    ) -> None:
        args = await stream.recv_message()
        assert args is not None
        await stream.send_message(await self._handle(args.request))

    async def _handle(self, proto: backend_pb2.Request) -> backend_pb2.HandleRequestReply:
        if proto.operation in _DECLINED_OPERATIONS:
            return backend_pb2.HandleRequestReply(
                err=_proto_error(ErrType.UNSUPPORTED_OPERATION, "unsupported operation")
            )
        if self._backend is None:
            return backend_pb2.HandleRequestReply(
                err=_proto_error(ErrType.INTERNAL, "plugin backend is not set up")
            )
        try:
            request = Request(
                operation=proto.operation,
                path=proto.path,
                data=_json_object(proto.data),
                storage=self._backend.storage,
                lease_internal=(
                    _json_object(proto.secret.internal_data) if proto.HasField("secret") else None
                ),
                client_token_accessor=proto.client_token_accessor,
            )
            response = await self._backend.framework.handle(request)
        except LogicalError as exc:
            return backend_pb2.HandleRequestReply(err=_proto_error(exc.err_type, str(exc)))
        except json.JSONDecodeError:
            return backend_pb2.HandleRequestReply(
                err=_proto_error(ErrType.BAD_REQUEST, "request data is not a JSON object")
            )
        except Exception as exc:
            log.exception(
                "request %s %s failed: %s", proto.operation, proto.path, type(exc).__name__
            )
            return backend_pb2.HandleRequestReply(
                err=_proto_error(
                    ErrType.INTERNAL, "internal error in the azure plugin; see its log"
                )
            )
        if response is None:
            return backend_pb2.HandleRequestReply()
        return backend_pb2.HandleRequestReply(response=_proto_response(response))

    async def HandleExistenceCheck(
        self,
        stream: Stream[backend_pb2.HandleExistenceCheckArgs, backend_pb2.HandleExistenceCheckReply],
    ) -> None:
        await stream.recv_message()
        await stream.send_message(backend_pb2.HandleExistenceCheckReply(check_found=False))

    async def SpecialPaths(
        self, stream: Stream[backend_pb2.Empty, backend_pb2.SpecialPathsReply]
    ) -> None:
        await stream.recv_message()
        paths = backend_pb2.Paths(seal_wrap_storage=SEAL_WRAPPED)
        await stream.send_message(backend_pb2.SpecialPathsReply(paths=paths))

    async def Initialize(
        self, stream: Stream[backend_pb2.InitializeArgs, backend_pb2.InitializeReply]
    ) -> None:
        await stream.recv_message()
        await stream.send_message(backend_pb2.InitializeReply())

    async def InvalidateKey(
        self, stream: Stream[backend_pb2.InvalidateKeyArgs, backend_pb2.Empty]
    ) -> None:
        args = await stream.recv_message()
        assert args is not None
        if self._backend is not None:
            self._backend.invalidate(args.key)
        await stream.send_message(backend_pb2.Empty())

    async def Cleanup(self, stream: Stream[backend_pb2.Empty, backend_pb2.Empty]) -> None:
        await stream.recv_message()
        self._close()
        await stream.send_message(backend_pb2.Empty())

    async def Type(self, stream: Stream[backend_pb2.Empty, backend_pb2.TypeReply]) -> None:
        await stream.recv_message()
        await stream.send_message(backend_pb2.TypeReply(type=SECRETS_ENGINE))

    def _close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
