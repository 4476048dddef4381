"""Doctor's check of one integration: its ready secret, and consent, seen by signing in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sidecar.config import Config
from sidecar.doctor.check import Check, days
from sidecar.doctor.federated import FederatedContext, federated
from sidecar.errors import GraphError, SidecarError
from sidecar.graph import CertificateCredential
from sidecar.keypairs import load_bundle
from sidecar.model import CertificateVersion, CredentialKind, FederatedVersion
from sidecar.ready import NotReady, choose_for_kind
from sidecar.store import Store

#: A sign-in with a certificate credential: (HTTP status, AADSTS codes, description).
CertificateSigner = Callable[[str, str, CertificateCredential], tuple[int, list[int], str]]


def integration(
    store: Store,
    name: str,
    now: datetime,
    config: Config,
    signer: Callable[[str, str, str], tuple[int, list[int], str]],
    certificate_signer: CertificateSigner | None = None,
    federated_context: FederatedContext | None = None,
) -> list[Check]:
    """Consent (observed by signing in with the ready secret) and the ready secret's timing.

    A ready federated credential is checked by :func:`sidecar.doctor.federated.federated`
    instead of a sign-in (its token needs the issuer's published key).
    """
    try:
        record, _ = store.integration(name)
    except SidecarError as exc:
        return [Check("fail", f"integration {name}: cannot read it: {exc}")]
    if record.status != "ready":
        return [
            Check(
                "fail",
                f"integration {name}: half-created ({record.status})",
                f"azsidecar integration create --name {name} --tenant {record.tenant_id} again"
                " finishes it; azsidecar integration delete removes it",
            )
        ]
    stacks = store.stacks_using(name)
    used = f" (used by {', '.join(sorted(stacks))})" if stacks else " (no stack uses it)"
    stored = store.credentials(name, repair=False)
    choice = choose_for_kind(stored, record.kind, now, config.timing, store.probes(name))
    if isinstance(choice, NotReady):
        when = f"; ready at {choice.ready_at:%Y-%m-%d %H:%M} UTC" if choice.ready_at else ""
        fresh = choice.ready_at is not None and choice.ready_at - now <= (
            config.timing.propagation_delay
        )
        return [
            Check(
                "warn" if fresh else "fail",
                f"integration {name}{used}: no ready secret: {choice.reason}{when}",
                ""
                if fresh
                else "is the daemon running? `azsidecar integration show "
                f"{name}` lists its secrets",
            )
        ]
    credential = choice.credential
    age = now - credential.created
    if credential.kind is CredentialKind.FEDERATED:
        found = store.credential_version(name, credential.version)
        line = (
            f"integration {name}{used}: ready federated credential v{credential.version}"
            f" is {days(age)} old (it never expires)"
        )
        if not isinstance(found, FederatedVersion):
            return [Check("fail", f"integration {name}: v{credential.version} is not federated")]
        return [Check("ok", line), *federated(record, found, federated_context, now)]
    secret_line = (
        f"integration {name}{used}: ready {credential.kind.noun} v{credential.version}"
        f" is {days(age)} old,"
        f" expires in {days(credential.expires - now)}, handed out for"
        f" {days(choice.usable_until - now)} more"
    )
    newest = max(stored, key=lambda c: c.created)
    checks = [Check("ok", secret_line)]
    renew_before = (
        config.timing.client_certificate_renew_before
        if credential.kind is CredentialKind.CERTIFICATE
        else config.timing.secret_renew_before
    )
    if credential.expires - now < renew_before - config.timing.tick and (
        newest.version == credential.version
    ):
        checks = [
            Check(
                "warn",
                secret_line + "; its renewal is overdue",
                "is the daemon running and leader? see its /healthz and logs",
            )
        ]
    found = store.credential_version(name, credential.version)
    if isinstance(found, FederatedVersion):  # not the ready kind's: checked above
        return checks
    try:
        if isinstance(found, CertificateVersion):
            if certificate_signer is None:
                return checks
            pair = load_bundle(found.pfx, found.pfx_password)
            signing = CertificateCredential(pair.cert_pem, pair.key_pem, pair.thumbprint)
            status, codes, description = certificate_signer(
                record.tenant_id, record.client_id, signing
            )
        else:
            status, codes, description = signer(
                record.tenant_id, record.client_id, found.secret.reveal()
            )
    except GraphError as exc:
        checks.append(Check("warn", f"integration {name}: cannot reach the login endpoint ({exc})"))
        return checks
    if status == 200:
        checks.append(
            Check("ok", f"integration {name}: consent granted in tenant {record.tenant_id}")
        )
    elif 700016 in codes:
        checks.append(
            Check(
                "fail" if stacks else "warn",
                f"integration {name}: no consent in tenant {record.tenant_id} (AADSTS700016)",
                "ask the tenant's administrator to open the URL from"
                f" `azsidecar integration consent-url {name}`",
            )
        )
    else:
        checks.append(
            Check(
                "fail",
                f"integration {name}: the ready secret was refused: {description or status}",
                "see `azsidecar integration show` and the daemon's logs; a secret removed in"
                " the portal is replaced at the next tick",
            )
        )
    return checks
