"""The only module that talks to Microsoft Graph and the login endpoint.

Authentication is MSAL's client-credentials flow with the management
certificate; the certificate comes from a provider callable so that a renewed
certificate is picked up without restarting. Requests go through one retry
loop: 429 honours ``Retry-After``, 5xx and dropped connections back off
exponentially with jitter, a 401 for an expired token re-acquires once, and a
404 on an object we just created is retried, each time on a fresh connection,
for ``not_found_window`` seconds (minutes: Azure AD's replicas may not have it
yet, and a front end keeps a keep-alive connection on one replica). A sign-in
answered AADSTS700016 (application unknown) or AADSTS700027 (key unknown) is
retried for the same window, since right after set-up the serving replica may
not know the management application or its new certificate yet.

A write that is not idempotent (a ``POST`` that creates: ``/applications``,
``addPassword``, ``addKey``) is never blindly repeated after a 5xx or a lost
connection, because gateways answer 504 for writes the directory committed.
The loop raises :class:`GraphWriteUncertain` instead and the method looks for
what it meant to create (display name, thumbprint) before writing again; a
secret's text cannot be recovered, so ``addPassword`` leaves its intent-named
credential to reconciliation. Failures leave this module as :class:`GraphError`.

Base URLs are configuration, so the same code talks to Microsoft or to the
emulator. Times (``endDateTime``, proof JWT lifetimes, back-off sleeps) come
from the injected clock.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC as _UTC
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import jwt
import msal
import requests
from cryptography import x509

from sidecar.clock import Clock
from sidecar.errors import GraphError, GraphThrottled, GraphWriteUncertain
from sidecar.sensitive import Sensitive

log = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"
PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
_RETRYABLE = {429, 500, 502, 503, 504}
_T = TypeVar("_T")
#: Sign-in errors that mean "this replica does not know the application (700016)
#: or the key (700027) yet" right after set-up or a certificate renewal.
SIGN_IN_LAG_CODES = frozenset({700016, 700027})
#: How long a just-created object (or a just-added key) may stay invisible: the
#: slowest replicas Microsoft describes take minutes, not seconds.
NOT_FOUND_WINDOW = 600.0
#: Graph's code for a credential longer-lived than the tenant's app-management policy allows.
LIFETIME_POLICY_CODE = "CredentialInvalidLifetimeAsPerAppPolicy"
#: How long to look for the result of a write that got no clear answer.
LOOK_WINDOW = 120.0


@dataclass(frozen=True)
class CertificateCredential:
    """A certificate the management application authenticates with."""

    cert_pem: str
    key_pem: Sensitive = field(repr=False)
    thumbprint: str  # SHA-1 hex, as Azure shows it
    key_id: str = ""


@dataclass(frozen=True)
class AssertionCredential:
    """A federated sign-in: ``sign`` returns a fresh client assertion (a JWT) each call.

    The management application then holds no key of its own: an external
    issuer it trusts (a federated identity credential on the application)
    vouches for it. MSAL accepts a no-argument callable as
    ``client_credential={"client_assertion": ...}`` and calls it only when
    it sends a token request, so every sign-in presents a newly signed
    assertion instead of one that may have expired (MSAL Python's
    ``ConfidentialClientApplication``, ``client_credential``:
    learn.microsoft.com/python/api/msal/msal.application.confidentialclientapplication,
    msal-python.readthedocs.io). ``label`` names the signer (the issuer's
    URL) and stands in for a certificate's thumbprint.
    """

    sign: Callable[[], str] = field(repr=False)
    label: str

    @property
    def thumbprint(self) -> str:
        """What identifies this credential among the ones that signed in before."""
        return f"assertion:{self.label}"


#: What the management application signs in with: a certificate or a federated assertion.
ManagementCredential = CertificateCredential | AssertionCredential
#: Sign-in errors that mean "this replica does not know the federated credential
#: yet" (AADSTS70021, no matching federated identity record) right after set-up.
ASSERTION_LAG_CODES = frozenset({70021})


def msal_client_credential(cred: ManagementCredential) -> dict[str, Any]:
    """MSAL's ``client_credential`` for a certificate or a federated assertion."""
    if isinstance(cred, AssertionCredential):
        return {"client_assertion": cred.sign}
    return {"private_key": cred.key_pem.reveal(), "thumbprint": cred.thumbprint}


def sign_in_lag_codes(cred: ManagementCredential) -> frozenset[int]:
    """The sign-in error codes taken for replication lag with this kind of credential."""
    if isinstance(cred, AssertionCredential):
        return SIGN_IN_LAG_CODES | ASSERTION_LAG_CODES
    return SIGN_IN_LAG_CODES


@dataclass(frozen=True)
class PasswordCredential:
    key_id: str
    display_name: str
    start: datetime | None
    end: datetime


@dataclass(frozen=True)
class KeyCredential:
    key_id: str
    display_name: str
    thumbprint: str
    start: datetime | None
    end: datetime


@dataclass(frozen=True)
class FederatedCredential:
    """A ``federatedIdentityCredential`` of an application, as Graph shows it.

    ``key_id`` is its Graph ``id``; ``name`` is unique on the application and
    immutable; ``audience`` is the single value of ``audiences``
    (learn.microsoft.com/graph/api/resources/federatedidentitycredential).
    Nothing in it is secret.
    """

    key_id: str
    name: str
    issuer: str
    subject: str
    audience: str


@dataclass(frozen=True)
class Application:
    object_id: str
    app_id: str
    display_name: str
    passwords: tuple[PasswordCredential, ...] = ()
    keys: tuple[KeyCredential, ...] = ()


