"""The Vault login's life cycle, for every long-running part.

:class:`VaultLogin` owns one Vault client: an hvac client, or for the runner
helper the standard library's (:mod:`sidecar.vault_http`); its requests are
those of :mod:`sidecar.vault_transport`. After logging in it looks its token
up (``auth/token/lookup-self``), renews it (``auth/token/renew-self``) at about
two thirds of its TTL, logs in again (AppRole, JWT) when a renewal is refused or
the maximum TTL is reached, and re-reads ``token_file``, ``secret_id_file`` and
``jwt_file`` when they change (Vault Agent's sink and Kubernetes' projected
service-account tokens rotate them). When to do what is the pure rule of
:mod:`sidecar.vault_token`; this module only performs it.

The daemon, the resolver and the plugin run :meth:`VaultLogin.start` (a thread);
the runner helper calls :meth:`VaultLogin.maintain` before each attempt while it
waits. Tokens are real-time things: this module uses the wall clock even when
the product runs on the demo's emulated clock.

A replaced token is not revoked: a request already sent with it must not fail,
and it expires on its own within a third of its TTL.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sidecar import vault_transport as transports
from sidecar.config import VaultConfig
from sidecar.errors import VaultError, VaultForbidden, VaultLoginError, VaultUnavailable
from sidecar.vault_token import Decision, Step, TokenView, decide, was_capped

if TYPE_CHECKING:
    import logging

    import hvac

    from sidecar.vault_transport import VaultTransport


class _Log:
    """``logging.getLogger(name)``, with :mod:`logging` imported only when a record could show.

    The runner helper logs in once per CI job and pays every import (issue 17).
    While nothing has imported :mod:`logging`, nothing has configured it: the root
    logger is at WARNING with no handler, so an INFO record would be dropped, and
    is, without importing logging for it. Every other record goes to the logger.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def _logger(self) -> logging.Logger:
        import logging  # noqa: PLC0415 - see the class

        return logging.getLogger(self.name)

    def info(self, msg: str, *args: object) -> None:
        if "logging" in sys.modules:
            self._logger().info(msg, *args, stacklevel=2)

    def warning(self, msg: str, *args: object) -> None:
        self._logger().warning(msg, *args, stacklevel=2)

    def error(self, msg: str, *args: object) -> None:
        self._logger().error(msg, *args, stacklevel=2)

    def exception(self, msg: str, *args: object) -> None:
        self._logger().exception(msg, *args, stacklevel=2)


log = _Log(__name__)

Method = Literal["token", "approle", "jwt"]

#: How often credential files are looked at (a stat each).
FILE_POLL = 1.0
#: First and longest pause after a failed renewal or login.
RETRY_FIRST, RETRY_MAX = 1.0, 15.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LoginObserver(Protocol):
    def vault_token_event(self, event: str) -> None:
        """``renewed``, ``login``, ``token_reloaded``, ``renew_failed``, ``login_failed``."""


@dataclass(frozen=True, repr=False)
class LoginSpec:
    """How to log in. Secret values are held only when given directly (not by file)."""

    addr: str
    method: Method = "token"
    token: str | None = None
    token_file: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    secret_id_file: str | None = None
    jwt_mount: str = "jwt"
    jwt_role: str | None = None
    jwt: str | None = None
    jwt_file: str | None = None
    approle_mount: str = "approle"
    ca_cert: str | None = None
    namespace: str | None = None
    timeout: float = 10.0
    # Names of the settings, for error messages (the daemon's TOML keys by default).
    keys: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"LoginSpec(addr={self.addr!r}, method={self.method!r})"

    @property
    def can_login(self) -> bool:
        """A new token can be had without an operator: AppRole or JWT."""
        return self.method in ("approle", "jwt")

    def key(self, name: str) -> str:
        return self.keys.get(name, f"vault.{name}")

    def watched(self) -> dict[str, str]:
        """The credential files whose change matters: setting name -> path."""
        files = {
            "token": ("token_file", self.token_file),
            "approle": ("secret_id_file", self.secret_id_file),
            "jwt": ("jwt_file", self.jwt_file),
        }
        name, path = files[self.method]
        return {name: path} if path else {}


