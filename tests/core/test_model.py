"""Shared encodings: credential display names and the custom_metadata index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.errors import InvalidRecord, SidecarError
from sidecar.model import (
    INDEX_CAP,
    ConsentState,
    CredentialIndexError,
    CredentialKind,
    IntegrationRecord,
    IntegrationStatus,
    Phase,
    StackRecord,
    StoredCredential,
    credential_display_name,
    index_entry,
    intent_of,
    parse_index,
    with_index,
)

T = datetime(2030, 6, 1, 12, tzinfo=UTC)
KEY_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def cred(version: int = 3) -> StoredCredential:
    return StoredCredential(version, KEY_ID, "7c9e6679", T, T + timedelta(hours=24))


@pytest.mark.parametrize(
    ("stack", "phase", "integration"),
    [
        (StackRecord("s", read="r", write="w"), Phase.PLAN, "r"),
        (StackRecord("s", read="r", write="w"), Phase.APPLY, "w"),
        (StackRecord("s", read="both", write="both"), Phase.APPLY, "both"),
        (StackRecord("s", read="r"), Phase.APPLY, None),
        (StackRecord("s"), Phase.PLAN, None),
    ],
    ids=["plan-reads", "apply-writes", "one-for-both", "no-write-attached", "nothing-attached"],
)
def test_stack_phase_selects_integration(
    stack: StackRecord, phase: Phase, integration: str
) -> None:
    assert stack.integration_for(phase) == integration


def test_stack_phase_replaces_only_its_integration() -> None:
    stack = StackRecord("s", read="r", write="w", subscription_id=None)
    assert stack.with_integration(Phase.PLAN, None) == StackRecord("s", None, "w")
    assert stack.with_integration(Phase.APPLY, "x") == StackRecord("s", "r", "x")
    assert [p.role for p in Phase] == ["read", "write"]


GUID = "11111111-2222-3333-4444-555555555555"


def test_records_keep_their_on_disk_format() -> None:
    """The KV format is what older daemons and operators' tools read: field for field."""
    record = IntegrationRecord(
        name="web",
        tenant_id=GUID,
        subscription_id=None,
        app_object_id=GUID,
        client_id=GUID,
        display_name="azsidecar-web-1234",
        consent=ConsentState.PENDING,
        created=T,
        status=IntegrationStatus.CREATING,
    )
    data = record.to_data()
    assert data == {
        "name": "web",
        "tenant_id": GUID,
        "subscription_id": None,
        "app_object_id": GUID,
        "client_id": GUID,
        "display_name": "azsidecar-web-1234",
        "consent": "pending",
        "created": int(T.timestamp()),
        "status": "creating",
        "kind": "secret",
    }
    assert list(data) == list(record.__dataclass_fields__)
    assert all(type(v) in (str, int, type(None)) for v in data.values())
    parsed = IntegrationRecord.from_data(data)
    assert parsed == record
    assert parsed.consent is ConsentState.PENDING
    assert parsed.status is IntegrationStatus.CREATING
    legacy = {k: v for k, v in data.items() if k != "status"}
    assert IntegrationRecord.from_data(legacy).status is IntegrationStatus.READY
    before_kinds = {k: v for k, v in data.items() if k != "kind"}
    assert IntegrationRecord.from_data(before_kinds).kind is CredentialKind.SECRET
    certified = IntegrationRecord.from_data({**data, "kind": "certificate"})
    assert certified.kind is CredentialKind.CERTIFICATE
    stack = StackRecord("s", "r", None, GUID)
    assert stack.to_data() == {"name": "s", "read": "r", "write": None, "subscription_id": GUID}
    assert StackRecord.from_data(stack.to_data()) == stack


@pytest.mark.parametrize(
    ("field", "value"), [("consent", "revoked"), ("status", "gone"), ("kind", "password")]
)
def test_records_refuse_values_outside_their_enum(field: str, value: str) -> None:
    data = {
        "name": "web",
        "tenant_id": GUID,
        "app_object_id": "",
        "client_id": "",
        "display_name": "d",
        "consent": "granted",
        "created": 0,
        field: value,
    }
    with pytest.raises(InvalidRecord, match=field):
        IntegrationRecord.from_data(data)


def test_phase_values_are_the_path_segments() -> None:
    assert [p.value for p in Phase] == ["plan", "apply"]
    assert Phase("apply") is Phase.APPLY


def test_display_name_round_trips_the_intent() -> None:
    assert credential_display_name("abc-123") == "azsidecar:abc-123"
    assert intent_of(credential_display_name("abc-123")) == "abc-123"


