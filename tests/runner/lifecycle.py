"""Real-time Vault logins for the lifecycle tests: short-lived roles and rotating files.

Every login here lives a few real seconds. :class:`Credentials` makes the
AppRole and JWT roles (``token_ttl`` / ``token_max_ttl`` as given) or plain
renewable tokens, and keeps each part's credential *file* fresh in a thread,
as Vault Agent's sink or Kubernetes' projected token would: a new token every
``token_every`` seconds, a new AppRole secret id (which itself expires) or a
newly signed JWT (which itself expires) every ``file_every`` seconds. A part that
kept using what it read first would fail as soon as that expired.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from tests.runner.conftest import AUDIENCE, RunnerWorld, write_file


@dataclass
class LoginFiles:
    """One part's login: the method, its settings and the file the writer refreshes."""

    method: str
    policy: str
    path: Path
    role: str = ""
    role_id: str = ""

    def vault_toml(self, jwt_mount: str = "jwt") -> list[str]:
        if self.method == "token":
            return ['auth = "token"', f'token_file = "{self.path}"']
        if self.method == "approle":
            return [
                'auth = "approle"',
                f'role_id = "{self.role_id}"',
                f'secret_id_file = "{self.path}"',
            ]
        return [
            'auth = "jwt"',
            f'jwt_mount = "{jwt_mount}"',
            f'jwt_role = "{self.role}"',
            f'jwt_file = "{self.path}"',
        ]

    def plugin_config(self) -> dict[str, str]:
        if self.method == "token":
            return {"token_file": str(self.path)}
        if self.method == "approle":
            return {"approle_role_id": self.role_id, "approle_secret_id_file": str(self.path)}
        return {"jwt_role": self.role, "jwt_file": str(self.path)}


@dataclass
class Credentials:
    world: RunnerWorld
    tmp: Path
    method: str
    ttl: int
    max_ttl: int
    secret_id_ttl: int = 0  # 0: the AppRole secret ids never expire
    jwt_ttl: int = 60
    file_every: float = 0.0  # 0: the files are written once
    parts: dict[str, LoginFiles] = field(default_factory=dict)
    rewrites: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        root = self.world.root
        methods = root.sys.list_auth_methods()  # type: ignore[no-untyped-call]
        methods = methods.get("data", methods)
        if self.method == "approle" and "approle/" not in methods:
            root.sys.enable_auth_method("approle")

    def add(self, part: str, policy: str) -> LoginFiles:
        """A login for ``part`` with the shipped ``azsidecar-<policy>`` policy."""
        root = self.world.root
        name = f"lc-{part}-{self.tag}"
        files = LoginFiles(self.method, f"azsidecar-{policy}", self.tmp / f"{part}.{self.method}")
        common: dict[str, Any] = {
            "token_policies": [files.policy],
            "token_ttl": f"{self.ttl}s",
            "token_max_ttl": f"{self.max_ttl}s",
        }
        if self.method == "approle":
            root.auth.approle.create_or_update_approle(
                name, secret_id_ttl=f"{self.secret_id_ttl}s", **common
            )
            files.role = name
            files.role_id = root.auth.approle.read_role_id(name)["data"]["role_id"]
        elif self.method == "jwt":
            root.adapter.post(
                f"/v1/auth/jwt/role/{name}",
                json={
                    "role_type": "jwt",
                    "bound_audiences": [AUDIENCE],
                    "user_claim": "sub",
                    # No leeway: a JWT past its exp is refused, so a stale file shows.
                    "expiration_leeway": -1,
                    "clock_skew_leeway": -1,
                    **common,
                },
            )
            files.role = name
        self.parts[part] = files
        self._write(files)
        return files

    def _write(self, files: LoginFiles) -> None:
        root = self.world.root
        if self.method == "token":
            created = root.auth.token.create(
                policies=[files.policy],
                ttl=f"{self.ttl}s",
                explicit_max_ttl=f"{self.max_ttl}s",
                renewable=True,
            )
            text = created["auth"]["client_token"]
        elif self.method == "approle":
            text = root.auth.approle.generate_secret_id(files.role)["data"]["secret_id"]
        else:
            now = datetime.now(UTC)
            text = jwt.encode(
                {
                    "iss": "https://ci.example",
                    "sub": f"lifecycle:{files.role}",
                    "aud": AUDIENCE,
                    "iat": now,
                    "nbf": now - timedelta(seconds=2),
                    "exp": now + timedelta(seconds=self.jwt_ttl),
                },
                self.world.bao.key,
                algorithm="RS256",
            )
        # Written beside and renamed, as an agent's sink or the kubelet does.
        temp = files.path.with_suffix(".new")
        write_file(temp, text)
        temp.replace(files.path)

    def start(self) -> Credentials:
        if self.file_every > 0:
            self._thread = threading.Thread(target=self._rotate, daemon=True)
            self._thread.start()
        return self

    def rewrite_all(self) -> None:
        for files in list(self.parts.values()):
            self._write(files)
        self.rewrites += 1

    def _rotate(self) -> None:
        while not self._stop.wait(self.file_every):
            self.rewrite_all()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