@dataclass(frozen=True)
class NewPassword:
    """What ``addPassword`` returns: the only moment the secret text exists."""

    key_id: str
    secret: Sensitive = field(repr=False)
    start: datetime
    end: datetime


class PinnedSession(requests.Session):
    """A session whose CA bundle is not overridden by ``REQUESTS_CA_BUNDLE``.

    requests lets that variable win over ``Session.verify``; proxies from the
    environment still apply.
    """

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None or verify is True:
            settings["verify"] = self.verify
        return settings


def make_session(ca_bundle: str | None) -> requests.Session:
    session = PinnedSession()
    if ca_bundle:
        session.verify = ca_bundle
    return session


class GraphObserver(Protocol):
    """Receives one event per HTTP attempt, for metrics."""

    def graph_call(self, operation: str, status: int, seconds: float) -> None: ...

    def graph_throttled(self, operation: str) -> None: ...


class _NullObserver:
    def graph_call(self, operation: str, status: int, seconds: float) -> None:
        return None

    def graph_throttled(self, operation: str) -> None:
        return None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text)


def graph_time(value: datetime) -> str:
    """Graph's timestamp form: UTC, second precision, ``Z``."""
    return value.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _token_deadline(token: Sensitive, now: datetime, expires_in: int) -> datetime:
    """When to stop using an access token, by the clock that judges it.

    The token's own ``exp`` claim is read (unverified; it only schedules the
    refresh), because ``expires_in`` counts the client's wall-clock seconds,
    which are not the service's seconds under the emulator's accelerated clock.
    """
    try:
        claims = jwt.decode(token.reveal(), options={"verify_signature": False})
        expires = datetime.fromtimestamp(float(claims["exp"]), tz=_UTC)
        issued = datetime.fromtimestamp(float(claims.get("iat", now.timestamp())), tz=_UTC)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        expires, issued = now + timedelta(seconds=expires_in), now
    margin = min(timedelta(minutes=5), (expires - issued) / 2)
    return expires - margin


def _error_detail(response: requests.Response) -> tuple[str, str]:
    """Graph's or login's error code and message, without echoing a request."""
    try:
        body = response.json()
    except ValueError:
        return "", response.reason or ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("code", "")), str(error.get("message", ""))[:300]
        if isinstance(error, str):
            codes = body.get("error_codes") or []
            code = f"AADSTS{codes[0]}" if codes else error
            return code, str(body.get("error_description", ""))[:300]
    return "", ""


def _parse_application(body: dict[str, Any]) -> Application:
    passwords = tuple(
        PasswordCredential(
            key_id=str(p["keyId"]),
            display_name=str(p.get("displayName") or ""),
            start=_parse_time(p.get("startDateTime")),
            end=_parse_time(p.get("endDateTime")) or datetime.max.replace(tzinfo=_UTC),
        )
        for p in body.get("passwordCredentials") or []
    )
    keys = tuple(
        KeyCredential(
            key_id=str(k["keyId"]),
            display_name=str(k.get("displayName") or ""),
            thumbprint=_thumbprint_from_identifier(k.get("customKeyIdentifier")),
            start=_parse_time(k.get("startDateTime")),
            end=_parse_time(k.get("endDateTime")) or datetime.max.replace(tzinfo=_UTC),
        )
        for k in body.get("keyCredentials") or []
    )
    return Application(
        object_id=str(body["id"]),
        app_id=str(body["appId"]),
        display_name=str(body.get("displayName") or ""),
        passwords=passwords,
        keys=keys,
    )


def _parse_federated(item: dict[str, Any]) -> FederatedCredential:
    audiences = item.get("audiences") or []
    return FederatedCredential(
        key_id=str(item["id"]),
        name=str(item.get("name") or ""),
        issuer=str(item.get("issuer") or ""),
        subject=str(item.get("subject") or ""),
        audience=str(audiences[0]) if audiences else "",
    )


#: Graph's answers to a federated credential whose name (409) or issuer and
#: subject (400) the application already has: quoted in
#: github.com/Azure/azure-dev issue 1482 and github.com/Azure/azure-workload-identity
#: issue 434.
FEDERATED_DUPLICATE_CODES = frozenset(
    {"Request_MultipleObjectsWithSameKeyValue", "InvalidFederatedIdentityCredentialValue"}
)


def _duplicate_federated(exc: GraphError) -> bool:
    """Whether Graph refused a federated credential as one the application already has.

    A 409 for the name; a 400 with the value-error code only when its text says
    the issuer and subject already exist (the same code covers values out of
    bounds, which no look-up can settle).
    """
    if exc.code not in FEDERATED_DUPLICATE_CODES:
        return False
    return exc.status == 409 or (exc.status == 400 and "already exist" in str(exc))


