"""The rotation planner for an integration's certificates and for kind switches, one row per rule.

Each row is a situation at ``NOW`` under the default policy: the kind the
integration wants, Vault's index (secrets ``s<n>``, certificates ``c<n>``:
version n, keyId ``k<n>``, intent ``i<n>``), Graph's two listings and the
pending intents, and the exact action list expected, written as
``remove k<n> (secret)``, ``remove k<n> (proof v<m>)`` / ``(patch)``,
``destroy v<n>``, ``clear <intent>``, ``create secret`` and
``create certificate (proof v<m>)`` / ``(patch)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.model import (
    AzureCredential,
    CredentialKind,
    Intent,
    IntentKind,
    StoredCredential,
    credential_display_name,
)
from sidecar.probes.rule import ProbeRecord
from sidecar.rotation.planner import (
    Action,
    ClearIntent,
    CreateCertificate,
    CreateSecret,
    DestroyStored,
    IntegrationState,
    RemoveAzureCredential,
    RemoveKeyCredential,
    plan,
    replan_at,
)
from sidecar.timing import TimingPolicy

POLICY = TimingPolicy()
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
SECRET = CredentialKind.SECRET
CERT = CredentialKind.CERTIFICATE


def s(version: int, age: timedelta = H, left: timedelta = 23 * H) -> StoredCredential:
    return StoredCredential(version, f"k{version}", f"i{version}", NOW - age, NOW + left, SECRET)


def c(version: int, age: timedelta = H, left: timedelta = 23 * H) -> StoredCredential:
    return StoredCredential(version, f"k{version}", f"i{version}", NOW - age, NOW + left, CERT)


def on_azure(cred: StoredCredential) -> AzureCredential:
    name = credential_display_name(cred.intent_id)
    return AzureCredential(cred.key_id, name, cred.created, cred.expires)


def orphan(key_id: str, intent_id: str, age: timedelta = H) -> AzureCredential:
    name = credential_display_name(intent_id)
    return AzureCredential(key_id, name, NOW - age, NOW + 24 * H)


FOREIGN = AzureCredential("theirs", "CN=terraform-bootstrap", NOW - 48 * H, NOW + 48 * H)


def render(action: Action) -> str:
    match action:
        case RemoveKeyCredential(key_id=key_id, proof_version=proof):
            return f"remove {key_id} ({'patch' if proof is None else f'proof v{proof}'})"
        case RemoveAzureCredential(key_id=key_id):
            return f"remove {key_id} (secret)"
        case DestroyStored(version=version):
            return f"destroy v{version}"
        case ClearIntent(intent_id=intent_id):
            return f"clear {intent_id}"
        case CreateCertificate(proof_version=proof):
            return f"create certificate ({'patch' if proof is None else f'proof v{proof}'})"
        case CreateSecret():
            return "create secret"
    raise AssertionError(action)


@dataclass(frozen=True)
class Row:
    kind: CredentialKind
    stored: tuple[StoredCredential, ...] = ()
    intents: tuple[Intent, ...] = ()
    extra_keys: tuple[AzureCredential, ...] = ()
    expect: tuple[str, ...] = ()
    listed: bool = True
    #: Stored keys the listing lacks (a read served by a lagging replica).
    unlisted: tuple[str, ...] = ()


def state_of(row: Row) -> IntegrationState:
    secrets = tuple(on_azure(x) for x in row.stored if x.kind is SECRET)
    keys = (
        tuple(on_azure(x) for x in row.stored if x.kind is CERT and x.key_id not in row.unlisted)
        + row.extra_keys
    )
    return IntegrationState(
        name="app",
        stored=row.stored,
        azure=secrets if row.listed else None,
        intents=row.intents,
        kind=row.kind,
        keys=keys if row.listed else None,
    )


ROWS: dict[str, Row] = {
    "a certificate integration's first certificate goes in by PATCH": Row(
        CERT, expect=("create certificate (patch)",)
    ),
    "a settled certificate with time left: nothing to do": Row(CERT, stored=(c(1),)),
    "renewal is proven by the certificate it renews": Row(
        CERT, stored=(c(1, age=22 * H, left=90 * M),), expect=("create certificate (proof v1)",)
    ),
    "a proof prefers the key settled longest over one still propagating": Row(
        CERT,
        stored=(c(1, age=22 * H, left=100 * M), c(2, age=5 * M, left=90 * M)),
        expect=("create certificate (proof v1)",),
    ),
    "an expired certificate is removed with a proof by a valid one": Row(
        CERT,
        stored=(c(1, age=25 * H, left=-H), c(2)),
        expect=("remove k1 (proof v2)", "destroy v1"),
    ),
    "an expired last certificate: removed by PATCH, the next one by PATCH": Row(
        CERT,
        stored=(c(1, age=25 * H, left=-H),),
        expect=("remove k1 (patch)", "destroy v1", "create certificate (patch)"),
    ),
    "an orphaned key of ours is removed with a proof by a key we keep": Row(
        CERT,
        stored=(c(2),),
        extra_keys=(orphan("k9", "i9"),),
        expect=("remove k9 (proof v2)",),
    ),
    "someone else's key is never touched, and does not prove anything for us": Row(
        CERT, extra_keys=(FOREIGN,), expect=("create certificate (patch)",)
    ),
    "an intent in flight holds the creation back": Row(
        CERT, intents=(Intent("i5", NOW - 5 * M, IntentKind.CERTIFICATE),)
    ),
    "a secret intent does not hold a certificate back, and times out as a secret's": Row(
        CERT,
        intents=(Intent("i5", NOW - 20 * M, IntentKind.SECRET),),
        expect=("clear i5", "create certificate (patch)"),
    ),
    "a certificate orphan of a crashed creation: removed, its intent cleared": Row(
        CERT,
        stored=(c(1),),
        intents=(Intent("i9", NOW - 20 * M, IntentKind.CERTIFICATE),),
        extra_keys=(orphan("k9", "i9", age=19 * M),),
        expect=("remove k9 (proof v1)", "clear i9"),
    ),
    "no more than three of our certificates": Row(
        CERT,
        stored=(c(1, left=80 * M), c(2, left=85 * M), c(3, left=90 * M)),
    ),
    "without a listing, renewal still goes ahead, proven by the held key": Row(
        CERT,
        stored=(c(1, age=22 * H, left=90 * M),),
        listed=False,
        expect=("create certificate (proof v1)",),
    ),
    # A read served by a lagging replica: a PATCH built from it would delete our keys.
    "a lagging replica lacks our only valid key: a due renewal by addKey, never PATCH": Row(
        CERT,
        stored=(c(1, age=30 * M, left=80 * M),),
        unlisted=("k1",),
        expect=("create certificate (proof v1)",),
    ),
    "a lagging replica lacks the newest key: an expired one is removed with a proof by it": Row(
        CERT,
        stored=(c(1, age=25 * H, left=-H), c(2, age=3 * M)),
        unlisted=("k2",),
        expect=("remove k1 (proof v2)", "destroy v1"),
    ),
    "a listed key proves before an unlisted one, however settled": Row(
        CERT,
        stored=(c(1, age=22 * H, left=90 * M), c(2, age=30 * M, left=85 * M)),
        unlisted=("k2",),
        expect=("create certificate (proof v1)",),
    ),
    # Switching secret -> certificate.
    "switch to certificates: the first certificate, the secret stays": Row(
        CERT, stored=(s(1),), expect=("create certificate (patch)",)
    ),
    "switched away: a secret near expiry is not renewed": Row(
        CERT,
        stored=(s(1, age=22 * H, left=90 * M), c(2, age=5 * M)),
    ),
    "the new certificate is not ready yet: the secret stays": Row(
        CERT, stored=(s(1), c(2, age=5 * M))
    ),
    "the certificate is ready, but not for the safety margin yet: the secret stays": Row(
        CERT, stored=(s(1), c(2, age=30 * M))
    ),
    "the certificate has been ready for the margin: the secret is retired": Row(
        CERT,
        stored=(s(1), c(2, age=41 * M)),
        expect=("remove k1 (secret)", "destroy v1"),
    ),
    # Switching certificate -> secret.
    "switch back to secrets: a secret is created, the certificate stays": Row(
        SECRET, stored=(c(1),), expect=("create secret",)
    ),
    "switched away: a certificate near expiry is not renewed": Row(
        SECRET, stored=(c(1, age=22 * H, left=90 * M), s(2, age=5 * M))
    ),
    "the secret has been ready for the margin: the certificates go, each proving itself": Row(
        SECRET,
        stored=(c(1), c(2, age=30 * M), s(3, age=41 * M)),
        expect=("remove k1 (proof v1)", "remove k2 (proof v2)", "destroy v1", "destroy v2"),
    ),
    "retiring certificates, an orphan removed first is proven by one removed later": Row(
        SECRET,
        stored=(c(1), s(3, age=41 * M)),
        extra_keys=(orphan("k0", "i0"), FOREIGN),
        expect=("remove k0 (proof v1)", "remove k1 (proof v1)", "destroy v1"),
    ),
    "retiring certificates, an orphan removed last goes by PATCH (no key of ours left)": Row(
        SECRET,
        stored=(c(1), s(3, age=41 * M)),
        extra_keys=(orphan("k9", "i9"), FOREIGN),
        expect=("remove k1 (proof v1)", "remove k9 (patch)", "destroy v1"),
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_row(row: Row) -> None:
    assert tuple(render(a) for a in plan(state_of(row), POLICY, NOW)) == row.expect


def test_secret_only_integrations_plan_as_before() -> None:
    """No certificate, no certificate listing: only the secret's rows apply."""
    state = IntegrationState("app", (s(1, age=22 * H, left=90 * M),), (on_azure(s(1)),), ())
    assert [render(a) for a in plan(state, POLICY, NOW)] == ["create secret"]


