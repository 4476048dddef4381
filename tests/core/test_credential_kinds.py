"""Credential kinds in the record vocabulary: the certificate codec, the kind in the
index, and the switch rule (the old kind is handed out until the new one is ready)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.errors import InvalidRecord
from sidecar.model import (
    CertificateVersion,
    CredentialIndexError,
    CredentialKind,
    SecretVersion,
    StoredCredential,
    credential_from_data,
    index_entry,
    parse_index,
)
from sidecar.ready import NotReady, Ready, choose_for_kind
from sidecar.sensitive import Sensitive
from sidecar.timing import TimingPolicy

GUID = "11111111-2222-3333-4444-555555555555"
T = datetime(2030, 6, 1, 12, tzinfo=UTC)
NOW = T
M = timedelta(minutes=1)
H = timedelta(hours=1)
POLICY = TimingPolicy()  # propagation 10 min, safety margin 30 min
PFX = base64.b64encode(b"\x30\x82" + bytes(range(256)) * 8).decode()


def certificate() -> CertificateVersion:
    return CertificateVersion(
        client_id=GUID,
        tenant_id=GUID,
        key_id=GUID,
        thumbprint="AB" * 20,
        intent_id="i-1",
        created=T,
        expires=T + 24 * H,
        pfx=Sensitive(PFX),
        pfx_password=Sensitive("pw-Abc_123~"),
    )


def test_certificate_versions_keep_their_on_disk_format() -> None:
    data = certificate().to_data()
    assert data["kind"] == "certificate"
    assert data["client_certificate"] == PFX
    assert data["thumbprint"] == "AB" * 20
    assert credential_from_data(data) == certificate()
    assert "pw-Abc" not in repr(certificate()) and PFX[:20] not in repr(certificate())


def test_versions_without_a_kind_are_secrets() -> None:
    data = {
        "client_id": GUID,
        "client_secret": "s3cret~value",
        "key_id": GUID,
        "tenant_id": GUID,
        "intent_id": "i-0",
        "created": 0,
        "expires": 100,
    }
    found = credential_from_data(data)
    assert isinstance(found, SecretVersion)
    assert found.kind is CredentialKind.SECRET
    assert credential_from_data(found.to_data()) == found


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "password"),
        ("thumbprint", "ab" * 20),
        ("thumbprint", "AB" * 19),
        ("client_certificate", "not base64 at all $(id)"),
        ("client_certificate", ""),
        ("client_certificate_password", "pw'; rm -rf /"),
        ("client_id", "x"),
    ],
)
def test_hostile_certificate_fields_are_refused_by_name(field: str, value: str) -> None:
    data = {**certificate().to_data(), field: value}
    with pytest.raises(InvalidRecord, match=field) as caught:
        credential_from_data(data)
    if value:
        assert value not in str(caught.value)


def test_index_entries_carry_the_kind_and_old_entries_read_as_secrets() -> None:
    cert = StoredCredential(4, "k4", "i4", T, T + H, CredentialKind.CERTIFICATE)
    key, value = index_entry(cert)
    assert value.endswith("|certificate")
    secret = StoredCredential(3, "k3", "i3", T, T + H)
    assert "certificate" not in index_entry(secret)[1]
    parsed = parse_index(dict([index_entry(secret), (key, value)]))
    assert [(c.version, c.kind) for c in parsed] == [
        (3, CredentialKind.SECRET),
        (4, CredentialKind.CERTIFICATE),
    ]
    with pytest.raises(CredentialIndexError, match="v5"):
        parse_index({"v5": "k|i|1|2|password"})


def cred(version: int, kind: CredentialKind, age: timedelta, left: timedelta) -> StoredCredential:
    return StoredCredential(version, f"k{version}", f"i{version}", NOW - age, NOW + left, kind)


S, C = CredentialKind.SECRET, CredentialKind.CERTIFICATE

SWITCH_CASES = {
    # (credentials, wanted kind) -> the version handed out, or (None, ready_at)
    "wanted-kind-ready": ([cred(1, S, 2 * H, 20 * H), cred(2, C, H, 23 * H)], C, 2),
    "new-kind-propagating-old-kind-served": (
        [cred(1, S, 2 * H, 20 * H), cred(2, C, 3 * M, 23 * H)],
        C,
        1,
    ),
    "switch-back-while-old-still-held": (
        [cred(1, S, 2 * H, 20 * H), cred(2, C, H, 23 * H)],
        S,
        1,
    ),
    "neither-ready-says-when-the-wanted-kind-will-be": (
        [cred(1, S, 2 * M, 20 * H), cred(2, C, 4 * M, 23 * H)],
        C,
        None,
    ),
    "old-kind-within-safety-margin-is-not-served": (
        [cred(1, S, 23 * H, 20 * M), cred(2, C, 4 * M, 23 * H)],
        C,
        None,
    ),
}


@pytest.mark.parametrize("case", SWITCH_CASES, ids=list(SWITCH_CASES))
def test_the_old_kind_is_handed_out_until_the_new_one_is_ready(case: str) -> None:
    credentials, kind, expected = SWITCH_CASES[case]
    choice = choose_for_kind(credentials, kind, NOW, POLICY)
    if expected is None:
        assert isinstance(choice, NotReady)
        wanted = next(c for c in credentials if c.kind is kind)
        assert choice.ready_at == wanted.created + POLICY.propagation_delay
        assert kind.noun in choice.reason
    else:
        assert isinstance(choice, Ready)
        assert choice.credential.version == expected