def _thumbprint_from_identifier(value: object) -> str:
    """Graph's ``customKeyIdentifier`` is the base64 SHA-1 thumbprint; we keep hex."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return base64.b64decode(value).hex().upper()
    except ValueError:
        return value.upper()


class CredentialGraph(Protocol):
    """What the rotation and certificate executors need from Graph: one application's credentials.

    :class:`GraphClient` is the real one; ``tests/fakes.py`` holds an
    in-process one, so executors can be tested against either.
    """

    #: Seconds after a creation during which a 404 is taken for replication lag.
    not_found_window: float

    def get_application(
        self, object_id: str, *, just_created: bool = False, fresh: bool = False
    ) -> Application:
        """The application with its credentials; GraphError (404) when Graph does not know it."""
        ...

    def add_password(self, object_id: str, display_name: str, end: datetime) -> NewPassword:
        """A new client secret; its text exists only in the answer."""
        ...

    def remove_password(self, object_id: str, key_id: str) -> bool:
        """False if the application no longer had it."""
        ...

    def add_key(
        self,
        object_id: str,
        cert_der: bytes,
        display_name: str,
        signer: CertificateCredential,
    ) -> KeyCredential:
        """A new certificate credential, proven by ``signer`` (a key the application has)."""
        ...

    def remove_key(self, object_id: str, key_id: str, signer: CertificateCredential) -> bool:
        """False if the application no longer had it."""
        ...

    def patch_add_key(self, object_id: str, cert_der: bytes, display_name: str) -> KeyCredential:
        """A certificate credential for an application without a valid key to prove with.

        The whole ``keyCredentials`` collection is written: every key it lists
        now is kept, ours is added.
        """
        ...

    def patch_remove_key(self, object_id: str, key_id: str) -> bool:
        """Remove a key by writing the collection without it; False if it was not there."""
        ...

    def add_federated_credential(
        self, object_id: str, name: str, issuer: str, subject: str, audience: str
    ) -> FederatedCredential:
        """A new federated identity credential named ``name`` (unique on the application)."""
        ...

    def list_federated_credentials(
        self, object_id: str, *, just_created: bool = False, fresh: bool = False
    ) -> list[FederatedCredential]:
        """The application's federated identity credentials; GraphError (404) if unknown."""
        ...

    def remove_federated_credential(self, object_id: str, credential_id: str) -> bool:
        """False if the application no longer had it."""
        ...


