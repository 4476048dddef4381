"""How creds/<stack>/<phase> shapes a credential and a "not ready yet" answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sidecar.answers import ClientCertificate, ResolvedCredential
from sidecar.errors import NotReadyError
from sidecar.model import CredentialKind, Phase
from sidecar.plugin import path_creds
from sidecar.sensitive import Sensitive

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def credential(safe_until: datetime = NOW + timedelta(hours=22, minutes=30)) -> ResolvedCredential:
    return ResolvedCredential(
        client_id="app",
        client_secret=Sensitive("s3cret"),
        tenant_id="tenant",
        subscription_id="sub",
        integration="I2",
        key_id="key",
        created=NOW - timedelta(hours=1),
        expires=NOW + timedelta(hours=23),
        safe_until=safe_until,
    )


def test_lease_ends_when_the_safe_window_does() -> None:
    cred = credential()
    response = path_creds._response(cred, "A", Phase("apply"), NOW)
    assert response.lease is not None
    assert response.lease.ttl == timedelta(hours=22, minutes=30)
    assert response.lease.renewable is False
    assert "s3cret" not in str(response.lease.internal)
    assert response.data["expires_at"] == "2026-01-03T02:04:05Z"
    assert response.data["client_secret"] == "s3cret"


def test_lease_is_never_zero() -> None:
    cred = credential(safe_until=NOW)
    response = path_creds._response(cred, "A", Phase("plan"), NOW)
    assert response.lease is not None
    assert response.lease.ttl == timedelta(seconds=1)


def test_not_ready_names_the_retry_time_and_seconds() -> None:
    exc = NotReadyError(
        "newest secret is still propagating", NOW + timedelta(minutes=9, seconds=30)
    )
    response = path_creds._not_ready(exc, "A", Phase("plan"), NOW)
    message = (
        "no ready credential yet for stack A phase plan:"
        " retry after 2026-01-02T03:13:35Z (in 570 s)"
    )
    assert response.data == {
        "error": message,
        "data": {
            "status": "not_ready",
            "message": message,
            "ready_at": "2026-01-02T03:13:35Z",
            "retry_after_seconds": 570,
            "reason": "newest secret is still propagating",
        },
    }


def test_never_ready_says_so() -> None:
    exc = NotReadyError("newest secret is still propagating", None)
    response = path_creds._not_ready(exc, "A", Phase("plan"), NOW)
    assert "retry" not in response.data["error"]
    assert "newest secret is still propagating" in response.data["error"]
    assert response.data["data"]["status"] == "not_ready"
    assert "ready_at" not in response.data["data"]
    assert "retry_after_seconds" not in response.data["data"]


def test_a_certificate_answer_has_the_bundle_instead_of_a_secret_and_none_in_the_lease() -> None:
    certificate = ClientCertificate(Sensitive("QUJDRA=="), Sensitive("pfx-pass"), "AB" * 20)
    cred = replace(
        credential(),
        client_secret=Sensitive(""),
        kind=CredentialKind.CERTIFICATE,
        certificate=certificate,
    )
    response = path_creds._response(cred, "A", Phase("apply"), NOW)
    assert "client_secret" not in response.data
    assert response.data["kind"] == "certificate"
    assert response.data["client_certificate"] == "QUJDRA=="
    assert response.data["client_certificate_password"] == "pfx-pass"
    assert response.data["thumbprint"] == "AB" * 20
    assert response.lease is not None
    assert "QUJDRA==" not in str(response.lease.internal)
    assert "pfx-pass" not in str(response.lease.internal)
    assert "pfx-pass" not in repr(cred)


def test_a_secret_answer_has_the_fields_it_always_had_and_its_kind() -> None:
    response = path_creds._response(credential(), "A", Phase("apply"), NOW)
    assert list(response.data) == [
        "client_id",
        "client_secret",
        "tenant_id",
        "subscription_id",
        "integration",
        "key_id",
        "created_at",
        "expires_at",
        "safe_until",
        "kind",
    ]
    assert response.data["kind"] == "secret"
