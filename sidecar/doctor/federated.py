"""Doctor's check of a federated integration's ready credential: Graph lists it as
stored, and the issuer's signing key is readable through Transit.

A federated credential holds nothing to sign in with by itself: a run's token
is signed at read time by the issuer's Transit key, so the two things that
can break are the credential on the application (removed or edited outside
us) and the key (Transit unmounted, the key missing, the token not allowed to
read it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sidecar.doctor.check import Check
from sidecar.errors import SidecarError
from sidecar.graph import FederatedCredential
from sidecar.issuer.signing import Issuer
from sidecar.model import FederatedVersion, IntegrationRecord


@dataclass(frozen=True)
class FederatedContext:
    """What the federated checks read through: Graph's listing (None when Graph is
    not usable) and the configured issuer (None when ``[issuer] url`` is unset)."""

    list_credentials: Callable[[str], list[FederatedCredential]] | None
    issuer: Issuer | None


def federated(
    record: IntegrationRecord,
    version: FederatedVersion,
    context: FederatedContext | None,
    now: datetime,
) -> list[Check]:
    """The credential on the application as stored, and the issuer's key through Transit."""
    if context is None:
        return []
    return [_listed(record, version, context), _issuer_key(record, version, context, now)]


def _listed(
    record: IntegrationRecord, version: FederatedVersion, context: FederatedContext
) -> Check:
    name = record.name
    if context.list_credentials is None:
        return Check(
            "warn",
            f"integration {name}: federated credential {version.name} not checked: Graph is"
            " not usable (see the management checks above)",
        )
    try:
        listed = context.list_credentials(record.app_object_id)
    except SidecarError as exc:
        return Check("warn", f"integration {name}: cannot list its federated credentials ({exc})")
    found = next((f for f in listed if f.key_id == version.key_id), None)
    if found is None:
        return Check(
            "fail",
            f"integration {name}: federated credential {version.name} ({version.key_id}) is not"
            " on the application",
            "removed outside azsidecar? the daemon replaces it once missing_grace has passed;"
            " see its logs",
        )
    stored = (version.name, version.issuer, version.subject, version.audience)
    if (found.name, found.issuer, found.subject, found.audience) != stored:
        return Check(
            "fail",
            f"integration {name}: federated credential {version.name} on the application"
            " trusts another issuer, subject or audience than stored",
            "edited outside azsidecar: remove it in the portal and the daemon makes a new one",
        )
    return Check(
        "ok",
        f"integration {name}: federated credential {version.name} is on the application,"
        f" trusting {version.issuer} for {version.audience}",
    )


def _issuer_key(
    record: IntegrationRecord,
    version: FederatedVersion,
    context: FederatedContext,
    now: datetime,
) -> Check:
    name = record.name
    issuer = context.issuer
    if issuer is None:
        return Check(
            "fail",
            f"integration {name}: federated, but no [issuer] url is configured",
            "set [issuer] url to the issuer's public https:// URL, or"
            f" `azsidecar integration set-kind {name} secret`",
        )
    if issuer.identity.url != version.issuer:
        return Check(
            "warn",
            f"integration {name}: its federated credential trusts {version.issuer}, the"
            f" configured issuer is {issuer.identity.url}",
            "the daemon makes one trusting the configured issuer and then removes the old one",
        )
    try:
        key, key_plan = issuer.read(now)
    except SidecarError as exc:
        return Check(
            "fail",
            f"integration {name}: the issuer's key cannot be read through Transit ({exc})",
            "`azsidecar issuer init` creates it; the daemon's Vault policy must allow"
            " reading and signing with it",
        )
    if key_plan.signer is None:
        when = f"; one will at {key_plan.ready_at:%Y-%m-%d %H:%M} UTC" if key_plan.ready_at else ""
        return Check(
            "warn",
            f"integration {name}: no version of issuer key {key.name} has been published long"
            f" enough to sign tokens yet{when}",
        )
    return Check(
        "ok",
        f"integration {name}: issuer key {key.name} readable through Transit, version"
        f" {key_plan.signer} signs",
    )