def read_secret_file(path: str, key: str) -> str:
    """A credential file's content; a VaultLoginError naming the setting otherwise."""
    try:
        with open(path) as handle:  # as Path.read_text; pathlib is not loaded for it
            value = handle.read().strip()
    except OSError as exc:
        raise VaultLoginError(f"cannot read {key} ({path}): {exc.strerror}") from exc
    if not value:
        raise VaultLoginError(f"{key} ({path}) is empty: write the credential into it")
    return value


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class TokenStatus:
    """What health checks show; holds no secret."""

    method: Method
    expires_at: datetime | None
    renewable: bool
    renewals: int
    logins: int
    reloads: int
    problem: str
    checked_at: datetime

    def remaining(self, now: datetime) -> float | None:
        """Seconds until the token expires; None if it never does."""
        if self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds()

    def as_dict(self, now: datetime) -> dict[str, Any]:
        remaining = self.remaining(now)
        return {
            "method": self.method,
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "expires_in_seconds": None if remaining is None else round(remaining, 1),
            "renewable": self.renewable,
            "renewals": self.renewals,
            "logins": self.logins,
            "token_file_reloads": self.reloads,
            "problem": self.problem,
        }


def new_client(spec: LoginSpec) -> hvac.Client:
    # hvac and requests are imported only by the parts that use them (not the runner helper).
    from sidecar import vault  # noqa: PLC0415 - lazy, see above

    return vault.new_client(
        spec.addr, ca_cert=spec.ca_cert, namespace=spec.namespace, timeout=spec.timeout
    )


