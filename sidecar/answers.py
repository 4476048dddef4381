"""What readers of a credential say to each other, as data rather than prose.

The plugin's path, the resolver's RPC and the runner helper share this
vocabulary: where a credential is asked for (``<mount>/creds/<stack>/<phase>``),
which names and phases are acceptable there, and the answer -- the ready
credential, or a :class:`Refusal` saying it is not ready (and when it will be),
not found, or denied.

A refusal travels beside the human message on both wires: in the plugin's
error response as its ``data`` object (:meth:`Refusal.to_data`; OpenBao sends
it next to ``errors``), and in the resolver's trailing metadata under
:data:`ANSWER_METADATA` with the same JSON. Readers classify by that structure
(:meth:`Refusal.from_data`), never by the wording of the message, which stays
free to change for people.

Pure and light: no Vault, HTTP or gRPC client is imported here, so the
runner helper can load it cheaply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sidecar import fieldcheck
from sidecar.errors import (
    InputError,
    InvalidRecord,
    NotFoundError,
    NotReadyError,
    SidecarError,
    VaultForbidden,
)
from sidecar.kinds import CredentialKind
from sidecar.phases import Phase
from sidecar.sensitive import Sensitive

#: One safe path segment: a stack or integration name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NEW_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: Trailing metadata of a refused ``Resolve``: the refusal as JSON (see :meth:`Refusal.to_data`).
ANSWER_METADATA = "x-azsidecar-answer-bin"
#: The plugin's route for the creds path, relative to its mount.
CREDS_PATTERN = r"creds/(?P<stack>[^/]+)/(?P<phase>[^/]+)"


def is_name(value: object) -> bool:
    """Whether ``value`` is one safe path segment: 1-128 of ``[A-Za-z0-9._-]``, never ``..``."""
    return isinstance(value, str) and bool(_NAME.fullmatch(value)) and ".." not in value


def name_rule(what: str, value: object) -> str:
    """The message for a name :func:`is_name` refuses; shows at most 64 characters of it."""
    text = value if isinstance(value, str) else ""
    shown = text[:64] if text.isprintable() else repr(text[:64])
    return (
        f"invalid {what} {shown!r}: use 1-128 letters, digits, '.', '_' or '-',"
        " starting with a letter or digit"
    )


def check_name(value: object, what: str) -> str:
    """A stack or integration name taken from a request: one safe path segment."""
    if not is_name(value):
        raise InputError(name_rule(f"{what} name", value))
    assert isinstance(value, str)
    return value


def check_new_name(value: str, what: str = "integration name") -> str:
    """The name of a new integration: a :func:`check_name` name, and also a DNS-style label.

    Stricter because it becomes part of the application's display name in Azure.
    """
    if not _NEW_NAME.fullmatch(value):
        raise InputError(
            f"invalid {what} {value[:64]!r}: use 1-63 lowercase letters, digits and '-',"
            " starting with a letter or digit"
        )
    return value


def parse_phase(value: object) -> Phase:
    """``plan`` or ``apply``, exactly; anything else is an :class:`InputError`."""
    try:
        return Phase(str(value))
    except ValueError:
        raise InputError(
            f"invalid phase {str(value)[:32]!r}: use plan (read integration)"
            " or apply (write integration)"
        ) from None


def creds_path(mount: str, stack: str, phase: Phase) -> str:
    """Where a run's credential is read: ``<mount>/creds/<stack>/<phase>``."""
    return f"{mount.strip('/')}/creds/{stack}/{phase}"


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as both wires write times."""
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate credential as the azurerm provider takes it.

    ``bundle`` is the PKCS#12 bundle (certificate and private key) in base64,
    the form of ``ARM_CLIENT_CERTIFICATE``; ``password`` decrypts it
    (``ARM_CLIENT_CERTIFICATE_PASSWORD``). ``thumbprint`` is the certificate's
    SHA-1 in upper-case hex, which a client signing its own assertion names.
    """

    bundle: Sensitive = field(repr=False)
    password: Sensitive = field(repr=False)
    thumbprint: str = ""


@dataclass(frozen=True)
class FederatedToken:
    """A federated credential as a run takes it: a signed JWT and when it expires.

    ``token`` is what azurerm reads from ``ARM_OIDC_TOKEN`` (with
    ``ARM_USE_OIDC=true``) and exchanges at Entra ID for an access token; it
    is a credential until ``expires`` and never shows in ``repr``.
    """

    token: Sensitive = field(repr=False)
    expires: datetime