def test_a_failing_probe_keeps_the_old_kind() -> None:
    """Readiness is judged with the probes readers see: refused sign-ins hold the switch."""
    new = c(2, age=2 * H)
    failing = ProbeRecord(
        version=2,
        delay=POLICY.propagation_delay,
        first_success=None,
        last_failure=NOW - M,
        streak_since=None,
        last_probe=NOW - M,
        sign_ins=8,
        failures=8,
    )
    state = replace(state_of(Row(CERT, stored=(s(1), new))), probes={2: failing})
    assert [render(a) for a in plan(state, POLICY, NOW)] == []
    assert [render(a) for a in plan(replace(state, probes={}), POLICY, NOW)] == [
        "remove k1 (secret)",
        "destroy v1",
    ]


def test_certificate_timing_is_its_own() -> None:
    """certificate_renew_before decides a certificate's renewal, not the secret's."""
    policy = TimingPolicy(certificate_lifetime=72 * H, certificate_renew_before=12 * H)
    early = state_of(Row(CERT, stored=(c(1, age=61 * H, left=11 * H),)))
    assert [render(a) for a in plan(early, policy, NOW)] == ["create certificate (proof v1)"]
    assert [render(a) for a in plan(early, POLICY, NOW)] == []


def test_replan_at_wakes_for_the_switch() -> None:
    """While two kinds are held, the daemon wakes when the old one may be retired."""
    state = state_of(Row(CERT, stored=(s(1), c(2, age=5 * M))))
    assert replan_at(state, POLICY, NOW) == NOW - 5 * M + 40 * M


