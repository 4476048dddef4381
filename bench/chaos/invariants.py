"""The invariant checker: what must hold, read from Vault (hvac) and Azure (admin API) directly.

Independent of the product's code on purpose: no ``sidecar`` rotation, ready
or store module is imported. The KV layout and the ready rule are re-derived
from DESIGN.md and the numbers in the configuration the harness wrote:

* a secret is *ready* from ``created + propagation_delay`` until
  ``expires - ready_safety_margin``, and only while Azure holds it;
* every live ``credentials/<name>`` version is a secret the product stores;
  ``state/intents/<name>`` holds rotations in flight; ``stacks/<stack>``
  names a read and a write integration; ``integrations/<name>`` the record.

Every check appends to :class:`Findings`; a violation is a message with the
emulated time and the seed-independent facts that broke the rule.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

#: The daemons' own log lines this checker reads (their JSON logs; see tests/test_daemon_replicas).
_CREATED = re.compile(r"created a client secret for (\S+) \(version (\d+)\)")
_REMOVED = re.compile(r"removed a client secret of (\S+) from Azure")
_LEASE = re.compile(r"^(acquired|lost) the leader lease$")
_PRIVATE_KEY = "PRIVATE KEY-----"


@dataclass(frozen=True)
class ReadyRule:
    """The documented ready rule with the configured numbers."""

    propagation_delay: timedelta
    ready_safety_margin: timedelta

    def ready(self, created: datetime, expires: datetime, at: datetime) -> bool:
        return created + self.propagation_delay <= at < expires - self.ready_safety_margin


@dataclass(frozen=True)
class StoredSecret:
    version: int
    key_id: str
    created: datetime
    expires: datetime


@dataclass
class Findings:
    """Thread-safe counts of checks and the violations found."""

    checks: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)  # samples in documented windows
    unobservable: int = 0  # samples Vault could not answer (its own outage)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, name: str, ok: bool, message: str) -> None:
        with self._lock:
            self.checks[name] += 1
            if not ok:
                self.violations.append(f"{name}: {message}")

    def excuse(self, message: str) -> None:
        with self._lock:
            self.excused.append(message)

    def blind(self) -> None:
        with self._lock:
            self.unobservable += 1


def _epoch(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value), tz=UTC)


class VaultView:
    """The product's data as stored, read with hvac (root token, through the load balancer)."""

    def __init__(self, addr: str, token: str, mount: str, prefix: str) -> None:
        self.client = hvac.Client(url=addr, token=token, timeout=5)
        self.mount = mount
        self.prefix = prefix
        self._versions: dict[tuple[str, int, str], StoredSecret] = {}
        self.secrets_seen: set[str] = set()  # every client secret read, for the hygiene sweep
        self._lock = threading.Lock()

    def _kv(self) -> Any:
        return self.client.secrets.kv.v2

    def names(self, folder: str) -> list[str]:
        try:
            found = self._kv().list_secrets(path=f"{self.prefix}/{folder}", mount_point=self.mount)
        except hvac.exceptions.InvalidPath:
            return []
        return [str(k) for k in found["data"]["keys"] if not str(k).endswith("/")]

    def read(self, path: str) -> dict[str, Any] | None:
        try:
            found = self._kv().read_secret_version(
                path=f"{self.prefix}/{path}", mount_point=self.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        return dict(found["data"]["data"])

    def integrations(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in self.names("integrations"):
            data = self.read(f"integrations/{name}")
            if data is not None:
                out[name] = data
        return out

    def stacks(self) -> dict[str, tuple[str, str]]:
        out = {}
        for name in self.names("stacks"):
            data = self.read(f"stacks/{name}")
            if data is not None:
                out[name] = (str(data.get("read") or ""), str(data.get("write") or ""))
        return out

    def intents(self, name: str) -> int:
        data = self.read(f"state/intents/{name}")
        return len((data or {}).get("intents", {}))

    def secrets(self, name: str) -> list[StoredSecret]:
        """Every live (neither deleted nor destroyed) version of ``credentials/<name>``."""
        path = f"{self.prefix}/credentials/{name}"
        try:
            meta = self._kv().read_secret_metadata(path=path, mount_point=self.mount)
        except hvac.exceptions.InvalidPath:
            return []
        out = []
        for number, info in meta["data"]["versions"].items():
            if info.get("destroyed") or info.get("deletion_time"):
                continue
            version = int(number)
            # A deleted and re-created integration numbers its versions from 1 again:
            # a version is known by its creation time too.
            key = (name, version, str(info.get("created_time", "")))
            with self._lock:
                cached = self._versions.get(key)
            if cached is None:
                data = self._kv().read_secret_version(
                    path=path,
                    version=version,
                    mount_point=self.mount,
                    raise_on_deleted_version=True,
                )["data"]["data"]
                cached = StoredSecret(
                    version, str(data["key_id"]), _epoch(data["created"]), _epoch(data["expires"])
                )
                with self._lock:
                    self._versions[key] = cached
                    self.secrets_seen.add(str(data["client_secret"]))
            out.append(cached)
        return out


class AzureView:
    """Applications as Azure holds them (authoritative), through the emulator's admin API."""

    def __init__(self, admin_url: str, ca_path: str) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.session = requests.Session()
        self.session.verify = ca_path
        self.session.trust_env = False  # no REQUESTS_CA_BUNDLE overriding the emulator's CA

    def application(self, ident: str) -> dict[str, Any] | None:
        response = self.session.get(f"{self.admin_url}/applications/{ident}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def applications(self) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.admin_url}/applications", timeout=10)
        response.raise_for_status()
        return list(response.json()["value"])

    def our_secrets(self, ident: str) -> dict[str, tuple[datetime, datetime]]:
        """keyId -> (start, end) of the product's secrets (``azsidecar:`` display names)."""
        app = self.application(ident)
        return {} if app is None else _ours(app)


@dataclass(frozen=True)
class Window:
    """A documented window in which a stack may lack a ready credential."""

    start: datetime
    end: datetime
    why: str


class Checker:
    def __init__(self, vault: VaultView, azure: AzureView, rule: ReadyRule) -> None:
        self.vault = vault
        self.azure = azure
        self.rule = rule
        self.findings = Findings()

    # -- a run was handed a credential ------------------------------------------------

    def handed(
        self, asked: datetime, got: datetime, integration: str, client_id: str, key_id: str
    ) -> None:
        """A run asked at ``asked`` and got ``key_id`` by ``got`` (emulated): Azure holds it,
        and it was ready at some instant in between (at thousands of times real speed a
        request of a real second spans emulated minutes)."""
        try:
            app = self.azure.application(client_id)
        except requests.RequestException:
            self.findings.blind()
            return
        if app is None:
            # The whole application is gone: the operator deleted the integration (the
            # harness detaches its stacks first) while this run was in flight.
            self.findings.excuse(f"{got:%F %T} {integration}: deleted while a run was in flight")
            return
        held = _ours(app)
        window = held.get(key_id)
        self.findings.check(
            "handed-held-by-azure",
            window is not None,
            f"{got:%F %T} {integration}: handed key {key_id[:8]} that Azure does not hold",
        )
        if window is not None:
            start, end = window
            ready = (
                start + self.rule.propagation_delay <= got
                and asked < end - self.rule.ready_safety_margin
            )
            self.findings.check(
                "handed-ready",
                ready,
                f"{asked:%F %T}..{got:%T} {integration}: handed key {key_id[:8]} created"
                f" {start:%F %T}, expiring {end:%F %T}: outside the ready rule",
            )

    def refused(
        self, at: datetime, integration: str, key_id: str, said: str, causes: list[str]
    ) -> None:
        """Azure refused a handed credential at sign-in (``said``: the AADSTS code or status).

        That is what the product promises never happens, unless an injected fault
        explains it (``causes``, worked out by the harness: the operator deleting the
        integration while the run was in flight, an error storm answering the sign-in
        itself, the secret expiring while the run was held up at thousands of times real
        speed): such a refusal is reported apart, any other one is a violation.
        """
        if causes:
            self.findings.excuse(f"{at:%F %T} {integration}: sign-in refused ({said}): {causes[0]}")
        self.findings.check(
            "refused-only-under-fault",
            bool(causes),
            f"{at:%F %T} {integration}: Azure refused handed key {key_id[:8]} ({said})"
            " with no fault standing that explains it",
        )

    # -- a periodic sample --------------------------------------------------------------

    def sample(self, at: datetime, windows: list[Window]) -> None:
        """Every attached stack has a ready credential now, unless a documented window excuses."""
        try:
            stacks = self.vault.stacks()
            records = self.vault.integrations()
            needed = {n for pair in stacks.values() for n in pair if n}
            stored = {n: self.vault.secrets(n) for n in needed if n in records}
        except (requests.RequestException, hvac.exceptions.VaultError):
            self.findings.blind()
            return
        for name in sorted(needed):
            record = records.get(name)
            self.findings.check(
                "attached-integration-exists",
                record is not None,
                f"{at:%F %T} a stack names {name}, which has no record",
            )
            if record is None:
                continue
            held = self.azure.our_secrets(str(record["client_id"]))
            ready = [
                s
                for s in stored.get(name, [])
                if s.key_id in held and self.rule.ready(*held[s.key_id], at)
            ]
            if ready:
                self.findings.check("stack-ready", True, "")
                continue
            created = _epoch(record["created"])
            excuse = [w for w in windows if w.start <= at <= w.end]
            if at < created + self.rule.propagation_delay + timedelta(hours=2):
                self.findings.excuse(f"{at:%F %T} {name}: brand-new integration")
            elif excuse:
                self.findings.excuse(f"{at:%F %T} {name}: {excuse[0].why}")
            else:
                versions = [(s.version, s.key_id[:8], s.key_id in held) for s in stored[name]]
                self.findings.check(
                    "stack-ready",
                    False,
                    f"{at:%F %T} {name} has no ready credential; live versions {versions}",
                )

    # -- quiescence -------------------------------------------------------------------

    def converged(self) -> list[str]:
        """What still differs between Azure and Vault (empty once they agree)."""
        problems = []
        for name, record in sorted(self.vault.integrations().items()):
            in_vault = {s.key_id for s in self.vault.secrets(name)}
            in_azure = set(self.azure.our_secrets(str(record["client_id"])))
            if in_vault != in_azure:
                problems.append(
                    f"{name}: Vault {sorted(k[:8] for k in in_vault)}"
                    f" != Azure {sorted(k[:8] for k in in_azure)}"
                )
            intents = self.vault.intents(name)
            if intents:
                problems.append(f"{name}: {intents} intent(s) remain")
            if not in_vault:
                problems.append(f"{name}: no credential stored")
        return problems

    def quiescent(
        self,
        expected_integrations: set[str],
        expected_stacks: dict[str, tuple[str, str]],
        foreign_apps: set[str],
    ) -> None:
        """After the schedule and a tick: Azure equals Vault, no intents, orphans or losses."""
        problems = self.converged()
        self.findings.check("azure-equals-vault", not problems, "; ".join(problems))
        records = self.vault.integrations()
        self.findings.check(
            "nothing-lost-integrations",
            set(records) == expected_integrations,
            f"integrations in Vault {sorted(records)}"
            f" != made and kept {sorted(expected_integrations)}",
        )
        stacks = self.vault.stacks()
        self.findings.check(
            "nothing-lost-stacks",
            stacks == expected_stacks,
            f"stacks in Vault {stacks} != attached {expected_stacks}",
        )
        known = {str(r["client_id"]) for r in records.values()} | foreign_apps
        orphans = [
            str(a["displayName"]) for a in self.azure.applications() if str(a["appId"]) not in known
        ]
        self.findings.check("no-orphan-applications", not orphans, f"orphans in Azure: {orphans}")

    # -- the lease ------------------------------------------------------------------------

    def one_writer(self, logs: dict[str, Path]) -> int:
        """No two daemons wrote to Graph in the same lease period (from their JSON logs).

        ``logs`` maps each daemon *process* (a restart is a new one) to its log. A
        write by a process must come while its last lease event says it holds the
        lease, and a write by another process after it must follow that other
        process's own (later) acquisition. Returns the number of writes seen.
        """
        events: list[tuple[float, str, str]] = []  # (real time, process, "acquired"/"lost"/"write")
        for process, path in logs.items():
            for when, message in _log_lines(path):
                if _CREATED.search(message) or _REMOVED.search(message):
                    events.append((when, process, "write"))
                elif match := _LEASE.match(message):
                    events.append((when, process, match.group(1)))
        events.sort()
        holding: dict[str, float | None] = {}  # process -> when it acquired (None: not held)
        last_write: tuple[float, str] | None = None
        writes = 0
        for when, process, what in events:
            if what == "acquired":
                holding[process] = when
            elif what == "lost":
                holding[process] = None
            else:
                writes += 1
                since = holding.get(process)
                self.findings.check(
                    "write-under-lease",
                    since is not None,
                    f"{process} wrote to Graph at {when:.3f} without holding the lease",
                )
                if last_write is not None and last_write[1] != process and since is not None:
                    self.findings.check(
                        "one-writer-per-lease",
                        since > last_write[0],
                        f"{process} (lease since {since:.3f}) wrote at {when:.3f} in the lease"
                        f" period of {last_write[1]}, which wrote at {last_write[0]:.3f}",
                    )
                last_write = (when, process)
        return writes

    # -- secret hygiene -------------------------------------------------------------------

    def hygiene(self, texts: dict[str, str]) -> None:
        """No stored client secret and no private key in any log, metric or argument."""
        secrets = set(self.vault.secrets_seen)
        for where, text in texts.items():
            leaked = [s[:3] + "..." for s in secrets if s and s in text]
            self.findings.check(
                "no-secret-in-output", not leaked, f"{where} holds client secret(s) {leaked}"
            )
            self.findings.check(
                "no-private-key-in-output",
                _PRIVATE_KEY not in text,
                f"{where} holds a PEM private key",
            )


def held_by(app: dict[str, Any]) -> dict[str, tuple[datetime, datetime]]:
    """keyId -> (start, end) of the product's secrets on ``app`` (an admin API answer)."""
    return _ours(app)


def _ours(app: dict[str, Any]) -> dict[str, tuple[datetime, datetime]]:
    """keyId -> (start, end) of the product's secrets on ``app``."""
    return {
        str(p["keyId"]): (_epoch(p["start"]), _epoch(p["end"]))
        for p in app.get("passwordCredentials", [])
        if str(p.get("displayName", "")).startswith("azsidecar:")
    }


def _log_lines(path: Path) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "time" in entry:
            when = datetime.fromisoformat(str(entry["time"])).timestamp()
            out.append((when, str(entry.get("message", ""))))
    return out