class VaultLogin:
    """One logged-in Vault client whose token is kept alive."""

    def __init__(
        self,
        spec: LoginSpec,
        *,
        client: hvac.Client | None = None,
        transport: VaultTransport | None = None,
        now: Callable[[], datetime] = _utcnow,
        observer: LoginObserver | None = None,
        name: str = "azsidecar",
    ) -> None:
        self.spec = spec
        if transport is None:
            from sidecar.vault import HvacTransport  # noqa: PLC0415 - lazy, see new_client

            client = client or new_client(spec)
            transport = HvacTransport(client)
        self._client = client
        #: What the login's requests go through: the hvac client's, or the runner's own.
        self.transport = transport
        self.now = now
        self.observer = observer
        self.name = name
        self.view: TokenView | None = None
        self.renewals = 0
        self.logins = 0
        self.reloads = 0
        self.problem = ""
        self.last_error: VaultError | None = None  # the failure behind ``problem``
        self._creation_ttl = timedelta(0)
        self._retry_at: datetime | None = None
        self._retry_step = RETRY_FIRST
        self._files: dict[str, tuple[int, int, int] | None] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the life cycle ------------------------------------------------------------------

    @property
    def client(self) -> hvac.Client:
        """The logged-in hvac client (not for a login built on another transport)."""
        if self._client is None:
            raise TypeError(f"{self.name}: this Vault login has no hvac client")
        return self._client

    def login(self, *, look_up: bool = True) -> hvac.Client:
        """The first login (or token read); raises when it fails, e.g. at start-up.

        ``look_up=False`` (a short-lived command) asks Vault nothing more than the
        login needs: a plain token is taken as it is, and the upkeep, if started,
        looks it up at its first step; after an AppRole or JWT login the token's
        TTL and renewability are taken from the login's answer (its ``auth`` block,
        which is what ``lookup-self`` would say of a token just created) instead
        of a ``lookup-self`` round trip.
        """
        self.open(look_up=look_up)
        return self.client

    def open(self, *, look_up: bool = True) -> VaultTransport:
        """:meth:`login`, for any transport: the logged-in transport."""
        with self._lock:
            self._remember_files()
            if self.spec.method == "token" and not look_up:
                self.transport.token = self._current_token()
            elif self.spec.method == "token":
                self._adopt_token(self._current_token(), first=True)
            else:
                self._log_in(look_up=look_up)
            return self.transport

    def maintain(self) -> datetime:
        """Do what is due now (renew, log in, re-read a file); return when to look again.

        Never raises for Vault's answers: a failure is logged, kept in :attr:`problem`
        and tried again later (sooner when the credential file changes).
        """
        with self._lock:
            now = self.now()
            changed = self._changed_files()
            try:
                if changed and self.spec.method == "token":
                    self._adopt_token(self._current_token(), first=False)
                elif changed and (self.problem or self.view is None):
                    self._log_in()  # a new secret id or JWT after a failed login
                elif self._retry_at is not None and now < self._retry_at:
                    return min(self._retry_at, now + timedelta(seconds=FILE_POLL))
                else:
                    self._do(self._decision(now))
            except VaultError as exc:
                self._failed(exc)
            now = self.now()
            wake = self._retry_at if self._retry_at is not None else self._decision(now).at
            return min(max(wake, now), now + timedelta(seconds=FILE_POLL))

    def recover(self) -> None:
        """Vault refused a request: if the token itself is gone (revoked, expired while
        paused), log in again now rather than at the next planned step."""
        with self._lock:
            try:
                self._look_up()
            except VaultUnavailable:
                return
            except VaultError:
                if not self.spec.can_login:
                    self.problem = (
                        "Vault no longer accepts the token: write a new one to"
                        f" {self.spec.key('token_file')} or use AppRole / JWT login"
                    )
                    return
                log.warning("%s: Vault no longer accepts the token; logging in again", self.name)
                try:
                    self._log_in()
                except VaultError as exc:
                    self._failed(exc)

    def start(self) -> VaultLogin:
        """Keep the token alive in a background thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"vault-login-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def status(self) -> TokenStatus:
        """A snapshot for health checks; takes no lock, so a slow login never blocks it."""
        view = self.view
        problem = self.problem
        now = self.now()
        if not problem and view is not None:
            decision = decide(view, now, self.spec.can_login)
            if decision.step is Step.EXPIRING and decision.at <= now:
                problem = decision.reason
        return TokenStatus(
            method=self.spec.method,
            expires_at=None if view is None else view.expires_at,
            renewable=bool(view and view.renewable and not view.capped),
            renewals=self.renewals,
            logins=self.logins,
            reloads=self.reloads,
            problem=problem or ("not logged in" if view is None else ""),
            checked_at=now,
        )

    # -- steps ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wake = self.maintain()
            except Exception:  # a bug must not end the token's upkeep silently
                log.exception("%s: unexpected error keeping the Vault token alive", self.name)
                wake = self.now() + timedelta(seconds=RETRY_MAX)
            self._stop.wait(max(0.05, (wake - self.now()).total_seconds()))

    def _decision(self, now: datetime) -> Decision:
        if self.view is None:
            return Decision(Step.LOGIN, now, "not logged in")
        return decide(self.view, now, self.spec.can_login)

    def _do(self, decision: Decision) -> None:
        now = self.now()
        if decision.at > now:
            return
        if decision.step is Step.RENEW:
            self._renew()
        elif decision.step is Step.LOGIN:
            if self.spec.method == "token":
                self._adopt_token(self._current_token(), first=False)
            else:
                log.info("%s: logging in to Vault again: %s", self.name, decision.reason)
                self._log_in()
        elif decision.step is Step.EXPIRING and self.problem != decision.reason:
            self.problem = decision.reason
            log.error("%s: %s", self.name, decision.reason)

    def _renew(self) -> None:
        assert self.view is not None
        asked = self._creation_ttl
        started = self.now()
        increment = f"{int(asked.total_seconds())}s" if asked > timedelta(0) else None
        try:
            body = transports.renew_self(self.transport, increment)
        except VaultUnavailable:
            raise
        except VaultError as exc:
            self._emit("renew_failed")
            if not self.spec.can_login:
                raise VaultForbidden(
                    f"Vault refused to renew the token ({exc}); give a new token"
                    f" ({self.spec.key('token_file')}) or use AppRole / JWT login"
                ) from exc
            log.warning(
                "%s: Vault refused to renew the token (%s); logging in again", self.name, exc
            )
            self._log_in()
            return
        auth = body.get("auth") or {}
        granted = timedelta(seconds=int(auth.get("lease_duration") or 0))
        self.view = TokenView(
            seen_at=started,
            ttl=granted,
            renewable=bool(auth.get("renewable")),
            capped=was_capped(asked, granted),
        )
        self.renewals += 1
        self._succeeded()
        self._emit("renewed")
        log.info("%s: Vault token renewed for %s", self.name, granted)
        if self.view.capped:
            log.info(
                "%s: the Vault token reached its maximum TTL (granted %s of %s)",
                self.name,
                granted,
                asked,
            )

    def _log_in(self, *, look_up: bool = True) -> None:
        spec = self.spec
        started = self.now()
        try:
            if spec.method == "approle":
                secret_id = self._secret_id()
                if not spec.role_id:
                    raise VaultLoginError(f"AppRole login needs {spec.key('role_id')}")
                path = f"auth/{spec.approle_mount}/login"
                body = transports.approle_login(
                    self.transport, spec.role_id, secret_id, spec.approle_mount
                )
            else:
                assertion = self._jwt()
                if not spec.jwt_role:
                    raise VaultLoginError(f"JWT login needs {spec.key('jwt_role')}")
                path = f"auth/{spec.jwt_mount}/login"
                body = transports.jwt_login(
                    self.transport, spec.jwt_role, assertion, spec.jwt_mount
                )
        except VaultUnavailable:
            self._emit("login_failed")
            raise
        except VaultLoginError:
            self._emit("login_failed")
            raise
        except VaultError as exc:
            self._emit("login_failed")
            raise VaultLoginError(self._refused(exc)) from exc
        token = str((body.get("auth") or {}).get("client_token") or "")
        if not token:
            raise VaultLoginError(f"Vault's answer to {path} held no token")
        self.transport.token = token
        if look_up:
            self._look_up()
        else:
            self._view_from_login(body.get("auth") or {}, started)
        self.logins += 1
        self._succeeded()
        self._emit("login")
        log.info(
            "%s: logged in to Vault with %s; token expires in %s",
            self.name,
            spec.method,
            None if self.view is None else self.view.ttl,
        )

    def _refused(self, exc: VaultError) -> str:
        spec = self.spec
        if spec.method == "approle":
            where = spec.key("secret_id_file") if spec.secret_id_file else spec.key("secret_id")
            return (
                f"AppRole login refused by Vault ({exc}): the secret id may have expired,"
                f" run out of uses or been revoked, or the role id is wrong;"
                f" write a new secret id to {where}"
            )
        return (
            f"JWT login refused by Vault ({exc}): the JWT in {spec.key('jwt_file')} may have"
            f" expired or not match role {spec.jwt_role}; make sure it is rewritten in time"
        )

    def _adopt_token(self, token: str, *, first: bool) -> None:
        """Use ``token`` (from the configuration or a rewritten token file)."""
        old = self.transport.token
        if not first and token == old:
            self._look_up()  # the same token (rewritten, or not looked up yet)
            self._succeeded()
            return
        self.transport.token = token
        try:
            self._look_up()
        except VaultError:
            if not first and old:
                self.transport.token = old  # keep the one that works
            raise
        if not first:
            self.reloads += 1
            self._emit("token_reloaded")
            log.info("%s: using the new token from %s", self.name, self.spec.key("token_file"))
        self._succeeded()

    def _look_up(self) -> None:
        started = self.now()
        body = transports.lookup_self(self.transport)
        data = body.get("data") or {}
        self._creation_ttl = timedelta(seconds=int(data.get("creation_ttl") or 0))
        self.view = TokenView(
            seen_at=started,
            ttl=timedelta(seconds=int(data.get("ttl") or 0)),
            renewable=bool(data.get("renewable")),
        )

    def _view_from_login(self, auth: dict[str, Any], started: datetime) -> None:
        """The new token as ``lookup-self`` would show it, from the login's ``auth`` block.

        A login answers with ``auth.lease_duration`` (the new token's TTL, which is
        also its creation TTL) and ``auth.renewable``
        (https://openbao.org/api-docs/auth/jwt/#jwt-login,
        https://openbao.org/api-docs/auth/approle/#login-with-approle).
        """
        ttl = timedelta(seconds=int(auth.get("lease_duration") or 0))
        self._creation_ttl = ttl
        self.view = TokenView(seen_at=started, ttl=ttl, renewable=bool(auth.get("renewable")))

    def _failed(self, exc: VaultError) -> None:
        message = str(exc)
        if message != self.problem:
            log.error("%s: %s", self.name, message)
        self.problem = message
        self.last_error = exc
        now = self.now()
        self._retry_at = now + timedelta(seconds=self._retry_step)
        self._retry_step = min(self._retry_step * 2, RETRY_MAX)

    def _succeeded(self) -> None:
        if self.problem:
            log.info("%s: the Vault token is fine again", self.name)
        self.problem = ""
        self.last_error = None
        self._retry_at = None
        self._retry_step = RETRY_FIRST

    def _emit(self, event: str) -> None:
        if self.observer is not None:
            self.observer.vault_token_event(event)

    # -- credentials ---------------------------------------------------------------------

    def _current_token(self) -> str:
        if self.spec.token_file:
            return read_secret_file(self.spec.token_file, self.spec.key("token_file"))
        if self.spec.token:
            return self.spec.token
        raise VaultLoginError(
            f"no Vault token: set {self.spec.key('token_file')} or VAULT_TOKEN,"
            " or use AppRole / JWT login"
        )

    def _secret_id(self) -> str:
        if self.spec.secret_id_file:
            return read_secret_file(self.spec.secret_id_file, self.spec.key("secret_id_file"))
        if self.spec.secret_id:
            return self.spec.secret_id
        raise VaultLoginError(
            f"AppRole login needs a secret id: set {self.spec.key('secret_id_file')}"
        )

    def _jwt(self) -> str:
        if self.spec.jwt_file:
            return read_secret_file(self.spec.jwt_file, self.spec.key("jwt_file"))
        if self.spec.jwt:
            return self.spec.jwt
        raise VaultLoginError(f"JWT login needs {self.spec.key('jwt_file')}")

    def _remember_files(self) -> None:
        self._files = {name: _signature(path) for name, path in self.spec.watched().items()}

    def _changed_files(self) -> bool:
        changed = False
        for name, path in self.spec.watched().items():
            now = _signature(path)
            if now != self._files.get(name):
                self._files[name] = now
                changed = changed or now is not None
                if now is not None:
                    log.info("%s: %s changed; reading it again", self.name, self.spec.key(name))
        return changed


def with_keys(spec: LoginSpec, **keys: str) -> LoginSpec:
    return replace(spec, keys={**spec.keys, **keys})


@dataclass(frozen=True, repr=False)
class LoginChoice:
    """A caller's choices over the ``[vault]`` login; ``None`` keeps the configuration.

    ``method=None`` is the configured ``vault.auth`` (the daemon, the resolver);
    ``"auto"`` picks by what is given (the runner helper's default, see
    :func:`choose_method`). ``role_id_file`` only steers ``"auto"``: its content,
    read by the caller, is ``role_id``.
    """

    method: Method | Literal["auto"] | None = None
    token: str | None = None
    token_file: str | None = None
    jwt_file: str | None = None
    jwt_role: str | None = None
    jwt_mount: str | None = None
    role_id: str | None = None
    role_id_file: str | None = None
    secret_id_file: str | None = None

    def __repr__(self) -> str:
        return f"LoginChoice(method={self.method!r})"


def choose_method(vault: VaultConfig, choice: LoginChoice) -> Method:
    """The login method: chosen, configured, or (``"auto"``) the first credential given."""
    if choice.method is None:
        return vault.auth
    if choice.method != "auto":
        return choice.method
    if choice.jwt_file:
        return "jwt"
    if choice.role_id_file or choice.secret_id_file:
        return "approle"
    if choice.token_file or choice.token or vault.token or vault.token_file:
        return "token"
    if vault.auth != "token":
        return vault.auth
    if vault.role_id:
        return "approle"
    return "token"


def login_spec(
    vault: VaultConfig,
    choice: LoginChoice | None = None,
    *,
    keys: dict[str, str] | None = None,
) -> LoginSpec:
    """How to log in, from the ``[vault]`` section and a caller's choices.

    The one place every Vault client's login is resolved: the daemon and the
    resolver (:func:`sidecar.runtime.make_login`) give no choice, the runner
    helper (:mod:`sidecar.runner.auth`) gives its command line. ``keys`` name
    the settings in error messages (the TOML keys by default).
    """
    choice = choice or LoginChoice()
    method = choose_method(vault, choice)
    token = None if choice.token_file else (choice.token or vault.token)
    token_file = choice.token_file or (None if token else vault.token_file)
    secret_id_file = choice.secret_id_file or (None if vault.secret_id else vault.secret_id_file)
    return LoginSpec(
        addr=vault.addr,
        method=method,
        token=token,
        token_file=token_file,
        role_id=choice.role_id or vault.role_id,
        secret_id=None if secret_id_file else vault.secret_id,
        secret_id_file=secret_id_file,
        jwt_mount=choice.jwt_mount or vault.jwt_mount,
        jwt_role=choice.jwt_role or vault.jwt_role,
        jwt_file=choice.jwt_file or vault.jwt_file,
        ca_cert=vault.ca_cert,
        namespace=vault.namespace,
        timeout=vault.timeout,
        keys=dict(keys or {}),
    )


def spec_from_config(vault: VaultConfig) -> LoginSpec:
    """The daemon's / resolver's login, from the ``[vault]`` section alone."""
    return login_spec(vault)
