"""Vault's Transit engine, for the issuer's signing key: the key never leaves Vault.

A narrow adapter beside :mod:`sidecar.vault` (which it borrows the error
translation from): create an ``rsa-2048`` key if missing, rotate it, read its
versions (creation time and public key each), sign with a chosen version, and
retire old versions. API of OpenBao's and Vault's Transit engine
(openbao.org/api-docs/secret/transit): ``POST keys/:name``, ``GET keys/:name``,
``POST keys/:name/rotate``, ``POST keys/:name/config``,
``POST sign/:name/sha2-256``.

What Transit does that matters here, checked against OpenBao:

* ``POST keys/:name`` on an existing key answers with the key unchanged,
  whatever ``type`` was asked: :meth:`Transit.ensure_key` checks the type.
* ``GET keys/:name`` lists the versions from ``min_decryption_version`` up,
  each with ``creation_time`` and a PEM ``public_key``; raising
  ``min_decryption_version`` is how old versions are retired (they vanish
  from the read, and signing with them fails).
* ``sign`` with ``signature_algorithm=pkcs1v15`` and ``hash_algorithm=sha2-256``
  is RS256 (RSASSA-PKCS1-v1_5 with SHA-256). ``marshaling_algorithm=jws``
  makes the signature base64url without padding, as a JWS carries it. The
  answer is ``vault:v<N>:<signature>``: the ``vault:v<N>:`` prefix is
  Transit's own framing (the key version that signed), not part of the JWS;
  it is stripped, and ``N`` must be the version asked for, the one the token's
  ``kid`` names.
* An unknown version is refused with HTTP 500 ("no such key version",
  "requested version ... higher than the latest"): translated here as a bad
  request, not as Vault being down.

Signatures and keys are never logged nor put in an error message.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hvac
import hvac.exceptions

from sidecar.errors import VaultError, VaultNotFound
from sidecar.vault import _parse_time, check_segment, translate_errors

KEY_TYPE = "rsa-2048"
SIGN_OPTIONS = {
    "hash_algorithm": "sha2-256",
    "signature_algorithm": "pkcs1v15",
    "marshaling_algorithm": "jws",
}
_SIGNATURE = re.compile(r"vault:v(\d+):([A-Za-z0-9_+/=-]+)")
_BAD_VERSION = ("no such key version", "higher than the latest key version")


@dataclass(frozen=True)
class TransitVersion:
    """One version of a Transit key: when Transit created it, its public key (PEM)."""

    version: int
    created: datetime
    public_key_pem: str


@dataclass(frozen=True)
class TransitKey:
    """A Transit key as ``GET keys/:name`` shows it (retired versions absent)."""

    name: str
    type: str
    latest_version: int
    min_decryption_version: int
    versions: dict[int, TransitVersion]


@dataclass(frozen=True)
class Signature:
    """A signature Transit made, and the key version that made it."""

    version: int
    value: bytes


class Transit:
    """The Transit engine mounted at ``mount``."""

    def __init__(self, client: hvac.Client, mount: str = "transit") -> None:
        self.client = client
        parts = mount.strip("/").split("/")
        self.mount = "/".join(check_segment(p, "Transit mount") for p in parts)

    def __repr__(self) -> str:
        return f"Transit(mount={self.mount!r})"

    @contextmanager
    def _call(self, path: str, key: str) -> Iterator[None]:
        """Errors that say what to fix: the mount missing, the key missing, a bad version."""
        full = f"{self.mount}/{path}"
        missing_key = (
            f"no Transit key {key!r} at {self.mount}/: create it with `azsidecar issuer init` "
            "or check the key name"
        )
        with translate_errors(full):
            try:
                yield
            except hvac.exceptions.InvalidPath as exc:
                if "no handler for route" in str(exc):
                    raise VaultNotFound(
                        f"Transit is not mounted at {self.mount}/: enable it with "
                        f"`bao secrets enable -path={self.mount} transit`",
                        path=full,
                        status=404,
                    ) from exc
                raise VaultNotFound(missing_key, path=full, status=404) from exc
            except hvac.exceptions.InternalServerError as exc:
                if any(text in str(exc) for text in _BAD_VERSION):
                    raise VaultError(
                        f"Transit key {key!r} has no such version (retired or not yet "
                        "created): re-read the key and pick a listed version",
                        path=full,
                        status=500,
                    ) from exc
                raise
            except hvac.exceptions.InvalidRequest as exc:
                if "key not found" in str(exc):
                    raise VaultNotFound(missing_key, path=full, status=400) from exc
                raise

    def read_key(self, name: str) -> TransitKey:
        """``GET <mount>/keys/<name>``; VaultNotFound if there is no such key."""
        check_segment(name, "Transit key name")
        with self._call(f"keys/{name}", name):
            body: Any = self.client.adapter.get(f"/v1/{self.mount}/keys/{name}")
        return _key(name, _data(body))

    def ensure_key(self, name: str) -> TransitKey:
        """``POST <mount>/keys/<name>`` with ``type=rsa-2048``: create if missing, then read.

        An existing key of another type is refused: Transit would keep it as it is.
        """
        check_segment(name, "Transit key name")
        with self._call(f"keys/{name}", name):
            body: Any = self.client.adapter.post(
                f"/v1/{self.mount}/keys/{name}", json={"type": KEY_TYPE}
            )
        key = _key(name, _data(body)) if _data(body).get("keys") else self.read_key(name)
        if key.type != KEY_TYPE:
            raise VaultError(
                f"Transit key {name!r} is of type {key.type!r}, not {KEY_TYPE}: "
                "choose another key name for the issuer",
                path=f"{self.mount}/keys/{name}",
            )
        return key

    def rotate(self, name: str) -> TransitKey:
        """``POST <mount>/keys/<name>/rotate``: a new latest version; returns the key after it."""
        check_segment(name, "Transit key name")
        with self._call(f"keys/{name}/rotate", name):
            body: Any = self.client.adapter.post(f"/v1/{self.mount}/keys/{name}/rotate", json={})
        data = _data(body)
        return _key(name, data) if data.get("keys") else self.read_key(name)

    def retire_below(self, name: str, version: int) -> None:
        """``POST <mount>/keys/<name>/config``: ``min_decryption_version = version``.

        Versions below ``version`` disappear from the key read and can no
        longer sign; they stay in Transit's storage (``trim`` would delete
        them, which needs nothing of this issuer). Only ever raised.
        """
        check_segment(name, "Transit key name")
        if version < 1:
            raise VaultError(f"cannot retire below version {version}", path=self.mount)
        with self._call(f"keys/{name}/config", name):
            self.client.adapter.post(
                f"/v1/{self.mount}/keys/{name}/config",
                json={"min_decryption_version": version},
            )

    def sign(self, name: str, version: int, data: bytes) -> Signature:
        """``POST <mount>/sign/<name>/sha2-256``: an RS256 signature of ``data`` by ``version``."""
        check_segment(name, "Transit key name")
        payload = {
            "input": base64.b64encode(data).decode("ascii"),
            "key_version": version,
            **SIGN_OPTIONS,
        }
        path = f"sign/{name}/{SIGN_OPTIONS['hash_algorithm']}"
        with self._call(path, name):
            body: Any = self.client.adapter.post(f"/v1/{self.mount}/{path}", json=payload)
        signature = _signature(str(_data(body).get("signature") or ""), f"{self.mount}/{path}")
        if signature.version != version:
            raise VaultError(
                f"Transit signed with version {signature.version}, not {version}: "
                "the token's kid would name the wrong key",
                path=f"{self.mount}/{path}",
            )
        return signature


def _data(body: Any) -> dict[str, Any]:
    """The ``data`` of an answer; empty for a 204 (Vault answers some writes with no body)."""
    if body is None or (not isinstance(body, dict) and not body.content):
        return {}
    answer = body if isinstance(body, dict) else body.json()
    data = answer.get("data") if isinstance(answer, dict) else None
    return dict(data) if isinstance(data, dict) else {}


def _key(name: str, data: dict[str, Any]) -> TransitKey:
    versions = {}
    for number, info in (data.get("keys") or {}).items():
        if not isinstance(info, dict):
            continue  # symmetric keys list bare timestamps; not ours
        created = _parse_time(info.get("creation_time"))
        pem = info.get("public_key")
        if created is None or not isinstance(pem, str) or not pem:
            raise VaultError(
                f"Transit key {name!r} version {number} lacks a creation time or public key",
                path=f"keys/{name}",
            )
        versions[int(number)] = TransitVersion(int(number), created, pem)
    return TransitKey(
        name=name,
        type=str(data.get("type") or ""),
        latest_version=int(data.get("latest_version") or 0),
        min_decryption_version=int(data.get("min_decryption_version") or 0),
        versions=versions,
    )


def _signature(text: str, path: str) -> Signature:
    """``vault:v<N>:<base64url>`` -> the version and the signature's bytes."""
    match = _SIGNATURE.fullmatch(text)
    if match is None:
        raise VaultError("Transit's answer holds no signature of the expected form", path=path)
    encoded = match.group(2)
    try:
        # jws marshaling gives base64url without padding; accept standard base64 too.
        alphabet = encoded.replace("+", "-").replace("/", "_").rstrip("=")
        value = base64.urlsafe_b64decode(alphabet + "=" * (-len(alphabet) % 4))
    except (binascii.Error, ValueError) as exc:
        raise VaultError("Transit's signature is not valid base64", path=path) from exc
    return Signature(int(match.group(1)), value)
