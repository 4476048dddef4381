"""A small path framework in the spirit of OpenBao's ``sdk/framework``.

A backend is a list of :class:`Path` s; each has a regular expression, typed
fields, one async handler per operation, and help text. Every ``path_*.py``
module builds its paths the same way. Handlers return a :class:`Response`
(``None`` means "nothing here", which OpenBao turns into a 404) or raise
:class:`~sidecar.errors.InputError` for bad input, which becomes an error
response with the message; unknown paths and operations become OpenBao's
``unsupported path`` / ``unsupported operation`` errors.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sidecar.durations import parse_duration
from sidecar.errors import InputError, SidecarError, VaultError
from sidecar.plugin.storage import Storage

log = logging.getLogger(__name__)

VAULT_FAILED = (
    "the engine cannot read its data in Vault right now; retry later, or ask an operator"
    " (the server's log names the cause)"
)


class Op(enum.StrEnum):
    """The logical operations a plugin receives (OpenBao's ``logical.Operation``)."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    LIST = "list"
    HELP = "help"
    REVOKE = "revoke"
    RENEW = "renew"


class ErrType(enum.IntEnum):
    """``ProtoError.err_type`` values OpenBao maps back to its own errors."""

    UNKNOWN = 0
    USER = 1
    INTERNAL = 2
    CODED = 3
    BAD_REQUEST = 4
    UNSUPPORTED_OPERATION = 5
    UNSUPPORTED_PATH = 6
    INVALID_REQUEST = 7
    PERMISSION_DENIED = 8


class LogicalError(Exception):
    """An error OpenBao understands by type (not a response the caller reads)."""

    def __init__(self, err_type: ErrType, message: str) -> None:
        super().__init__(message)
        self.err_type = err_type


def unsupported_path() -> LogicalError:
    return LogicalError(ErrType.UNSUPPORTED_PATH, "unsupported path")


def unsupported_operation() -> LogicalError:
    return LogicalError(ErrType.UNSUPPORTED_OPERATION, "unsupported operation")


class FieldType(enum.Enum):
    STRING = "string"
    BOOL = "bool"
    DURATION = "duration"


@dataclass(frozen=True)
class Field:
    type: FieldType
    description: str
    default: Any = None


@dataclass(frozen=True)
class Lease:
    """A lease OpenBao registers for the response: when it ends, clients re-read."""

    ttl: timedelta
    internal: Mapping[str, Any] = field(default_factory=dict)
    renewable: bool = False


@dataclass(frozen=True)
class Response:
    data: Mapping[str, Any]
    lease: Lease | None = None
    warnings: Sequence[str] = ()


def error_response(message: str) -> Response:
    """A user-facing error: OpenBao answers HTTP 400 with ``message``."""
    return Response(data={"error": message})


def list_response(keys: Sequence[str]) -> Response:
    return Response(data={"keys": sorted(keys)})


@dataclass(frozen=True)
class Request:
    operation: str
    path: str
    data: Mapping[str, Any]
    storage: Storage
    lease_internal: Mapping[str, Any] | None = None
    client_token_accessor: str = ""


class FieldData:
    """The request's fields (body plus path captures), typed by the path's schema."""

    def __init__(self, schema: Mapping[str, Field], raw: Mapping[str, Any]) -> None:
        self._schema = schema
        self._raw = raw

    def provided(self, name: str) -> bool:
        return name in self._raw

    def get(self, name: str) -> Any:
        spec = self._schema[name]
        if name not in self._raw or self._raw[name] is None:
            return spec.default
        return _convert(name, spec.type, self._raw[name])

    def unknown(self) -> list[str]:
        return sorted(set(self._raw) - set(self._schema))


def _convert(name: str, kind: FieldType, value: Any) -> Any:
    if kind is FieldType.STRING:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    elif kind is FieldType.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
            return value.lower() in {"true", "1"}
    elif kind is FieldType.DURATION:
        try:
            return parse_duration(value)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from exc
    raise InputError(f"{name}: expected a {kind.value}")


Handler = Callable[[Request, FieldData], Awaitable[Response | None]]


@dataclass(frozen=True)
class Path:
    pattern: str
    fields: Mapping[str, Field]
    operations: Mapping[Op, Handler]
    synopsis: str
    description: str

    def match(self, path: str) -> dict[str, str] | None:
        found = re.fullmatch(self.pattern, path)
        return None if found is None else found.groupdict()

    def help_text(self) -> str:
        lines = [self.synopsis, "", self.description.strip()]
        if self.fields:
            lines += ["", "Fields:"]
            lines += [f"  {n} ({f.type.value}): {f.description}" for n, f in self.fields.items()]
        return "\n".join(lines)


class Backend:
    """Routes a request to its path and operation; turns failures into responses."""

    def __init__(self, paths: Sequence[Path], help_text: str) -> None:
        self.paths = list(paths)
        self.help_text = help_text

    async def handle(self, request: Request) -> Response | None:
        if request.operation == Op.HELP:
            return self._help(request.path)
        if request.operation not in set(Op):
            raise unsupported_operation()
        path, captures = self._route(request.path)
        handler = path.operations.get(Op(request.operation))
        if handler is None:
            raise unsupported_operation()
        fields = FieldData(path.fields, {**request.data, **captures})
        try:
            response = await handler(request, fields)
        except VaultError as exc:
            # Its text names the internal Vault address and the KV mount and prefix:
            # for the operator's log, not for the runner that asked.
            log.error("%s %s: %s", request.operation, request.path, exc)
            return error_response(VAULT_FAILED)
        except SidecarError as exc:
            return error_response(str(exc))
        unknown = fields.unknown()
        if unknown and response is not None and "error" not in response.data:
            warning = f"ignored unknown parameters: {', '.join(unknown)}"
            return Response(response.data, response.lease, [*response.warnings, warning])
        return response

    def _route(self, request_path: str) -> tuple[Path, dict[str, str]]:
        for path in self.paths:
            captures = path.match(request_path)
            if captures is not None:
                return path, captures
        raise unsupported_path()

    def _help(self, request_path: str) -> Response:
        if request_path in ("", "/"):
            listing = "\n".join(f"  {p.pattern}\n      {p.synopsis}" for p in self.paths)
            return Response(data={"help": f"{self.help_text.strip()}\n\nPaths:\n{listing}"})
        path, _ = self._route(request_path)
        return Response(data={"help": path.help_text()})
