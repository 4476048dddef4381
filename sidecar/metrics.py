"""Prometheus metrics of the daemon, in a registry of its own.

Labels carry integration names and Graph operation names only: never a secret,
a key id or a token.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

ROTATIONS = Counter(
    "azsidecar_rotations_total",
    "Client secrets created, by integration.",
    ["integration"],
    registry=REGISTRY,
)
ROTATION_FAILURES = Counter(
    "azsidecar_rotation_failures_total",
    "Integration ticks that failed, by integration and error type.",
    ["integration", "error"],
    registry=REGISTRY,
)
REMOVALS = Counter(
    "azsidecar_secret_removals_total",
    "Client secrets removed from Azure, by reason (expired, orphan).",
    ["reason"],
    registry=REGISTRY,
)
READY_REMAINING = Gauge(
    "azsidecar_ready_secret_remaining_seconds",
    "Seconds until the ready secret leaves its safe window (negative: none ready).",
    ["integration"],
    registry=REGISTRY,
)
GRAPH_CALLS = Counter(
    "azsidecar_graph_requests_total",
    "HTTP attempts to Microsoft Graph, by operation and status (0: no response).",
    ["operation", "status"],
    registry=REGISTRY,
)
GRAPH_LATENCY = Histogram(
    "azsidecar_graph_request_seconds",
    "Latency of Graph HTTP attempts.",
    ["operation"],
    registry=REGISTRY,
)
GRAPH_THROTTLES = Counter(
    "azsidecar_graph_throttled_total",
    "Graph answers of 429 Too Many Requests, by operation.",
    ["operation"],
    registry=REGISTRY,
)
LAST_TICK = Gauge(
    "azsidecar_last_successful_tick_timestamp_seconds",
    "Time (the daemon's clock) of the last tick that completed for every integration.",
    registry=REGISTRY,
)
IS_LEADER = Gauge(
    "azsidecar_leader",
    "1 while this daemon holds the leader lease.",
    registry=REGISTRY,
)
VAULT_ERRORS = Counter(
    "azsidecar_vault_errors_total",
    "Ticks or lease renewals that failed because Vault was unavailable.",
    registry=REGISTRY,
)

CERT_REMAINING = Gauge(
    "azsidecar_management_certificate_remaining_seconds",
    "Seconds until the active management certificate expires.",
    registry=REGISTRY,
)
CERT_STUCK = Gauge(
    "azsidecar_management_certificate_stuck",
    "1 when no valid management certificate is left and an operator must upload one.",
    registry=REGISTRY,
)
CERT_RENEWALS = Counter(
    "azsidecar_management_certificate_renewals_total",
    "Management certificates uploaded by the daemon.",
    registry=REGISTRY,
)

# Verified readiness (sidecar.probes): sign-ins made with new secrets, and the lag they measured.
_LAG_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, float("inf"))
PROBE_SIGN_INS = Counter(
    "azsidecar_probe_sign_ins_total",
    "Sign-ins made with new secrets to verify them, by result (ok, refused, inconclusive).",
    ["result"],
    registry=REGISTRY,
)
PROBE_LATE_FAILURES = Counter(
    "azsidecar_probe_late_failures_total",
    "Probe sign-ins refused after the secret's propagation delay had passed.",
    registry=REGISTRY,
)
PROBE_FAILING = Gauge(
    "azsidecar_probe_failing_credentials",
    "Secrets past their propagation delay whose latest probe was refused.",
    registry=REGISTRY,
)
LAG_FIRST_SUCCESS = Histogram(
    "azsidecar_lag_first_success_seconds",
    "From a secret's creation to its first successful probe sign-in.",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
LAG_LAST_FAILURE = Histogram(
    "azsidecar_lag_last_failure_seconds",
    "From a secret's creation to its last refused probe sign-in (0 if none was refused).",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)


class GraphMetrics:
    """Feeds the Graph client's per-attempt events into the metrics above."""

    def graph_call(self, operation: str, status: int, seconds: float) -> None:
        GRAPH_CALLS.labels(operation, str(status)).inc()
        GRAPH_LATENCY.labels(operation).observe(seconds)

    def graph_throttled(self, operation: str) -> None:
        GRAPH_THROTTLES.labels(operation).inc()


VAULT_TOKEN_REMAINING = Gauge(
    "azsidecar_vault_token_remaining_seconds",
    "Seconds until this process's Vault token expires (+Inf: it never does).",
    registry=REGISTRY,
)
VAULT_TOKEN_EVENTS = Counter(
    "azsidecar_vault_token_events_total",
    "The Vault login's life cycle: renewed, login, token_reloaded, renew_failed, login_failed.",
    ["event"],
    registry=REGISTRY,
)
VAULT_TOKEN_PROBLEM = Gauge(
    "azsidecar_vault_token_problem",
    "1 while the Vault token will expire unrenewed or a renewal or login failed.",
    registry=REGISTRY,
)


class VaultTokenMetrics:
    """Feeds the Vault login's events into the metrics above."""

    def vault_token_event(self, event: str) -> None:
        VAULT_TOKEN_EVENTS.labels(event).inc()


RESOLVER_CERT_REMAINING = Gauge(
    "azsidecar_resolver_certificate_remaining_seconds",
    "Seconds until the TLS certificate the resolver serves expires (reloaded from its files).",
    registry=REGISTRY,
)

# The OIDC issuer (sidecar.issuer): set by the leader after each key maintenance.
ISSUER_PUBLISHED_KEYS = Gauge(
    "azsidecar_issuer_published_keys",
    "Signing-key versions published in the issuer's JWKS (leader, after its last maintenance).",
    registry=REGISTRY,
)
ISSUER_SIGNING_VERSION = Gauge(
    "azsidecar_issuer_signing_version",
    "The Transit key version that signs tokens now (0: none published long enough yet).",
    registry=REGISTRY,
)
ISSUER_ROTATION_REMAINING = Gauge(
    "azsidecar_issuer_next_rotation_seconds",
    "Seconds until the next signing-key rotation is due (negative: overdue).",
    registry=REGISTRY,
)
ISSUER_MAINTENANCE_FAILURES = Counter(
    "azsidecar_issuer_maintenance_failures_total",
    "Issuer key maintenances (create, rotate, retire) that failed, by error type.",
    ["error"],
    registry=REGISTRY,
)
ISSUER_JWKS_READ_FAILURES = Counter(
    "azsidecar_issuer_jwks_read_failures_total",
    "Reads of the signing key for the served JWKS that failed (a cached copy may be served).",
    registry=REGISTRY,
)