class GraphClient:
    """Microsoft Graph v1.0 as the management application."""

    def __init__(
        self,
        *,
        login_url: str,
        graph_url: str,
        tenant_id: str,
        client_id: str,
        credential: Callable[[], ManagementCredential],
        clock: Clock,
        ca_bundle: str | None = None,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 30.0,
        observer: GraphObserver | None = None,
        rng: random.Random | None = None,
        not_found_window: float = NOT_FOUND_WINDOW,
        look_window: float = LOOK_WINDOW,
        graph_scope: str = GRAPH_SCOPE,
    ) -> None:
        self.login_url = login_url.rstrip("/")
        self.graph_url = graph_url.rstrip("/")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._credential = credential
        self.clock = clock
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.not_found_window = not_found_window
        self.look_window = look_window
        self.graph_scope = graph_scope
        self.ca_bundle = ca_bundle
        self.observer: GraphObserver = observer or _NullObserver()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.session = make_session(ca_bundle)
        self._lock = threading.Lock()
        self._msal: Any = None
        self._msal_thumbprint = ""
        self._token: Sensitive | None = None
        self._token_expires: datetime | None = None
        self._signed_in: set[str] = set()  # thumbprints that have signed in
        self.retries = 0
        #: Called before every attempt of a write (not GET); raises to refuse it.
        #: The daemon sets it to its leader-lease check.
        self.write_guard: Callable[[], None] | None = None

    # -- authentication ------------------------------------------------------------

    def fresh_session(self) -> requests.Session:
        """A session with no pooled connection: its first request opens a new one.

        Front ends keep a keep-alive connection on one directory replica, so a
        read meant to ask another replica must not reuse a pooled connection.
        """
        return make_session(self.ca_bundle)

    def _build_msal(self, cred: ManagementCredential, session: requests.Session) -> Any:
        return msal.ConfidentialClientApplication(
            self.client_id,
            authority=f"{self.login_url}/{self.tenant_id}",
            client_credential=msal_client_credential(cred),
            http_client=session,
            instance_discovery=False,
            token_cache=msal.TokenCache(),
        )

    def _access_token(self, force: bool = False) -> str:
        with self._lock:
            cred = self._credential()
            now = self.clock.now()
            stale = self._token_expires is None or now >= self._token_expires
            if force or stale or cred.thumbprint != self._msal_thumbprint:
                # A fresh MSAL app (and cache): MSAL times its cache by the wall
                # clock, while token lifetimes are judged by the service's clock.
                result = self._sign_in(cred)
                if "access_token" not in result:
                    codes = result.get("error_codes") or []
                    raise GraphError(
                        "the management application could not sign in: "
                        + str(result.get("error_description", result.get("error", "")))[:300],
                        method="POST",
                        url=f"{self.login_url}/{self.tenant_id}/oauth2/v2.0/token",
                        code=f"AADSTS{codes[0]}" if codes else str(result.get("error", "")),
                    )
                self._token = Sensitive(str(result["access_token"]))
                self._token_expires = _token_deadline(
                    self._token, now, int(result.get("expires_in", 3600))
                )
            assert self._token is not None
            return self._token.reveal()

    def check_sign_in(self) -> None:
        """Sign in now, whatever is cached; GraphError (with the AADSTS code) if it fails."""
        self._access_token(force=True)

    def _sign_in_once(self, cred: ManagementCredential, session: requests.Session) -> Any:
        try:
            # Building the app reads the tenant's OIDC metadata; MSAL raises
            # its own MsalServiceError for a 5xx there or at the token endpoint.
            self._msal = self._build_msal(cred, session)
            self._msal_thumbprint = cred.thumbprint
            return self._msal.acquire_token_for_client(scopes=[self.graph_scope])
        except (requests.RequestException, ValueError, msal.exceptions.MsalError) as exc:
            raise GraphError(
                f"cannot reach the login endpoint ({type(exc).__name__})",
                method="POST",
                url=f"{self.login_url}/{self.tenant_id}/oauth2/v2.0/token",
            ) from exc

    def _sign_in(self, cred: ManagementCredential) -> Any:
        """MSAL's client-credentials sign-in, riding out replicas that lag behind set-up.

        AADSTS700016 / 700027 from a replica that has not yet seen the
        application or its certificate (and, signing in with a federated
        assertion, AADSTS70021 from one that has not yet seen the federated
        credential) are retried on fresh connections for ``not_found_window``
        seconds, unless this credential has signed in before (then the answer
        is not lag); any other answer is returned as it is.
        """
        lag_codes = sign_in_lag_codes(cred)
        result = self._sign_in_once(cred, self.session)
        started = self.clock.now()
        attempt = 0
        while "access_token" not in result:
            codes = {c for c in result.get("error_codes") or [] if isinstance(c, int)}
            waited = (self.clock.now() - started).total_seconds()
            known = cred.thumbprint in self._signed_in
            if known or not codes & lag_codes or waited >= self.not_found_window:
                break
            self.retries += 1
            delay = self._backoff(attempt)
            log.info(
                "sign-in answered AADSTS%s (a replica behind set-up); retrying in %.0fs",
                min(codes & lag_codes),
                delay,
            )
            self.clock.sleep(delay)
            attempt += 1
            fresh = self.fresh_session()
            try:
                result = self._sign_in_once(cred, fresh)
            finally:
                fresh.close()
        if "access_token" in result:
            self._signed_in.add(cred.thumbprint)
        return result

    # -- the retry loop ------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return float(self._rng.uniform(ceiling / 2, ceiling))

    def request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        retry_not_found: bool = False,
        ok_statuses: tuple[int, ...] = (200, 201, 204),
        repeatable: bool | None = None,
        fresh: bool = False,
    ) -> requests.Response:
        """One Graph call through the retry loop; raises GraphError when it gives up.

        ``repeatable`` (default: every method but ``POST``) says whether the
        call may be sent again after a 5xx or a lost connection; for a
        non-repeatable write those raise :class:`GraphWriteUncertain` instead.
        ``fresh`` sends every attempt on a new connection.
        """
        url = f"{self.graph_url}/v1.0{path}"
        if repeatable is None:
            repeatable = method != "POST"
        reauthenticated = False
        attempt = 0
        missing_since: datetime | None = None
        missing_attempts = 0
        while True:
            if method != "GET" and self.write_guard is not None:
                self.write_guard()
            token = self._access_token(force=False)
            started = time.monotonic()
            session = self.fresh_session() if fresh or missing_since is not None else self.session
            try:
                response = session.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "client-request-id": str(uuid.uuid4()),
                    },
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                self.observer.graph_call(operation, 0, time.monotonic() - started)
                if not repeatable and not isinstance(exc, requests.ConnectTimeout):
                    raise GraphWriteUncertain(
                        f"{operation}: the connection failed after the request was sent"
                        f" ({type(exc).__name__}); it may have been carried out",
                        method=method,
                        url=path,
                    ) from exc
                if attempt >= self.max_retries:
                    raise GraphError(
                        f"{operation}: Graph unreachable after {attempt + 1} attempts"
                        f" ({type(exc).__name__})",
                        method=method,
                        url=path,
                    ) from exc
                self._sleep_retry(attempt, operation, None)
                attempt += 1
                continue
            finally:
                if session is not self.session:
                    session.close()
            self.observer.graph_call(operation, response.status_code, time.monotonic() - started)
            status = response.status_code
            if status in ok_statuses:
                return response
            code, message = _error_detail(response)
            if status == 401 and not reauthenticated:
                reauthenticated = True
                self._access_token(force=True)
                continue
            if status >= 500 and not repeatable:
                raise GraphWriteUncertain(
                    f"{operation}: Graph answered {status}; the write may have been carried out",
                    status=status,
                    method=method,
                    url=path,
                    code=code,
                )
            if status == 404 and retry_not_found:
                now = self.clock.now()
                missing_since = missing_since or now
                if (now - missing_since).total_seconds() < self.not_found_window:
                    self._sleep_retry(min(missing_attempts, 8), operation, response)
                    missing_attempts += 1
                    continue
            elif status in _RETRYABLE and attempt < self.max_retries:
                if status == 429:
                    self.observer.graph_throttled(operation)
                self._sleep_retry(attempt, operation, response)
                attempt += 1
                continue
            error_type = GraphThrottled if status == 429 else GraphError
            raise error_type(
                f"{operation} failed: {message or 'no details'}",
                status=status,
                method=method,
                url=path,
                code=code,
            )

    def _sleep_retry(
        self, attempt: int, operation: str, response: requests.Response | None
    ) -> None:
        delay = self._backoff(attempt)
        if response is not None and response.status_code == 429:
            header = response.headers.get("Retry-After", "")
            with contextlib.suppress(ValueError):
                delay = max(1.0, float(header))
        self.retries += 1
        log.debug("retrying %s in %.1fs (attempt %d)", operation, delay, attempt + 1)
        self.clock.sleep(delay)

    # -- applications ------------------------------------------------------------------

    def create_application(
        self, display_name: str, redirect_uris: list[str], multi_tenant: bool = True
    ) -> Application:
        """``POST /applications``."""
        body: dict[str, Any] = {
            "displayName": display_name,
            "signInAudience": "AzureADMultipleOrgs" if multi_tenant else "AzureADMyOrg",
            "web": {"redirectUris": redirect_uris},
            "requiredResourceAccess": [],
        }
        for _ in range(self.max_retries):
            try:
                response = self.request("POST", "/applications", "create_application", json=body)
            except GraphWriteUncertain as exc:
                # The display name is unique to this integration: if an application
                # carries it, the write happened and must not be repeated.
                found = self.look_for(lambda: self._named(display_name), "create_application")
                if found is not None:
                    return found
                log.warning("%s; no application named so appeared: creating it again", exc)
                continue
            return _parse_application(response.json())
        raise GraphError(
            "create_application: every attempt met a gateway error; run the command again"
            " (it looks for the application by its display name first)",
            method="POST",
            url="/applications",
        )

    def _named(self, display_name: str) -> Application | None:
        matches = self.list_applications(display_name, fresh=True)
        return matches[0] if matches else None

    def look_for(self, find: Callable[[], _T | None], operation: str) -> _T | None:
        """After an uncertain write, look for its result on fresh connections.

        Each look may reach another replica; looks go on for ``look_window``
        seconds (a committed write reaches most replicas within a minute) and
        a failing look counts as "not seen".
        """
        started = self.clock.now()
        attempt = 0
        while True:
            try:
                found = find()
            except GraphError as exc:
                log.info("%s: looking for the written object failed: %s", operation, exc)
                found = None
            if found is not None:
                return found
            if (self.clock.now() - started).total_seconds() >= self.look_window:
                return None
            self._sleep_retry(min(attempt, 5), operation, None)
            attempt += 1

    def get_application(
        self, object_id: str, *, just_created: bool = False, fresh: bool = False
    ) -> Application:
        """``GET /applications/{id}``; ``just_created`` retries a 404 from a lagging replica.

        ``fresh`` asks on a new connection, so possibly another replica than the
        pooled connection is pinned to.
        """
        response = self.request(
            "GET",
            f"/applications/{quote(object_id, safe='')}",
            "get_application",
            retry_not_found=just_created,
            fresh=fresh,
        )
        return _parse_application(response.json())

    def list_applications(
        self, display_name: str | None = None, *, prefix: str | None = None, fresh: bool = False
    ) -> list[Application]:
        """``GET /applications``, following ``@odata.nextLink``.

        ``display_name`` filters with ``eq``, ``prefix`` with ``startswith``.
        """
        params = {"$top": "999"}
        if display_name is not None:
            escaped = display_name.replace("'", "''")
            params["$filter"] = f"displayName eq '{escaped}'"
        elif prefix is not None:
            escaped = prefix.replace("'", "''")
            params["$filter"] = f"startswith(displayName,'{escaped}')"
        return list(self._paged("/applications", "list_applications", params, fresh))

    def _paged(
        self, path: str, operation: str, params: dict[str, str], fresh: bool = False
    ) -> Iterator[Application]:
        response = self.request("GET", path, operation, params=params, fresh=fresh)
        while True:
            body = response.json()
            for item in body.get("value", []):
                yield _parse_application(item)
            link = body.get("@odata.nextLink")
            if not link:
                return
            relative = str(link).split("/v1.0", 1)[-1]
            response = self.request("GET", relative, operation, fresh=fresh)

    def delete_application(self, object_id: str) -> bool:
        """``DELETE /applications/{id}``; False if it was already gone."""
        try:
            self.request(
                "DELETE", f"/applications/{quote(object_id, safe='')}", "delete_application"
            )
        except GraphError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- client secrets ----------------------------------------------------------------

    def add_password(self, object_id: str, display_name: str, end: datetime) -> NewPassword:
        """``POST /applications/{id}/addPassword``: the secret text is returned only here.

        A tenant policy capping secret lifetimes refuses it with 400
        ``CredentialInvalidLifetimeAsPerAppPolicy``; that is raised with what to
        change, never retried.
        """
        try:
            response = self.request(
                "POST",
                f"/applications/{quote(object_id, safe='')}/addPassword",
                "add_password",
                json={
                    "passwordCredential": {
                        "displayName": display_name,
                        "endDateTime": graph_time(end),
                    }
                },
                retry_not_found=True,
                ok_statuses=(200, 201),
                repeatable=False,  # GraphWriteUncertain: the caller's intent names the credential
            )
        except GraphError as exc:
            if exc.code == LIFETIME_POLICY_CODE:
                hours = (end - self.clock.now()).total_seconds() / 3600
                raise GraphError(
                    f"add_password: the tenant's app-management policy refuses a client secret"
                    f" valid for {hours:.0f} h; set timing.secret_lifetime below the policy's"
                    " maxLifetime (with timing.secret_renew_before at most half of it), or ask"
                    " a tenant administrator to exempt the management application",
                    status=exc.status,
                    method="POST",
                    url=exc.url,
                    code=exc.code,
                ) from exc
            raise
        body = response.json()
        secret = body.get("secretText")
        if not secret:
            raise GraphError("add_password: Graph returned no secretText", method="POST")
        return NewPassword(
            key_id=str(body["keyId"]),
            secret=Sensitive(str(secret)),
            start=_parse_time(body.get("startDateTime")) or self.clock.now(),
            end=_parse_time(body.get("endDateTime")) or end,
        )

    def remove_password(self, object_id: str, key_id: str) -> bool:
        """``POST /applications/{id}/removePassword``; False if Graph no longer had it."""
        try:
            self.request(
                "POST",
                f"/applications/{quote(object_id, safe='')}/removePassword",
                "remove_password",
                json={"keyId": key_id},
                repeatable=True,  # removing twice answers "not found", handled below
            )
        except GraphError as exc:
            if exc.status in (400, 404) and exc.code in (
                "Request_ResourceNotFound",
                "Request_BadRequest",
                "NotFound",
            ):
                return False
            raise
        return True

    # -- certificates ----------------------------------------------------------------

    def proof_of_possession(self, object_id: str, signer: CertificateCredential) -> str:
        """The JWT ``addKey``/``removeKey`` demand: signed by a key the app already has."""
        now = self.clock.now()
        claims = {
            "aud": PROOF_AUDIENCE,
            "iss": object_id,
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=10)).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        x5t = base64.urlsafe_b64encode(bytes.fromhex(signer.thumbprint)).rstrip(b"=").decode()
        return jwt.encode(claims, signer.key_pem.reveal(), algorithm="RS256", headers={"x5t": x5t})

    def add_key(
        self,
        object_id: str,
        cert_der: bytes,
        display_name: str,
        signer: CertificateCredential,
    ) -> KeyCredential:
        """``POST /applications/{id}/addKey`` with a proof signed by ``signer``."""
        body = {
            "keyCredential": {
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": base64.b64encode(cert_der).decode(),
                "displayName": display_name,
            },
            "passwordCredential": None,
            "proof": self.proof_of_possession(object_id, signer),
        }
        try:
            response = self.request(
                "POST",
                f"/applications/{quote(object_id, safe='')}/addKey",
                "add_key",
                json=body,
                ok_statuses=(200, 201),
            )
        except GraphWriteUncertain:
            # The certificate's thumbprint identifies the key: if the application
            # lists it, the upload happened and the caller can store it. If not,
            # the intent-named key is left to reconciliation (never uploaded twice).
            thumbprint = hashlib.sha1(cert_der).hexdigest().upper()  # noqa: S324 - Azure's thumbprint
            found = self.look_for(lambda: self._key_listed(object_id, thumbprint), "add_key")
            if found is None:
                raise
            return found
        item = response.json()
        return KeyCredential(
            key_id=str(item["keyId"]),
            display_name=str(item.get("displayName") or display_name),
            thumbprint=_thumbprint_from_identifier(item.get("customKeyIdentifier")),
            start=_parse_time(item.get("startDateTime")),
            end=_parse_time(item.get("endDateTime")) or datetime.max.replace(tzinfo=_UTC),
        )

    def _key_listed(self, object_id: str, thumbprint: str) -> KeyCredential | None:
        app = self.get_application(object_id, fresh=True)
        return next((k for k in app.keys if k.thumbprint == thumbprint), None)

    def remove_key(self, object_id: str, key_id: str, signer: CertificateCredential) -> bool:
        """``POST /applications/{id}/removeKey``; False if Graph no longer had it."""
        try:
            self.request(
                "POST",
                f"/applications/{quote(object_id, safe='')}/removeKey",
                "remove_key",
                json={"keyId": key_id, "proof": self.proof_of_possession(object_id, signer)},
                repeatable=True,
            )
        except GraphError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- the whole keyCredentials collection -------------------------------------------

    def patch_add_key(self, object_id: str, cert_der: bytes, display_name: str) -> KeyCredential:
        """``PATCH /applications/{id}`` with ``keyCredentials``: the collection read, plus ours.

        For an application with no valid certificate, which cannot use
        ``addKey`` (learn.microsoft.com/graph/api/application-addkey: "use the
        Update application operation"). The property replaces the whole
        collection (learn.microsoft.com/graph/api/application-update), so every
        key the application lists is written back by its ``keyId`` with a null
        ``key`` (kept as it is) and nothing someone else added is dropped. The
        read and the write share the pooled connection, so both see the same
        directory replica. Our key's ``keyId`` is chosen here, so a repeated
        write (a gateway error) writes the same collection again.
        """
        app = self.get_application(object_id)
        key_id = str(uuid.uuid4())
        entries: list[dict[str, Any]] = [{"keyId": k.key_id, "key": None} for k in app.keys]
        entries.append(
            {
                "keyId": key_id,
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": base64.b64encode(cert_der).decode(),
                "displayName": display_name,
            }
        )
        self._patch_keys(object_id, entries)
        cert = x509.load_der_x509_certificate(cert_der)
        return KeyCredential(
            key_id=key_id,
            display_name=display_name,
            thumbprint=hashlib.sha1(cert_der).hexdigest().upper(),  # noqa: S324 - Azure's thumbprint
            start=cert.not_valid_before_utc,
            end=cert.not_valid_after_utc,
        )

    def patch_remove_key(self, object_id: str, key_id: str) -> bool:
        """``PATCH`` the collection without ``key_id``: when no valid key is left to prove with."""
        app = self.get_application(object_id)
        if key_id not in {k.key_id for k in app.keys}:
            return False
        self._patch_keys(
            object_id, [{"keyId": k.key_id, "key": None} for k in app.keys if k.key_id != key_id]
        )
        return True

    # -- federated identity credentials -----------------------------------------------

    def add_federated_credential(
        self, object_id: str, name: str, issuer: str, subject: str, audience: str
    ) -> FederatedCredential:
        """``POST /applications/{id}/federatedIdentityCredentials`` (201 with the object).

        Body ``{name, issuer, subject, audiences: [audience], description}``
        (learn.microsoft.com/graph/api/application-post-federatedidentitycredentials;
        at most 20 per application). A 404 on an application created moments
        ago is replication lag and retried, as for ``addPassword``. Unlike
        ``addPassword`` the write may be repeated: ``name`` is unique on the
        application, so a repeat of a create that did land is refused as a
        duplicate (409 for the name, 400 for the issuer and subject:
        :data:`FEDERATED_DUPLICATE_CODES`); such a refusal, or a gateway error
        with no answer, is settled by looking the credential up by name on
        fresh connections and taking it back as ours when its issuer, subject
        and audience are what we asked for.
        """
        path = f"/applications/{quote(object_id, safe='')}/federatedIdentityCredentials"
        body = {
            "name": name,
            "issuer": issuer,
            "subject": subject,
            "audiences": [audience],
            "description": "azsidecar: managed by the rotation daemon; do not edit",
        }

        def ours() -> FederatedCredential | None:
            for f in self.list_federated_credentials(object_id, fresh=True):
                if f.name == name and (f.issuer, f.subject, f.audience) == (
                    issuer,
                    subject,
                    audience,
                ):
                    return f
            return None

        try:
            response = self.request(
                "POST",
                path,
                "add_federated_credential",
                json=body,
                retry_not_found=True,
                ok_statuses=(200, 201),
                repeatable=True,  # a repeat that landed twice is refused as a duplicate name
            )
        except GraphWriteUncertain:
            found = self.look_for(ours, "add_federated_credential")
            if found is None:
                raise
            return found
        except GraphError as exc:
            if not _duplicate_federated(exc):
                raise
            found = self.look_for(ours, "add_federated_credential")
            if found is None:
                raise
            log.info("add_federated_credential: %s already existed; taken back as ours", name)
            return found
        return _parse_federated(response.json())

    def list_federated_credentials(
        self, object_id: str, *, just_created: bool = False, fresh: bool = False
    ) -> list[FederatedCredential]:
        """``GET /applications/{id}/federatedIdentityCredentials``, following ``@odata.nextLink``.

        learn.microsoft.com/graph/api/application-list-federatedidentitycredentials:
        the answer's ``value`` holds the objects.
        """
        path = f"/applications/{quote(object_id, safe='')}/federatedIdentityCredentials"
        operation = "list_federated_credentials"
        response = self.request("GET", path, operation, retry_not_found=just_created, fresh=fresh)
        found: list[FederatedCredential] = []
        while True:
            page = response.json()
            found += [_parse_federated(item) for item in page.get("value") or []]
            link = page.get("@odata.nextLink")
            if not link:
                return found
            relative = str(link).split("/v1.0", 1)[-1]
            response = self.request("GET", relative, operation, fresh=fresh)

    def remove_federated_credential(self, object_id: str, credential_id: str) -> bool:
        """``DELETE /applications/{id}/federatedIdentityCredentials/{id}`` (204); False on 404.

        learn.microsoft.com/graph/api/federatedidentitycredential-delete.
        """
        app, cred = quote(object_id, safe=""), quote(credential_id, safe="")
        try:
            self.request(
                "DELETE",
                f"/applications/{app}/federatedIdentityCredentials/{cred}",
                "remove_federated_credential",
            )
        except GraphError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _patch_keys(self, object_id: str, entries: list[dict[str, Any]]) -> None:
        self.request(
            "PATCH",
            f"/applications/{quote(object_id, safe='')}",
            "patch_key_credentials",
            json={"keyCredentials": entries},
            ok_statuses=(200, 204),
            repeatable=True,  # the same collection, keyIds included, written again
        )


