"""The issuer's documents as static files, for operators who host them on a public site.

Entra ID fetches ``<issuer>/.well-known/openid-configuration`` and the JWKS it
names over public HTTPS; an issuer behind a firewall can still be trusted by
copying these files to a public static site at the issuer URL (an Azure
Storage static website, a bucket behind a CDN, GitHub Pages). The files
are written atomically (temporary file, ``os.replace``), so a sync job that
uploads the directory never sees half a document.

A static copy is published when it is uploaded, not when Transit created the
key version (see :mod:`sidecar.issuer.signing`): re-export on a schedule, and
set ``publish_ahead`` to Entra's cache time plus that interval.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.errors import InputError
from sidecar.issuer import documents
from sidecar.issuer.planner import KeyPlan
from sidecar.issuer.signing import Issuer


@dataclass(frozen=True)
class Exported:
    """What was written (``kids`` in the JWKS's order), and what the planner said then."""

    discovery: Path
    jwks: Path
    plan: KeyPlan
    kids: tuple[str, ...]


def jwks_path(identity: documents.IssuerIdentity) -> str:
    """Where the JWKS goes below the site root: the ``jwks_uri``'s path below the issuer."""
    relative = identity.relative_path(identity.jwks_uri)
    if relative is None:
        raise InputError(
            f"jwks_uri {identity.jwks_uri[:80]!r} is not below the issuer URL "
            f"{identity.url[:80]!r}: the export writes one site; leave --jwks-uri out "
            f"(default {documents.DEFAULT_JWKS_PATH}) or put it below the issuer"
        )
    return relative


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (public data: mode 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def export(issuer: Issuer, out: Path) -> Exported:
    """Write the discovery document and the JWKS under ``out``, as the site root."""
    relative = jwks_path(issuer.identity)
    key, key_plan = issuer.read()
    keys = issuer.published_keys(key, key_plan)
    discovery_file = out / documents.DISCOVERY_PATH
    jwks_file = out / relative
    jwks = documents.jwks(keys)
    write_json(jwks_file, jwks)
    write_json(discovery_file, issuer.discovery())
    return Exported(discovery_file, jwks_file, key_plan, tuple(k["kid"] for k in jwks["keys"]))