@pytest.mark.parametrize(
    "display_name",
    [None, "", "terraform", "azsidecar:", "AZSIDECAR:abc", "azsidecar:a b", "azsidecar:a|b"],
    ids=["none", "empty", "foreign", "no-id", "wrong-case", "space", "pipe"],
)
def test_foreign_display_names_have_no_intent(display_name: str | None) -> None:
    assert intent_of(display_name) is None


def test_intent_ids_that_would_not_parse_back_are_refused() -> None:
    with pytest.raises(ValueError, match="intent id"):
        credential_display_name("a|b")


def test_index_entry_is_compact() -> None:
    key, value = index_entry(cred())
    assert key == "v3"
    assert value == f"{KEY_ID}|7c9e6679|{int(T.timestamp())}|{int(T.timestamp()) + 86400}"


def test_index_times_round_towards_the_safe_side() -> None:
    half = timedelta(milliseconds=500)
    c = StoredCredential(1, "k", "i", T + half, T + timedelta(hours=1) + half)
    (back,) = parse_index(dict([index_entry(c)]))
    assert back.created == T + timedelta(seconds=1)  # ready no earlier than it really is
    assert back.expires == T + timedelta(hours=1)  # retired no later


def test_parse_index_ignores_other_keys_and_sorts_by_version() -> None:
    metadata = dict([index_entry(cred(12)), index_entry(cred(2))])
    metadata |= {"owner": "team-a", "v": "x", "version": "3", "v0": "x", "v01": "x"}
    assert [c.version for c in parse_index(metadata)] == [2, 12]
    assert parse_index(None) == [] == parse_index({})


MALFORMED = {
    "too-few-fields": "k|i|1",
    "too-many-fields": "k|i|1|2|3",
    "empty-key-id": "|i|1|2",
    "empty-intent": "k||1|2",
    "created-not-a-number": "k|i|yesterday|2",
    "expires-not-a-number": "k|i|1|2.5",
    "expires-before-created": "k|i|200|100",
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_entries_are_refused_by_key(value: str) -> None:
    with pytest.raises(CredentialIndexError, match="entry v7") as err:
        parse_index({"v7": value})
    assert err.value.key == "v7"
    assert isinstance(err.value, SidecarError)


def test_entries_that_could_not_parse_back_are_refused() -> None:
    with pytest.raises(CredentialIndexError, match="no '\\|'"):
        index_entry(StoredCredential(1, "a|b", "i", T, T + timedelta(hours=1)))
    with pytest.raises(CredentialIndexError, match="start at 1"):
        index_entry(StoredCredential(0, "k", "i", T, T + timedelta(hours=1)))
    with pytest.raises(CredentialIndexError, match="512 bytes"):
        index_entry(StoredCredential(1, "k" * 500, "i", T, T + timedelta(hours=1)))


def test_with_index_replaces_entries_and_keeps_other_keys() -> None:
    before = {"owner": "team-a"} | dict([index_entry(cred(1)), index_entry(cred(2))])
    after = with_index(before, [cred(2), cred(3)])
    assert set(after) == {"owner", "v2", "v3"}
    assert [c.version for c in parse_index(after)] == [2, 3]


def test_with_index_enforces_the_cap() -> None:
    with_index({}, [cred(v) for v in range(1, INDEX_CAP + 1)])
    with pytest.raises(CredentialIndexError, match=f"more than {INDEX_CAP}"):
        with_index({}, [cred(v) for v in range(1, INDEX_CAP + 2)])


def test_with_index_respects_vaults_pair_limit() -> None:
    others = {f"note{n}": "x" for n in range(64 - 3)}
    with_index(others, [cred(1), cred(2), cred(3)])
    with pytest.raises(CredentialIndexError, match="64 custom_metadata pairs"):
        with_index(others, [cred(1), cred(2), cred(3), cred(4)])


ids = st.text("abcdefABCDEF0123456789-._", min_size=1, max_size=64)
epochs = st.integers(0, 2**33)


@settings(max_examples=200, deadline=None)
@given(version=st.integers(1, 10**9), key_id=ids, intent_id=ids, start=epochs, life=epochs)
def test_index_round_trips_whole_seconds(
    version: int, key_id: str, intent_id: str, start: int, life: int
) -> None:
    created = datetime.fromtimestamp(start, UTC)
    c = StoredCredential(version, key_id, intent_id, created, created + timedelta(seconds=life + 1))
    assert parse_index(dict([index_entry(c)])) == [c]