def sign_in_with_secret(
    session: requests.Session,
    login_url: str,
    tenant_id: str,
    client_id: str,
    secret: str,
    scope: str = ARM_SCOPE,
) -> tuple[int, list[int], str]:
    """Client-credentials sign-in with a secret: (HTTP status, AADSTS codes, description).

    Answers without MSAL, so a refusal's codes are seen as the endpoint sent
    them. GraphError (the transport's message) when the endpoint is not reached.
    """
    try:
        response = session.post(
            f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": scope,
            },
            timeout=30,
        )
    except requests.RequestException as exc:
        raise GraphError(str(exc)) from exc
    if response.status_code == 200:
        return 200, [], ""
    try:
        body = response.json()
    except ValueError:
        body = {}
    codes = [int(c) for c in body.get("error_codes") or [] if isinstance(c, int)]
    return response.status_code, codes, str(body.get("error_description", ""))[:160]


def sign_in_with_certificate(
    session: requests.Session,
    login_url: str,
    tenant_id: str,
    client_id: str,
    certificate: CertificateCredential,
    scope: str = ARM_SCOPE,
) -> tuple[int, list[int], str]:
    """:func:`sign_in_with_secret` with a certificate: (200 or 401, AADSTS codes, description).

    MSAL builds the signed assertion; its answer carries the endpoint's codes.
    GraphError (without the key) when the endpoint is not reached.
    """
    try:
        result = acquire_token_with_certificate(
            login_url=login_url,
            tenant_id=tenant_id,
            client_id=client_id,
            cert_pem=certificate.cert_pem,
            key_pem=certificate.key_pem,
            thumbprint=certificate.thumbprint,
            scope=scope,
            session=session,
        )
    except Exception as exc:  # the transport's failure; nothing of the key is in its type
        raise GraphError(f"sign-in with a certificate failed: {type(exc).__name__}") from None
    if result.get("access_token"):
        return 200, [], ""
    codes = [int(c) for c in result.get("error_codes") or [] if isinstance(c, int)]
    return 401, codes, str(result.get("error_description", ""))[:160]


