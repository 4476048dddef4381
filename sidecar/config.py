"""One typed configuration object, from a TOML file and the environment.

Precedence, lowest first: built-in defaults, the TOML file, ``AZSIDECAR_<SECTION>_<KEY>``
environment variables, then Vault's own variables (``VAULT_ADDR``, ``VAULT_TOKEN``,
``VAULT_CACERT``, ``VAULT_NAMESPACE``, and the ``BAO_`` spellings). An unknown key or a
bad value stops start-up with a :class:`ConfigError` that names the key and what is
allowed. Secrets (a Vault token, an AppRole secret id) are best given by file
(``token_file``, ``secret_id_file``) or environment, never as process arguments.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from sidecar.clouds import CLOUDS, CloudName
from sidecar.durations import parse_duration
from sidecar.errors import ConfigError, InputError
from sidecar.phases import DEFAULT_CREDS_MOUNT
from sidecar.timing import TimingPolicy

if TYPE_CHECKING:
    from sidecar.issuer.documents import IssuerIdentity
    from sidecar.issuer.planner import IssuerPolicy

ENV_PREFIX = "AZSIDECAR_"


#: The audience Entra ID expects in a federated assertion (``sidecar.issuer.documents.
#: ENTRA_AUDIENCE``, written out so reading a config imports no issuer; a test holds
#: them equal).
ENTRA_AUDIENCE_DEFAULT = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class VaultConfig:
    addr: str = "http://127.0.0.1:8200"
    auth: Literal["token", "approle", "jwt"] = "token"
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    role_id: str | None = None
    secret_id: str | None = field(default=None, repr=False)
    secret_id_file: str | None = None
    jwt_mount: str = "jwt"
    jwt_role: str | None = None
    jwt_file: str | None = None
    ca_cert: str | None = None
    namespace: str | None = None
    kv_mount: str = "secret"
    prefix: str = "azsidecar"
    timeout: float = 10.0


@dataclass(frozen=True)
class AzureConfig:
    """``cloud`` sets the three base URLs and the scopes; a URL given explicitly wins.

    The scopes follow the cloud, not an overridden URL, so a stand-in (the
    emulator) at another address is asked for the cloud's usual scopes.

    ``management_auth`` is how the daemon signs in to Graph as the management
    application: ``certificate`` (a certificate it keeps in Vault and renews
    itself) or ``federated`` (an assertion signed by the ``[issuer]``'s Transit
    key, trusted by a federated credential on the application: no key to
    store or rotate; needs ``issuer.url``). ``management_audience`` is the
    ``aud`` of those assertions and the audience of that federated credential:
    Entra's recommended ``api://AzureADTokenExchange`` by default (other
    clouds document their own, e.g. ``api://AzureADTokenExchangeChina`` in
    Microsoft.Identity.Abstractions' ``CredentialDescription.TokenExchangeUrl``).
    """

    cloud: CloudName = "public"
    login_url: str = ""
    graph_url: str = ""
    arm_url: str = ""
    ca_bundle: str | None = None
    consent_redirect_uri: str = "https://localhost/azsidecar/consent"
    app_name_prefix: str = "azsidecar"
    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    request_timeout: float = 30.0
    management_auth: Literal["certificate", "federated"] = "certificate"
    management_audience: str = ENTRA_AUDIENCE_DEFAULT

    def __post_init__(self) -> None:
        if self.cloud not in CLOUDS:
            raise ConfigError(
                "azure.cloud", f"got {self.cloud!r}; allowed: {', '.join(map(repr, CLOUDS))}"
            )
        cloud = CLOUDS[self.cloud]
        for name in ("login_url", "graph_url", "arm_url"):
            if not getattr(self, name):
                object.__setattr__(self, name, getattr(cloud, name))

    @property
    def graph_scope(self) -> str:
        return CLOUDS[self.cloud].graph_scope

    @property
    def arm_scope(self) -> str:
        return CLOUDS[self.cloud].arm_scope


@dataclass(frozen=True)
class DaemonConfig:
    concurrency: int = 8
    metrics_addr: str = "127.0.0.1:9464"
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    resolver_enabled: bool = True
    resolver_addr: str = "127.0.0.1:50051"
    # The plugin mount whose creds/ path authorises callers. Not "azure": a resolver-only
    # Vault has nothing there, and policies written for HashiCorp's Azure engine
    # (conventionally at azure/) would grant every stack's credential through the resolver.
    resolver_mount: str = DEFAULT_CREDS_MOUNT
    # How long the resolver reuses an integration's secret index (0 disables; see sidecar.resolve).
    resolver_cache_ttl: timedelta = timedelta(seconds=2)
    tls_cert: str | None = None
    tls_key: str | None = None
    # The resolver's HTTPS ID-token endpoint for federated integrations (azurerm's
    # ARM_OIDC_REQUEST_URL; sidecar.resolver.oidc_request), e.g. "0.0.0.0:8443".
    # Empty: not served. Needs tls_cert and tls_key.
    resolver_oidc_addr: str = ""
    cert_reload_interval: timedelta = timedelta(minutes=5)


#: :class:`~sidecar.issuer.planner.IssuerPolicy`'s default durations (their sources are
#: there), written out so that reading the configuration, which every command does,
#: imports no issuer: the runner helper runs at the start of every CI job (issue 17).
#: A test holds them equal to IssuerPolicy's.
ISSUER_DEFAULTS = (
    timedelta(hours=24),  # publish_ahead
    timedelta(minutes=10),  # token_lifetime
    timedelta(minutes=5),  # clock_skew
    timedelta(days=30),  # rotation_period
)


@dataclass(frozen=True)
class IssuerConfig:
    """The OIDC issuer (sidecar.issuer): its public URL, its Transit key, its durations.

    ``url`` empty: no issuer configured. The durations' defaults and their
    sources are in :mod:`sidecar.issuer.planner`.

    ``listen`` is where every daemon serves the discovery document and the
    JWKS over HTTPS (``tls_cert``, ``tls_key``: PEM files); ``listen = ""``
    means no listener, the documents being hosted statically
    (``azsidecar issuer export``). Checked when the daemon starts
    (:meth:`listener`), not on load, so ``issuer export`` needs no TLS files.
    """

    url: str = ""
    jwks_uri: str = ""
    transit_mount: str = "transit"
    key: str = "azsidecar-issuer"
    publish_ahead: timedelta = ISSUER_DEFAULTS[0]
    token_lifetime: timedelta = ISSUER_DEFAULTS[1]
    clock_skew: timedelta = ISSUER_DEFAULTS[2]
    rotation_period: timedelta = ISSUER_DEFAULTS[3]
    listen: str = "0.0.0.0:8443"
    tls_cert: str = ""
    tls_key: str = ""

    def __post_init__(self) -> None:
        durations = (self.publish_ahead, self.token_lifetime, self.clock_skew, self.rotation_period)
        if self.url or durations != ISSUER_DEFAULTS:  # the defaults are valid (a test says so)
            self.policy()
        if self.url:
            self.identity()

    def policy(self) -> IssuerPolicy:
        from sidecar.issuer.planner import IssuerPolicy  # noqa: PLC0415 - see ISSUER_DEFAULTS

        return IssuerPolicy(
            publish_ahead=self.publish_ahead,
            token_lifetime=self.token_lifetime,
            clock_skew=self.clock_skew,
            rotation_period=self.rotation_period,
        )

    def identity(self) -> IssuerIdentity:
        """Where the issuer is published; ConfigError when ``url`` is unset or unusable."""
        from sidecar.issuer.documents import IssuerIdentity  # noqa: PLC0415 - see ISSUER_DEFAULTS

        if not self.url:
            raise ConfigError("issuer.url", "not set: the public https:// URL of the issuer")
        try:
            return IssuerIdentity(self.url, self.jwks_uri)
        except InputError as exc:
            raise ConfigError("issuer.url", str(exc)) from exc

    def listener(self) -> tuple[str, int] | None:
        """Where the daemon serves the documents; None when none is wanted.

        ConfigError when ``url`` is set and ``listen`` is not ``""`` but
        ``listen`` is not ``host:port`` or a TLS file is unset or unreadable
        (whether they hold a usable key pair is checked when the listener
        loads them).
        """
        if not self.url or not self.listen:
            return None
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(
                "issuer.listen", f'got {self.listen[:40]!r}; expected host:port, or "" for none'
            )
        for key in ("tls_cert", "tls_key"):
            path = getattr(self, key)
            if not path:
                raise ConfigError(
                    f"issuer.{key}",
                    "not set: the issuer's documents are served over HTTPS (Entra fetches "
                    'them so); set issuer.tls_cert and issuer.tls_key, or issuer.listen = "" '
                    "when they are hosted statically (azsidecar issuer export)",
                )
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"issuer.{key}", f"cannot read {path}: {exc.strerror}") from exc
        return host.strip("[]"), int(port)  # "" is every interface


@dataclass(frozen=True)
class ClockConfig:
    """Emulated time for the demo and tests; ``factor = 1`` and no origin is real time."""

    factor: float = 1.0
    origin: datetime | None = None
    origin_real: float | None = None


@dataclass(frozen=True)
class Config:
    vault: VaultConfig = field(default_factory=VaultConfig)
    azure: AzureConfig = field(default_factory=AzureConfig)
    timing: TimingPolicy = field(default_factory=TimingPolicy)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    issuer: IssuerConfig = field(default_factory=IssuerConfig)

    def vault_token(self) -> str | None:
        """The Vault token, from the config value or ``token_file``."""
        if self.vault.token:
            return self.vault.token
        if self.vault.token_file:
            return _read_secret_file(self.vault.token_file, "vault.token_file")
        return None

    def approle_secret_id(self) -> str | None:
        if self.vault.secret_id:
            return self.vault.secret_id
        if self.vault.secret_id_file:
            return _read_secret_file(self.vault.secret_id_file, "vault.secret_id_file")
        return None


_SECTIONS: dict[str, type[Any]] = {
    "vault": VaultConfig,
    "azure": AzureConfig,
    "timing": TimingPolicy,
    "daemon": DaemonConfig,
    "clock": ClockConfig,
    "issuer": IssuerConfig,
}

# Vault's and OpenBao's own variables, honoured so the CLI behaves like `bao`.
_VAULT_ENV = {
    "addr": ("BAO_ADDR", "VAULT_ADDR"),
    "token": ("BAO_TOKEN", "VAULT_TOKEN"),
    "ca_cert": ("BAO_CACERT", "VAULT_CACERT"),
    "namespace": ("BAO_NAMESPACE", "VAULT_NAMESPACE"),
}


def _read_secret_file(path: str, key: str) -> str:
    try:
        with open(path) as handle:  # as Path.read_text; pathlib is not loaded for it
            value = handle.read().strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(key, f"{path} is empty")
    return value


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    names = {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        timedelta: "a duration such as 90s, 10m, 1h30m or 7d",
        datetime: "an RFC 3339 time such as 2026-01-01T00:00:00Z",
    }
    return names.get(tp, str(tp))


def _convert(key: str, tp: Any, raw: Any) -> Any:
    """Convert a TOML or environment value to the field's type, or say what is allowed."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _convert(key, inner[0], raw)
    if origin is Literal:
        if raw not in get_args(tp):
            raise ConfigError(key, f"got {str(raw)[:40]!r}; allowed: {_describe(tp)}")
        return raw
    try:
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "false", "0", "no"):
                return raw.lower() in ("true", "1", "yes")
            raise ValueError
        if tp is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if tp is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if tp is str:
            if not isinstance(raw, str):
                raise ValueError
            return raw
        if tp is timedelta:
            return parse_duration(raw)
        if tp is datetime:
            value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
            if value.tzinfo is None:
                raise ValueError
            return value
    except (ValueError, TypeError, InputError) as exc:
        raise ConfigError(key, f"got {str(raw)[:40]!r}; expected {_describe(tp)}") from exc
    raise ConfigError(key, f"unsupported type {tp}")


