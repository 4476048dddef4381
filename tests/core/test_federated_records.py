"""The federated kind in the record vocabulary: its codec, its name and subject,
its index entry, and the ready rule treating it like any other kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sidecar.errors import InvalidRecord
from sidecar.model import (
    FEDERATED_NEVER_EXPIRES,
    CredentialKind,
    FederatedVersion,
    StoredCredential,
    credential_from_data,
    federated_credential_name,
    federated_subject,
    index_entry,
    intent_of_federated,
    parse_index,
)
from sidecar.ready import NotReady, Ready, choose_for_kind
from sidecar.timing import TimingPolicy

GUID = "11111111-2222-3333-4444-555555555555"
T = datetime(2030, 6, 1, 12, tzinfo=UTC)
M = timedelta(minutes=1)
POLICY = TimingPolicy()  # propagation 10 min


def federated() -> FederatedVersion:
    return FederatedVersion(
        client_id=GUID,
        tenant_id=GUID,
        key_id=GUID,
        name=federated_credential_name("i-1"),
        issuer="https://issuer.example.com/azsidecar",
        subject=federated_subject("team-a", "i-1"),
        audience="api://AzureADTokenExchange",
        intent_id="i-1",
        created=T,
    )


def test_federated_versions_keep_their_on_disk_format() -> None:
    data = federated().to_data()
    assert data["kind"] == "federated"
    assert data["name"] == "azsidecar-i-1"
    assert data["subject"] == "azsidecar:integration:team-a:i-1"
    assert data["expires"] == int(FEDERATED_NEVER_EXPIRES.timestamp())
    assert credential_from_data(data) == federated()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("issuer", "http://issuer.example.com", "issuer"),
        ("issuer", "https://x\n$(id)", "issuer"),
        ("name", "someone-else", "name"),
        ("name", "azsidecar-a b", "name"),
        ("subject", "x" * 601, "subject"),
        ("audience", "a\x1b[2J", "audience"),
        ("client_id", "not-a-guid", "client_id"),
        ("intent_id", "", "intent_id"),
    ],
)
def test_hostile_federated_fields_are_refused_by_name(field: str, value: str, says: str) -> None:
    data = federated().to_data() | {field: value}
    with pytest.raises(InvalidRecord, match=says) as caught:
        credential_from_data(data)
    assert value not in str(caught.value) or len(value) < 3


def test_names_carry_their_intent_and_nothing_else_reads_as_ours() -> None:
    assert intent_of_federated(federated_credential_name("abc_1-2")) == "abc_1-2"
    for other in (None, "", "azsidecar-", "azsidecar:abc", "github-actions", "azsidecar-a.b"):
        assert intent_of_federated(other) is None
    with pytest.raises(ValueError, match="intent id"):
        federated_credential_name("has.dot")


def test_index_entries_carry_the_federated_kind() -> None:
    stored = StoredCredential(3, GUID, "i-1", T, FEDERATED_NEVER_EXPIRES, CredentialKind.FEDERATED)
    key, value = index_entry(stored)
    assert value.endswith("|federated")
    assert parse_index({key: value}) == [stored]


def test_a_federated_credential_is_ready_after_propagation_and_never_ages_out() -> None:
    stored = StoredCredential(1, GUID, "i-1", T, FEDERATED_NEVER_EXPIRES, CredentialKind.FEDERATED)
    early = choose_for_kind([stored], CredentialKind.FEDERATED, T + 5 * M, POLICY)
    assert isinstance(early, NotReady)
    assert early.ready_at == T + POLICY.propagation_delay
    later = choose_for_kind([stored], CredentialKind.FEDERATED, T + timedelta(days=3650), POLICY)
    assert isinstance(later, Ready) and later.credential == stored


def test_during_a_switch_to_federated_the_secret_is_handed_out_until_it_is_ready() -> None:
    secret = StoredCredential(1, GUID, "s-1", T - timedelta(hours=5), T + timedelta(hours=19))
    fed = StoredCredential(2, GUID, "f-1", T, FEDERATED_NEVER_EXPIRES, CredentialKind.FEDERATED)
    during = choose_for_kind([secret, fed], CredentialKind.FEDERATED, T + 5 * M, POLICY)
    assert isinstance(during, Ready) and during.credential == secret
    after = choose_for_kind([secret, fed], CredentialKind.FEDERATED, T + 11 * M, POLICY)
    assert isinstance(after, Ready) and after.credential == fed