def acquire_token_with_secret(
    *,
    login_url: str,
    tenant_id: str,
    client_id: str,
    secret: Sensitive,
    scope: str = ARM_SCOPE,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Client-credentials sign-in with a client secret, as a run would do it.

    Returns MSAL's result dict: ``access_token`` on success, ``error`` and
    ``error_codes`` (e.g. 7000215) on failure.
    """
    return _acquire(login_url, tenant_id, client_id, secret.reveal(), scope, session)


def _acquire(
    login_url: str,
    tenant_id: str,
    client_id: str,
    credential: str | dict[str, Any],
    scope: str,
    session: requests.Session | None,
) -> dict[str, Any]:
    """MSAL's client-credentials flow with ``credential``, no token cache shared, no discovery."""
    app = msal.ConfidentialClientApplication(
        client_id,
        authority=f"{login_url.rstrip('/')}/{tenant_id}",
        client_credential=credential,
        http_client=session or requests.Session(),
        instance_discovery=False,
        token_cache=msal.TokenCache(),
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[scope])
    return result


def acquire_token_with_certificate(
    *,
    login_url: str,
    tenant_id: str,
    client_id: str,
    cert_pem: str,
    key_pem: Sensitive,
    thumbprint: str,
    scope: str = ARM_SCOPE,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Client-credentials sign-in with a certificate (a signed ``client_assertion``).

    MSAL signs the assertion with the private key and names the certificate by
    its SHA-1 ``thumbprint`` (the ``x5t`` header), as a run would
    (learn.microsoft.com/entra/identity-platform/certificate-credentials).
    Returns MSAL's result dict, as :func:`acquire_token_with_secret` does.
    """
    credential = {
        "private_key": key_pem.reveal(),
        "thumbprint": thumbprint,
        "public_certificate": cert_pem,
    }
    return _acquire(login_url, tenant_id, client_id, credential, scope, session)


def acquire_token_with_assertion(
    *,
    login_url: str,
    tenant_id: str,
    client_id: str,
    assertion: Sensitive,
    scope: str = ARM_SCOPE,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Client-credentials sign-in with a federated ``client_assertion`` (an external issuer's JWT).

    MSAL sends it as ``client_assertion`` with the ``jwt-bearer`` assertion type
    (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
    "third case: access token request with a federated credential"). Returns
    MSAL's result dict, as :func:`acquire_token_with_secret` does.
    """
    # A callable, as MSAL asks (a static assertion is deprecated: it may expire
    # while MSAL holds it); this one is used once, so it never does.
    credential: dict[str, Any] = {"client_assertion": assertion.reveal}
    return _acquire(login_url, tenant_id, client_id, credential, scope, session)


# -- sign-in probes (verified readiness) --------------------------------------------------

#: Refusals that mean "the replica that answered does not know this secret (yet)".
#: AADSTS7000215 is Entra's answer to a client secret it does not hold
#: (https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal).
SECRET_REFUSED = frozenset({7000215})
#: AADSTS700027 is Entra's answer to a client assertion signed by a key it does not
#: hold for the application ("Client assertion failed signature validation"; see
#: https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
CERTIFICATE_REFUSED = frozenset({700027})
#: Entra's answers to a federated assertion no federated credential of the
#: application matches: AADSTS70021 ("No matching federated identity record
#: found for presented assertion"), and the more specific 700211 (issuer),
#: 700212 (audience) and 700213 (subject); right after a creation they mean the
#: serving replica does not have the credential yet
#: (learn.microsoft.com/entra/identity-platform/reference-error-codes,
#: learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations).
FEDERATED_REFUSED = frozenset({70021, 700211, 700212, 700213})


def probe_sign_in(
    tenant_id: str,
    client_id: str,
    secret: Sensitive,
    *,
    login_url: str,
    scope: str = ARM_SCOPE,
    ca_bundle: str | None = None,
) -> bool | None:
    """One client-credentials sign-in on a new connection: True, False (refused) or None.

    A new connection, because a front end keeps a keep-alive connection on
    one directory replica: a probe must sample a replica the way a run's
    first sign-in does. The token endpoint is not Microsoft Graph, so probes
    never spend the Graph write quota. None (inconclusive) covers every other
    answer: AADSTS700016 / 7000229 where the application has no service
    principal in ``tenant_id`` (before consent), throttling, network errors;
    such a probe says nothing about replication and is not counted. Nothing
    about the secret reaches an exception or a log: failures are reduced to a
    code.
    """
    return _probe(
        ca_bundle,
        SECRET_REFUSED,
        lambda session: acquire_token_with_secret(
            login_url=login_url,
            tenant_id=tenant_id,
            client_id=client_id,
            secret=secret,
            scope=scope,
            session=session,
        ),
    )


def _probe(
    ca_bundle: str | None,
    refused: frozenset[int],
    acquire: Callable[[requests.Session], dict[str, Any]],
) -> bool | None:
    """One sign-in on a new connection: True, False (a code in ``refused``) or None."""
    session = make_session(ca_bundle)
    try:
        result = acquire(session)
    except Exception:  # any transport failure is inconclusive; its text is dropped
        return None
    finally:
        session.close()
    if result.get("access_token"):
        return True
    codes = result.get("error_codes") or []
    if any(code in refused for code in codes):
        return False
    return None


def probe_sign_in_certificate(
    tenant_id: str,
    client_id: str,
    certificate: CertificateCredential,
    *,
    login_url: str,
    scope: str = ARM_SCOPE,
    ca_bundle: str | None = None,
) -> bool | None:
    """:func:`probe_sign_in` for a certificate credential: True, False (refused) or None.

    Refused means AADSTS700027, the key unknown to the replica that answered;
    everything else is inconclusive, and nothing about the key reaches an
    exception or a log.
    """
    return _probe(
        ca_bundle,
        CERTIFICATE_REFUSED,
        lambda session: acquire_token_with_certificate(
            login_url=login_url,
            tenant_id=tenant_id,
            client_id=client_id,
            cert_pem=certificate.cert_pem,
            key_pem=certificate.key_pem,
            thumbprint=certificate.thumbprint,
            scope=scope,
            session=session,
        ),
    )


def probe_sign_in_federated(
    tenant_id: str,
    client_id: str,
    assertion: Sensitive,
    *,
    login_url: str,
    scope: str = ARM_SCOPE,
    ca_bundle: str | None = None,
) -> bool | None:
    """:func:`probe_sign_in` with a federated assertion: True, False (refused) or None.

    Refused means one of :data:`FEDERATED_REFUSED`: the replica that answered
    has no federated credential matching the token yet; everything else is
    inconclusive, and nothing of the token reaches an exception or a log.
    """
    return _probe(
        ca_bundle,
        FEDERATED_REFUSED,
        lambda session: acquire_token_with_assertion(
            login_url=login_url,
            tenant_id=tenant_id,
            client_id=client_id,
            assertion=assertion,
            scope=scope,
            session=session,
        ),
    )