def _build_section(name: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in allowed:
            raise ConfigError(f"{name}.{key}", f"unknown key; allowed keys: {', '.join(allowed)}")
        kwargs[key] = _convert(f"{name}.{key}", hints[key], raw)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.key.startswith(f"{name}."):
            raise
        message = str(exc).removeprefix(f"configuration {exc.key}: ")
        raise ConfigError(f"{name}.{exc.key}", message) from exc


#: Variables of ours that are not configuration: the config file, and what the agent
#: templates (vault-config/*.ctmpl) read, which the helper they run inherits.
_NOT_CONFIGURATION = frozenset(
    f"{ENV_PREFIX}{name}" for name in ("CONFIG", "STACK", "PHASE", "MOUNT")
)


def _environment_values(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var in _NOT_CONFIGURATION:
            continue
        if var.startswith(f"{ENV_PREFIX}TEST_"):  # test hooks, not configuration
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS or not key:
            raise ConfigError(
                var,
                f"unknown variable; use {ENV_PREFIX}<SECTION>_<KEY> with a section of "
                + ", ".join(_SECTIONS),
            )
        found.setdefault(section, {})[key] = value
    vault = found.setdefault("vault", {})
    for key, names in _VAULT_ENV.items():
        for var in names:
            if env.get(var) and key not in vault:
                vault[key] = env[var]
                break
    return found


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load and validate the configuration; raises ConfigError naming the bad key."""
    env = os.environ if env is None else env
    path = path or env.get(f"{ENV_PREFIX}CONFIG") or None
    file_values: dict[str, Any] = {}
    if path:
        # Only a config file needs the TOML parser: a runner configured by its
        # environment, at the start of every CI job, does not load it (issue 17).
        import tomllib  # noqa: PLC0415 - lazy, see above

        try:
            with open(path, "rb") as handle:
                file_values = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError("config file", f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config file", f"{path} is not valid TOML: {exc}") from exc
    for section, values in file_values.items():
        if section not in _SECTIONS:
            raise ConfigError(section, f"unknown section; allowed sections: {', '.join(_SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(section, "must be a table, e.g. [" + section + "]")
    merged: dict[str, dict[str, Any]] = {
        name: dict(file_values.get(name, {})) for name in _SECTIONS
    }
    for section, values in _environment_values(env).items():
        merged[section].update(values)
    sections = {name: _build_section(name, cls, merged[name]) for name, cls in _SECTIONS.items()}
    config = Config(**sections)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    config.timing.validate()
    for key, url in (
        ("vault.addr", config.vault.addr),
        ("azure.login_url", config.azure.login_url),
        ("azure.graph_url", config.azure.graph_url),
        ("azure.arm_url", config.azure.arm_url),
    ):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(key, f"got {url[:60]!r}; expected an http:// or https:// URL")
    if not config.azure.login_url.startswith("https://"):
        raise ConfigError("azure.login_url", "MSAL accepts only an https:// authority")
    if config.azure.management_auth == "federated" and not config.issuer.url:
        raise ConfigError(
            "azure.management_auth",
            "'federated' signs the daemon's assertions with the issuer: set issuer.url"
            " (and see `azsidecar management init --federated`)",
        )
    if config.vault.auth == "approle" and not config.vault.role_id:
        raise ConfigError("vault.role_id", "required when vault.auth = 'approle'")
    if config.vault.auth == "jwt" and not (config.vault.jwt_role and config.vault.jwt_file):
        raise ConfigError(
            "vault.jwt_role", "vault.jwt_role and vault.jwt_file are required for JWT auth"
        )
    for key, positive in (
        ("daemon.concurrency", config.daemon.concurrency),
        ("azure.max_retries", config.azure.max_retries + 1),
        ("clock.factor", config.clock.factor),
        ("vault.timeout", config.vault.timeout),
    ):
        if positive <= 0:
            raise ConfigError(key, "must be greater than zero")
    if config.daemon.resolver_cache_ttl >= config.timing.ready_safety_margin:
        raise ConfigError(
            "daemon.resolver_cache_ttl",
            f"must be shorter than timing.ready_safety_margin ({config.timing.ready_safety_margin})"
            ", or a cached index could outlive a secret; a few seconds is plenty",
        )
    if config.daemon.resolver_oidc_addr and not config.daemon.tls_cert:
        raise ConfigError(
            "daemon.resolver_oidc_addr",
            "the ID-token endpoint is served over HTTPS only: set daemon.tls_cert and tls_key",
        )
    if bool(config.daemon.tls_cert) != bool(config.daemon.tls_key):
        raise ConfigError(
            "daemon.tls_cert", "set both daemon.tls_cert and daemon.tls_key, or neither"
        )
    for key, value in (
        ("vault.kv_mount", config.vault.kv_mount),
        ("vault.prefix", config.vault.prefix),
    ):
        if not value.strip("/") or ".." in value or any(c.isspace() for c in value):
            raise ConfigError(key, f"got {value[:40]!r}; expected a path without spaces or '..'")
