"""An in-process stand-in for Graph, behind the executors' narrow interface.

:class:`FakeGraph` implements :class:`sidecar.graph.CredentialGraph` with the
semantics the executor tests rely on and nothing more: applications hold
password and key credentials; ``addKey``/``removeKey`` need a proof by a key
the application has and that is valid now, the PATCH pair needs none; a new
credential starts now and gets a fresh key id; ``addPassword`` returns the
secret text once; removing a credential the application no longer has
answers False; an unknown application is a 404. Federated identity
credentials are kept beside each application, at most 20, with unique names
and unique issuer and subject (409 and 400, as Graph answers). No replication lag,
throttling or gateway faults: those are the HTTPS emulator's business, and
the same tests run against it too.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from cryptography import x509

from sidecar.clock import Clock
from sidecar.errors import GraphError
from sidecar.graph import (
    NOT_FOUND_WINDOW,
    Application,
    CertificateCredential,
    FederatedCredential,
    KeyCredential,
    NewPassword,
    PasswordCredential,
)
from sidecar.sensitive import Sensitive


@dataclass
class FakeGraph:
    clock: Clock
    applications: dict[str, Application] = field(default_factory=dict)
    not_found_window: float = NOT_FOUND_WINDOW
    #: Whether an application's listing fails (GraphError 503), as an outage would.
    listing_fails: bool = False
    #: How many times the whole keyCredentials collection was written.
    patches: int = 0
    #: Each application's federated identity credentials, by object id.
    federated: dict[str, list[FederatedCredential]] = field(default_factory=dict)

    def create_application(self, display_name: str) -> Application:
        app = Application(
            object_id=str(uuid.uuid4()), app_id=str(uuid.uuid4()), display_name=display_name
        )
        self.applications[app.object_id] = app
        return app

    def _app(self, object_id: str) -> Application:
        app = self.applications.get(object_id)
        if app is None:
            raise GraphError(
                "Graph does not know the application",
                status=404,
                method="GET",
                url=f"/applications/{object_id}",
                code="Request_ResourceNotFound",
            )
        return app

    def get_application(
        self, object_id: str, *, just_created: bool = False, fresh: bool = False
    ) -> Application:
        if self.listing_fails:
            raise GraphError("Graph is unavailable", status=503, code="ServiceUnavailable")
        return self._app(object_id)

    def add_password(self, object_id: str, display_name: str, end: datetime) -> NewPassword:
        app = self._app(object_id)
        start = self.clock.now()
        credential = PasswordCredential(str(uuid.uuid4()), display_name, start, end)
        self.applications[object_id] = replace(app, passwords=(*app.passwords, credential))
        return NewPassword(credential.key_id, Sensitive(secrets.token_urlsafe(30)), start, end)

    def remove_password(self, object_id: str, key_id: str) -> bool:
        app = self._app(object_id)
        kept = tuple(p for p in app.passwords if p.key_id != key_id)
        self.applications[object_id] = replace(app, passwords=kept)
        return len(kept) < len(app.passwords)

    def add_key(
        self,
        object_id: str,
        cert_der: bytes,
        display_name: str,
        signer: CertificateCredential,
    ) -> KeyCredential:
        app = self._app(object_id)
        self._prove(app, signer)
        key = _key_credential(str(uuid.uuid4()), cert_der, display_name)
        self.applications[object_id] = replace(app, keys=(*app.keys, key))
        return key

    def remove_key(self, object_id: str, key_id: str, signer: CertificateCredential) -> bool:
        app = self._app(object_id)
        self._prove(app, signer)
        kept = tuple(k for k in app.keys if k.key_id != key_id)
        self.applications[object_id] = replace(app, keys=kept)
        return len(kept) < len(app.keys)

    def _prove(self, app: Application, signer: CertificateCredential) -> None:
        """addKey/removeKey's proof: signed by a key the application has and that is valid now."""
        now = self.clock.now()
        valid = {k.thumbprint for k in app.keys if (k.start or k.end) <= now < k.end}
        if signer.thumbprint not in valid:
            raise GraphError("the proof is not signed by a valid key of the app", status=401)

    def patch_add_key(self, object_id: str, cert_der: bytes, display_name: str) -> KeyCredential:
        app = self._app(object_id)
        key = _key_credential(str(uuid.uuid4()), cert_der, display_name)
        self.patches += 1
        self.applications[object_id] = replace(app, keys=(*app.keys, key))
        return key

    def patch_remove_key(self, object_id: str, key_id: str) -> bool:
        app = self._app(object_id)
        kept = tuple(k for k in app.keys if k.key_id != key_id)
        self.patches += 1
        self.applications[object_id] = replace(app, keys=kept)
        return len(kept) < len(app.keys)

    def add_federated_credential(
        self, object_id: str, name: str, issuer: str, subject: str, audience: str
    ) -> FederatedCredential:
        self._app(object_id)
        held = self.federated.setdefault(object_id, [])
        if any(f.name == name for f in held):
            raise GraphError(
                f"FederatedIdentityCredential with name {name} already exists.",
                status=409,
                code="Request_MultipleObjectsWithSameKeyValue",
            )
        if any((f.issuer, f.subject) == (issuer, subject) for f in held):
            raise GraphError(
                "The combination of issuer and subject must be unique for the application;"
                " they already exist.",
                status=400,
                code="InvalidFederatedIdentityCredentialValue",
            )
        if len(held) >= MAX_FEDERATED:
            raise GraphError("too many federated credentials", status=400, code="BadRequest")
        credential = FederatedCredential(str(uuid.uuid4()), name, issuer, subject, audience)
        held.append(credential)
        return credential

    def list_federated_credentials(
        self, object_id: str, *, just_created: bool = False, fresh: bool = False
    ) -> list[FederatedCredential]:
        if self.listing_fails:
            raise GraphError("Graph is unavailable", status=503, code="ServiceUnavailable")
        self._app(object_id)
        return list(self.federated.get(object_id, []))

    def remove_federated_credential(self, object_id: str, credential_id: str) -> bool:
        self._app(object_id)
        held = self.federated.get(object_id, [])
        kept = [f for f in held if f.key_id != credential_id]
        self.federated[object_id] = kept
        return len(kept) < len(held)


#: Entra's cap on an application's federated identity credentials.
MAX_FEDERATED = 20


def _key_credential(key_id: str, cert_der: bytes, display_name: str) -> KeyCredential:
    cert = x509.load_der_x509_certificate(cert_der)
    return KeyCredential(
        key_id=key_id,
        display_name=display_name,
        thumbprint=hashlib.sha1(cert_der).hexdigest().upper(),
        start=cert.not_valid_before_utc,
        end=cert.not_valid_after_utc,
    )
