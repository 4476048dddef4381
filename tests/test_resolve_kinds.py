"""The read path by credential kind (issue 19): certificates, switches of kind, tampered versions.

Real OpenBao; the clock is the ``now`` each call is given.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from sidecar.answers import ClientCertificate, ResolvedCredential
from sidecar.errors import InvalidRecord, NotReadyError
from sidecar.model import CredentialKind, Phase
from sidecar.resolve import ReadCache, resolve_credential
from sidecar.resolver.rpc import from_message, to_message
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, StackRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV
from tests.ids import guid
from tests.pfx import make_certificate
from tests.records import secret, web_record

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = TimingPolicy()  # propagation_delay: 10 minutes


def record(kind: CredentialKind) -> IntegrationRecord:
    return web_record(NOW - timedelta(days=2), kind)


def store_with(kv: VaultKV, kind: CredentialKind) -> Store:
    store = Store(kv)
    store.save_integration(record(kind), cas=0)
    store.save_stack(StackRecord(name="A", read="web", write="web"), cas=0)
    return store


def resolve(kv: VaultKV, now: datetime = NOW) -> ResolvedCredential:
    return resolve_credential(kv, "A", Phase.APPLY, now, POLICY, ReadCache(0, 0))


def test_a_ready_certificate_is_handed_out_with_its_bundle_and_password(kv: VaultKV) -> None:
    store = store_with(kv, CredentialKind.CERTIFICATE)
    made = make_certificate(
        client_id=guid("app"), tenant_id=guid("tenant"), created=NOW - timedelta(hours=1)
    )
    store.store_secret("web", made.version)
    got = resolve(kv)
    assert got.kind is CredentialKind.CERTIFICATE
    assert got.certificate is not None and not got.client_secret
    assert got.certificate.bundle == made.version.pfx
    assert got.certificate.password == made.version.pfx_password
    assert got.certificate.thumbprint == made.version.thumbprint
    assert got.key_id == made.version.key_id and got.subscription_id == guid("sub")
    # The bundle opens with the password: it is what the daemon stored, byte for byte.
    key, cert, _ = pkcs12.load_key_and_certificates(
        base64.b64decode(got.certificate.bundle.reveal()),
        got.certificate.password.reveal().encode(),
    )
    assert key is not None and cert is not None
    shown = repr(got) + repr(got.certificate) + str(got)
    assert made.version.pfx.reveal()[:40] not in shown
    assert made.version.pfx_password.reveal() not in shown


def test_a_switch_to_certificates_keeps_the_secret_until_the_certificate_is_ready(
    kv: VaultKV,
) -> None:
    store = store_with(kv, CredentialKind.SECRET)
    store.store_secret("web", secret("old-secret", NOW - timedelta(hours=2)))
    assert resolve(kv).client_secret.reveal() == "old-secret"
    # The operator switches the kind; the daemon uploads a certificate, which propagates.
    found, version = store.integration("web")
    store.save_integration(replace(found, kind=CredentialKind.CERTIFICATE), cas=version)
    made = make_certificate(client_id=guid("app"), tenant_id=guid("tenant"), created=NOW)
    store.store_secret("web", made.version)
    during = resolve(kv, NOW + timedelta(minutes=9))
    assert during.kind is CredentialKind.SECRET
    assert during.client_secret.reveal() == "old-secret" and during.certificate is None
    after = resolve(kv, NOW + timedelta(minutes=10, seconds=1))
    assert after.kind is CredentialKind.CERTIFICATE
    assert after.certificate is not None and after.certificate.bundle == made.version.pfx
    # And back: the old secret is still ready, so it is handed out at once, until the
    # newer one is ready too.
    found, version = store.integration("web")
    store.save_integration(replace(found, kind=CredentialKind.SECRET), cas=version)
    store.store_secret("web", secret("new-secret", NOW + timedelta(minutes=20)))
    assert resolve(kv, NOW + timedelta(minutes=25)).client_secret.reveal() == "old-secret"
    back = resolve(kv, NOW + timedelta(minutes=31))
    assert back.kind is CredentialKind.SECRET and back.client_secret.reveal() == "new-secret"


def test_a_certificate_still_propagating_with_nothing_else_says_so(kv: VaultKV) -> None:
    store = store_with(kv, CredentialKind.CERTIFICATE)
    made = make_certificate(client_id=guid("app"), tenant_id=guid("tenant"), created=NOW)
    store.store_secret("web", made.version)
    with pytest.raises(NotReadyError, match="newest certificate is still propagating") as info:
        resolve(kv, NOW + timedelta(minutes=1))
    assert info.value.ready_at == NOW + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pfx", "not base64!$(touch /tmp/x)", "field client_certificate is not base64"),
        ("pfx", "QUJD", None),  # valid base64: decoding it is the run's business
        ("pfx_password", "pw'; touch /tmp/x; '", "field client_certificate_password is not"),
        ("pfx_password", "pw$(id)`id`", "field client_certificate_password is not"),
    ],
)
def test_a_tampered_certificate_version_is_refused_without_showing_it(
    kv: VaultKV, field: str, value: str, message: str | None
) -> None:
    store = store_with(kv, CredentialKind.CERTIFICATE)
    made = make_certificate(
        client_id=guid("app"), tenant_id=guid("tenant"), created=NOW - timedelta(hours=1)
    )
    if field == "pfx":
        tampered = replace(made.version, pfx=Sensitive(value))
    else:
        tampered = replace(made.version, pfx_password=Sensitive(value))
    store.store_secret("web", tampered)
    if message is None:
        assert resolve(kv).certificate is not None
        return
    with pytest.raises(InvalidRecord, match=message) as info:
        resolve(kv)
    assert value not in str(info.value)


def test_a_version_of_another_kind_than_its_index_entry_is_refused(kv: VaultKV) -> None:
    store = store_with(kv, CredentialKind.CERTIFICATE)
    made = make_certificate(
        client_id=guid("app"), tenant_id=guid("tenant"), created=NOW - timedelta(hours=1)
    )
    store.store_secret("web", made.version)
    # Someone rewrites the version's data as a secret, leaving the index entry alone.
    latest = kv.read("credentials/web")
    kv.write("credentials/web", secret("planted", NOW - timedelta(hours=1)).to_data(), cas=None)
    old, new = f"v{latest.version}", f"v{latest.version + 1}"
    entries = {
        (new if k == old else k): v
        for k, v in kv.read_metadata("credentials/web").custom_metadata.items()
    }
    kv.set_custom_metadata("credentials/web", entries)
    with pytest.raises(InvalidRecord, match="field kind is not the certificate"):
        resolve(kv)


def test_the_resolver_message_of_a_secret_is_what_it_was_and_a_certificate_round_trips() -> None:
    base = ResolvedCredential(
        client_id=guid("app"),
        client_secret=Sensitive("abc8Q~secret"),
        tenant_id=guid("tenant"),
        subscription_id=guid("sub"),
        integration="web",
        key_id="k1",
        created=NOW - timedelta(hours=1),
        expires=NOW + timedelta(hours=23),
        safe_until=NOW + timedelta(hours=22),
    )
    message = to_message(base)
    assert message.kind == "" and message.client_certificate == ""
    assert {f.name for f, _ in message.ListFields()} == {
        "client_id",
        "client_secret",
        "tenant_id",
        "subscription_id",
        "integration",
        "key_id",
        "created",
        "expires",
        "safe_until",
    }
    assert from_message(message) == base
    made = make_certificate(client_id=guid("app"), tenant_id=guid("tenant"), created=NOW)
    answer = ResolvedCredential.from_data(
        replace(base, client_secret=Sensitive("")).to_data()
        | {
            "kind": "certificate",
            "client_certificate": made.version.pfx.reveal(),
            "client_certificate_password": made.version.pfx_password.reveal(),
            "thumbprint": made.version.thumbprint,
        }
    )
    assert answer.kind is CredentialKind.CERTIFICATE
    wire = to_message(answer)
    assert wire.client_secret == "" and wire.kind == "certificate"
    assert from_message(wire) == answer
    assert ResolvedCredential.from_data(answer.to_data()) == answer


def test_an_answer_carries_one_kind_of_credential() -> None:
    made = make_certificate(client_id=guid("app"), tenant_id=guid("tenant"), created=NOW)

    def answer(secret: str, certificate: ClientCertificate | None) -> ResolvedCredential:
        return ResolvedCredential(
            client_id=guid("app"),
            client_secret=Sensitive(secret),
            tenant_id=guid("tenant"),
            subscription_id=None,
            integration="web",
            key_id="k1",
            created=NOW,
            expires=NOW + timedelta(days=1),
            safe_until=NOW + timedelta(hours=23),
            kind=CredentialKind.CERTIFICATE,
            certificate=certificate,
        )

    with pytest.raises(ValueError, match="carries a certificate"):
        answer("", None)
    with pytest.raises(ValueError, match="no client secret"):
        answer("s", ClientCertificate(made.version.pfx, made.version.pfx_password))
    assert answer("", ClientCertificate(made.version.pfx, made.version.pfx_password)).certificate