#: A compact JWS: three base64url parts (RFC 7515, section 7.1).
_COMPACT_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
#: The longest token accepted from the wire: far beyond any we sign (about 1 KB).
_MAX_TOKEN = 16384


@dataclass(frozen=True)
class ResolvedCredential:
    """The ready answer: what a run needs; ``safe_until`` is when it must stop being handed out.

    ``kind`` says which credential it carries: a client secret in
    ``client_secret``, a certificate in ``certificate``, or a federated token
    in ``federated`` (``client_secret`` is then empty, as the resolver's older
    clients see it).
    """

    client_id: str
    client_secret: Sensitive = field(repr=False)
    tenant_id: str
    subscription_id: str | None
    integration: str
    key_id: str
    created: datetime
    expires: datetime
    safe_until: datetime
    kind: CredentialKind = CredentialKind.SECRET
    certificate: ClientCertificate | None = field(default=None, repr=False)
    federated: FederatedToken | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.kind is CredentialKind.CERTIFICATE) != (self.certificate is not None):
            raise ValueError("a certificate credential carries a certificate, and only it")
        if (self.kind is CredentialKind.FEDERATED) != (self.federated is not None):
            raise ValueError("a federated credential carries a federated token, and only it")
        if (self.certificate is not None or self.federated is not None) and self.client_secret:
            raise ValueError(f"a {self.kind.noun} carries no client secret")

    def to_data(self) -> dict[str, Any]:
        """The plugin's ``creds`` response data (and ``azsidecar creds --format json``).

        A secret's fields are those of before, plus ``kind``; a certificate has
        ``client_certificate`` (the base64 PKCS#12 bundle, what
        ``ARM_CLIENT_CERTIFICATE`` takes), ``client_certificate_password`` and
        ``thumbprint`` instead of ``client_secret``; a federated credential has
        ``use_oidc`` (true), ``oidc_token`` (what ``ARM_OIDC_TOKEN`` takes) and
        ``oidc_token_expires``.
        """
        data: dict[str, Any] = {"client_id": self.client_id}
        if self.federated is not None:
            data["use_oidc"] = True
            data["oidc_token"] = self.federated.token.reveal()
            data["oidc_token_expires"] = iso(self.federated.expires)
        elif self.certificate is not None:
            data["client_certificate"] = self.certificate.bundle.reveal()
            data["client_certificate_password"] = self.certificate.password.reveal()
            data["thumbprint"] = self.certificate.thumbprint
        else:
            data["client_secret"] = self.client_secret.reveal()
        return data | {
            "tenant_id": self.tenant_id,
            "subscription_id": self.subscription_id,
            "integration": self.integration,
            "key_id": self.key_id,
            "created_at": iso(self.created),
            "expires_at": iso(self.expires),
            "safe_until": iso(self.safe_until),
            "kind": str(self.kind),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ResolvedCredential:
        """What :meth:`to_data` wrote; without ``kind`` (an older plugin) a secret.

        A certificate's bundle must be base64 and its password of the client
        secret alphabet, or :class:`InvalidRecord` names the field (never the value).
        """
        kind = fieldcheck.one_of(data.get("kind", "secret"), tuple(CredentialKind), _WIRE, "kind")
        certificate = federated = None
        secret = Sensitive("")
        if kind == CredentialKind.FEDERATED:
            federated = _federated_token(data)
        elif kind == CredentialKind.CERTIFICATE:
            bundle = fieldcheck.base64_text(
                data.get("client_certificate"), _WIRE, "client_certificate"
            )
            password = fieldcheck.secret_text(
                data.get("client_certificate_password"), _WIRE, "client_certificate_password"
            )
            thumbprint = data.get("thumbprint")
            certificate = ClientCertificate(
                Sensitive(bundle),
                Sensitive(password),
                thumbprint if isinstance(thumbprint, str) else "",
            )
        else:
            secret = Sensitive(str(data["client_secret"]))
        return cls(
            client_id=str(data["client_id"]),
            client_secret=secret,
            tenant_id=str(data["tenant_id"]),
            subscription_id=data.get("subscription_id") or None,
            integration=str(data.get("integration", "")),
            key_id=str(data.get("key_id", "")),
            created=parse_time(data["created_at"]),
            expires=parse_time(data["expires_at"]),
            safe_until=parse_time(data["safe_until"]),
            kind=CredentialKind(kind),
            certificate=certificate,
            federated=federated,
        )


def _federated_token(data: Mapping[str, Any]) -> FederatedToken:
    """``oidc_token`` and ``oidc_token_expires`` of an answer; bad ones named, never shown."""
    token = data.get("oidc_token")
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or not _COMPACT_JWT.fullmatch(token):
        raise InvalidRecord(f"{_WIRE}: field oidc_token is not a compact JWT")
    if data.get("use_oidc") is not True:
        raise InvalidRecord(f"{_WIRE}: field use_oidc is not true for a federated credential")
    try:
        expires = parse_time(data["oidc_token_expires"])
    except (KeyError, ValueError):
        raise InvalidRecord(f"{_WIRE}: field oidc_token_expires is not a time") from None
    if expires.tzinfo is None:
        raise InvalidRecord(f"{_WIRE}: field oidc_token_expires has no time zone")
    return FederatedToken(Sensitive(token), expires)


#: Where :meth:`ResolvedCredential.from_data` says a bad field was read.
_WIRE = "the credential answer"


class NotReadyYet(NotReadyError):
    """Not ready; ``retry_after`` is the server's own count, immune to clock skew."""

    def __init__(
        self, message: str, ready_at: datetime | None, retry_after: timedelta | None
    ) -> None:
        super().__init__(message, ready_at)
        self.retry_after = retry_after


class Status(StrEnum):
    """Every answer a reader gives."""

    READY = "ready"
    NOT_READY = "not_ready"
    NOT_FOUND = "not_found"
    DENIED = "denied"


@dataclass(frozen=True)
class Refusal:
    """Why no credential came back, as a reader tells another.

    ``message`` is for people and may be reworded at will; ``status``,
    ``ready_at`` and ``retry_after`` are what programs act on. ``reason`` is the
    underlying cause in words (e.g. the newest secret is still propagating).
    """

    status: Status
    message: str
    ready_at: datetime | None = None
    retry_after: timedelta | None = None
    reason: str = ""

    @classmethod
    def not_ready(cls, message: str, exc: NotReadyError, now: datetime) -> Refusal:
        """From the resolution's error: the wait is counted on the server's clock ``now``."""
        retry = None
        if exc.ready_at is not None:
            retry = timedelta(seconds=max(0, math.ceil((exc.ready_at - now).total_seconds())))
        return cls(Status.NOT_READY, message, exc.ready_at, retry, str(exc))

    @classmethod
    def not_found(cls, message: str) -> Refusal:
        return cls(Status.NOT_FOUND, message)

    @classmethod
    def denied(cls, message: str) -> Refusal:
        return cls(Status.DENIED, message)

    def to_data(self) -> dict[str, Any]:
        """The JSON object both wires carry."""
        data: dict[str, Any] = {"status": str(self.status), "message": self.message}
        if self.ready_at is not None:
            data["ready_at"] = iso(self.ready_at)
        if self.retry_after is not None:
            data["retry_after_seconds"] = int(self.retry_after.total_seconds())
        if self.reason:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_data(cls, data: object, message: str = "") -> Refusal | None:
        """A refusal from its JSON object; None when there is none (an older server, a bug).

        ``message`` stands in when the object carries none. A malformed
        ``ready_at`` or count is dropped, not fatal: the status alone decides.
        """
        if not isinstance(data, Mapping):
            return None
        try:
            status = Status(str(data.get("status")))
        except ValueError:
            return None
        if status is Status.READY:
            return None
        ready_at = retry_after = None
        try:
            if data.get("ready_at") is not None:
                ready_at = parse_time(data["ready_at"])
        except ValueError:
            ready_at = None
        seconds = data.get("retry_after_seconds")
        if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0:
            retry_after = timedelta(seconds=seconds)
        text = data.get("message")
        return cls(
            status,
            str(text) if isinstance(text, str) and text else message,
            ready_at,
            retry_after,
            str(data.get("reason") or ""),
        )

    def error(self) -> SidecarError:
        """The package's error for this refusal, as the runner raises it."""
        if self.status is Status.NOT_READY:
            return NotReadyYet(self.message, self.ready_at, self.retry_after)
        if self.status is Status.NOT_FOUND:
            return NotFoundError(self.message)
        return VaultForbidden(self.message)
