"""Doctor's integration check for a certificate integration: it signs in with the certificate."""

from __future__ import annotations

from datetime import timedelta

from sidecar.doctor.integrations import integration
from sidecar.graph import (
    CertificateCredential,
    make_session,
    sign_in_with_certificate,
    sign_in_with_secret,
)
from sidecar.model import CredentialKind
from tests.test_certificate_e2e import create_integrations
from tests.world import World


def test_doctor_signs_in_with_the_ready_certificate(world: World) -> None:
    [(name, _)] = create_integrations(world, count=1, tenants=1, kind=CredentialKind.CERTIFICATE)
    azure = world.config.azure
    session = make_session(azure.ca_bundle)

    def signer(tenant: str, client_id: str, secret: str) -> tuple[int, list[int], str]:
        return sign_in_with_secret(session, azure.login_url, tenant, client_id, secret)

    def certificate_signer(
        tenant: str, client_id: str, certificate: CertificateCredential
    ) -> tuple[int, list[int], str]:
        return sign_in_with_certificate(session, azure.login_url, tenant, client_id, certificate)

    now = world.time.now()
    checks = integration(world.store, name, now, world.config, signer, certificate_signer)
    assert [c.status for c in checks] == ["ok", "ok"], checks
    assert "ready certificate v1" in checks[0].line
    assert "consent granted" in checks[1].line
    # Near its expiry, with the renewal overdue, the certificate's own window is used.
    [stored] = world.store.credentials(name)
    late = stored.expires - timedelta(minutes=50)
    world.time.advance(late - now)
    checks = integration(world.store, name, late, world.config, signer, certificate_signer)
    assert checks[0].status == "warn" and "overdue" in checks[0].line