# -- both kinds at once, as properties ------------------------------------------------

minutes = st.integers(-48 * 60, 48 * 60).map(lambda n: n * M)


@st.composite
def mixed_states(draw: st.DrawFn) -> IntegrationState:
    stored = []
    for version in range(1, draw(st.integers(0, 5)) + 1):
        created = NOW - abs(draw(minutes))
        kind = draw(st.sampled_from([SECRET, CERT]))
        stored.append(
            StoredCredential(version, f"k{version}", f"i{version}", created, created + 24 * H, kind)
        )
    intents = [
        Intent(f"p{n}", NOW - abs(draw(minutes)), draw(st.sampled_from(list(IntentKind))))
        for n in range(draw(st.integers(0, 3)))
    ]
    listed = draw(st.booleans())
    secrets = tuple(on_azure(c) for c in stored if c.kind is SECRET and draw(st.booleans()))
    keys = tuple(on_azure(c) for c in stored if c.kind is CERT and draw(st.booleans()))
    if draw(st.booleans()):
        keys += (FOREIGN,)
    return IntegrationState(
        "p",
        tuple(stored),
        secrets if listed else None,
        tuple(intents),
        kind=draw(st.sampled_from([SECRET, CERT])),
        keys=keys if listed else None,
    )


@settings(max_examples=300, deadline=None)
@given(state=mixed_states(), offset=st.integers(1, 48 * 60))
def test_a_mixed_plan_does_not_change_before_replan_at(
    state: IntegrationState, offset: int
) -> None:
    wake = replan_at(state, POLICY, NOW)
    later = NOW + offset * M
    if wake is None or later < wake:
        assert plan(state, POLICY, later) == plan(state, POLICY, NOW)


@settings(max_examples=300, deadline=None)
@given(state=mixed_states())
def test_only_the_wanted_kind_is_created_and_foreign_keys_are_never_touched(
    state: IntegrationState,
) -> None:
    actions = plan(state, POLICY, NOW)
    creates = [a for a in actions if isinstance(a, CreateSecret)]
    assert len(creates) <= 1
    for create in creates:
        assert isinstance(create, CreateCertificate) is (state.kind is CERT)
    assert all(getattr(a, "key_id", None) != "theirs" for a in actions)
    # A proof is always a certificate version we hold that is valid now.
    held = {c.version: c for c in state.stored if c.kind is CERT}
    for a in actions:
        proof = getattr(a, "proof_version", None)
        if proof is not None:
            assert proof in held and held[proof].created <= NOW < held[proof].expires
