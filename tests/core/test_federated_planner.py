"""The rotation planner for federated credentials, one row per rule.

Each row is a situation at ``NOW`` under the default policy (propagation
10 min, safety margin 30 min, intent timeout 15 min, missing grace 1 h): the
kind the integration wants, Vault's index (secrets ``s<n>``, federated
credentials ``f<n>``: version n, Graph id ``k<n>``, intent ``i<n>``), the
federated listing (ours named ``azsidecar-<intent>``, shown to the life cycle
through :func:`federated_listed`) and the pending intents, and the exact
action list expected: ``remove k<n> (federated)``, ``remove k<n> (secret)``,
``destroy v<n>`` (``confirmed`` when it waits on confirming reads),
``clear <intent>``, ``create federated``, ``create secret``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.model import (
    FEDERATED_NEVER_EXPIRES,
    AzureCredential,
    CredentialKind,
    Intent,
    IntentKind,
    StoredCredential,
    credential_display_name,
    federated_credential_name,
)
from sidecar.rotation.planner import (
    FEDERATED,
    KINDS,
    MAX_FEDERATED_OURS,
    Action,
    ClearIntent,
    CreateFederated,
    CreateSecret,
    DestroyStored,
    FederatedTrust,
    IntegrationState,
    RemoveAzureCredential,
    RemoveFederated,
    federated_listed,
    outdated_federated,
    plan,
    replan_at,
)
from sidecar.timing import TimingPolicy

POLICY = TimingPolicy()
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
SECRET = CredentialKind.SECRET
FED = CredentialKind.FEDERATED
TRUST = FederatedTrust("https://issuer.example.com/azsidecar")
MOVED = FederatedTrust("https://new-issuer.example.com/azsidecar")


def s(version: int, age: timedelta = H, left: timedelta = 23 * H) -> StoredCredential:
    return StoredCredential(version, f"k{version}", f"i{version}", NOW - age, NOW + left, SECRET)


def f(version: int, age: timedelta = H) -> StoredCredential:
    return StoredCredential(
        version, f"k{version}", f"i{version}", NOW - age, FEDERATED_NEVER_EXPIRES, FED
    )


def listed(cred: StoredCredential) -> AzureCredential:
    return federated_listed(cred.key_id, federated_credential_name(cred.intent_id))


def secret_listed(cred: StoredCredential) -> AzureCredential:
    return AzureCredential(
        cred.key_id, credential_display_name(cred.intent_id), cred.created, cred.expires
    )


def orphan(key_id: str, intent_id: str) -> AzureCredential:
    return federated_listed(key_id, federated_credential_name(intent_id))


FOREIGN = federated_listed("theirs", "github-actions-main")


def intent(intent_id: str, age: timedelta, kind: IntentKind = IntentKind.FEDERATED) -> Intent:
    return Intent(intent_id, NOW - age, kind)


def render(action: Action) -> str:
    match action:
        case RemoveFederated(key_id=key_id):
            return f"remove {key_id} (federated)"
        case RemoveAzureCredential(key_id=key_id):
            return f"remove {key_id} (secret)"
        case DestroyStored(version=version, confirm_reads=reads):
            return f"destroy v{version}" + (" confirmed" if reads else "")
        case ClearIntent(intent_id=intent_id):
            return f"clear {intent_id}"
        case CreateFederated():
            return "create federated"
        case CreateSecret():
            return "create secret"
    raise AssertionError(action)


@dataclass(frozen=True)
class Row:
    id: str
    kind: CredentialKind
    stored: tuple[StoredCredential, ...]
    federated: tuple[AzureCredential, ...] | None
    expected: tuple[str, ...]
    intents: tuple[Intent, ...] = ()
    secrets: tuple[AzureCredential, ...] | None = ()
    trusts: Mapping[int, FederatedTrust] = field(default_factory=dict)
    trust: FederatedTrust | None = TRUST

    def state(self) -> IntegrationState:
        return IntegrationState(
            name="team-a",
            stored=self.stored,
            azure=self.secrets,
            intents=self.intents,
            kind=self.kind,
            keys=(),
            federated=self.federated,
            trust=self.trust,
            trusts=self.trusts,
        )


ROWS = [
    Row("new integration: create one", FED, (), (), ("create federated",)),
    Row("one held and listed: nothing, ever", FED, (f(1, 400 * 24 * H),), (listed(f(1)),), ()),
    Row("listing failed: still creates the first", FED, (), None, ("create federated",)),
    Row("listing failed with one held: nothing", FED, (f(1),), None, ()),
    Row(
        "someone else's federated credentials are never touched nor counted",
        FED,
        (f(1),),
        (FOREIGN, listed(f(1))),
        (),
    ),
    Row(
        "an intent in flight: wait for it",
        FED,
        (),
        (),
        (),
        intents=(intent("i9", 5 * M),),
    ),
    Row(
        "an intent timed out with nothing in Azure: cleared, then create",
        FED,
        (),
        (),
        ("clear i9", "create federated"),
        intents=(intent("i9", 20 * M),),
    ),
    Row(
        "crash after the create: the orphan is removed, its intent cleared, one made again",
        FED,
        (),
        (orphan("k9", "i9"),),
        ("remove k9 (federated)", "clear i9", "create federated"),
        intents=(intent("i9", 20 * M),),
    ),
    Row(
        "crash after the create, intent still young: its writer may store it; wait",
        FED,
        (),
        (orphan("k9", "i9"),),
        (),
        intents=(intent("i9", 5 * M),),
    ),
    Row(
        "an orphan with no intent left: removed",
        FED,
        (f(1),),
        (listed(f(1)), orphan("k9", "i9")),
        ("remove k9 (federated)",),
    ),
    Row(
        "crash after the store: the intent is cleared",
        FED,
        (f(1, 2 * M),),
        (listed(f(1)),),
        ("clear i1",),
        intents=(intent("i1", 2 * M),),
    ),
    Row(
        "missing from the listing within the grace: replication lag, kept",
        FED,
        (f(1, 30 * M),),
        (),
        (),
    ),
    Row(
        "missing past the grace: destroyed after confirming reads, then one made again",
        FED,
        (f(1, 2 * H),),
        (),
        ("destroy v1 confirmed", "create federated"),
    ),
    Row(
        "switch to federated: the secret stays while the federated one is made",
        FED,
        (s(1),),
        (),
        ("create federated",),
        secrets=(secret_listed(s(1)),),
    ),
    Row(
        "switch to federated, not yet ready for the margin: the secret stays",
        FED,
        (s(1), f(2, 20 * M)),
        (listed(f(2)),),
        (),
        secrets=(secret_listed(s(1)),),
    ),
    Row(
        "switch to federated, ready for the margin: the secret is retired",
        FED,
        (s(1), f(2, 41 * M)),
        (listed(f(2)),),
        ("remove k1 (secret)", "destroy v1"),
        secrets=(secret_listed(s(1)),),
    ),
    Row(
        "switch away from federated: a secret is made, the federated one stays",
        SECRET,
        (f(1),),
        (listed(f(1)),),
        ("create secret",),
    ),
    Row(
        "switch away, the secret not ready for the margin: the federated one stays",
        SECRET,
        (f(1), s(2, 20 * M)),
        (listed(f(1)),),
        (),
        secrets=(secret_listed(s(2)),),
    ),
    Row(
        "switch away, the secret ready for the margin: the federated one is removed",
        SECRET,
        (f(1), s(2, 41 * M)),
        (listed(f(1)),),
        ("remove k1 (federated)", "destroy v1"),
        secrets=(secret_listed(s(2)),),
    ),
    Row(
        "switch away without an issuer configured: the removal needs none",
        SECRET,
        (f(1), s(2, 41 * M)),
        (listed(f(1)),),
        ("remove k1 (federated)", "destroy v1"),
        secrets=(secret_listed(s(2)),),
        trust=None,
    ),
    Row(
        "the issuer moved: a new one is made, the old one stays",
        FED,
        (f(1),),
        (listed(f(1)),),
        ("create federated",),
        trusts={1: TRUST},
        trust=MOVED,
    ),
    Row(
        "the audience changed: the same",
        FED,
        (f(1),),
        (listed(f(1)),),
        ("create federated",),
        trusts={1: FederatedTrust(TRUST.issuer, "api://other")},
    ),
    Row(
        "the issuer moved, the new one not ready for the margin: both stay",
        FED,
        (f(1, 2 * H), f(2, 20 * M)),
        (listed(f(1)), listed(f(2))),
        (),
        trusts={1: TRUST, 2: MOVED},
        trust=MOVED,
    ),
    Row(
        "the issuer moved, the new one ready for the margin: the old one is retired",
        FED,
        (f(1, 2 * H), f(2, 41 * M)),
        (listed(f(1)), listed(f(2))),
        ("remove k1 (federated)", "destroy v1"),
        trusts={1: TRUST, 2: MOVED},
        trust=MOVED,
    ),
    Row(
        "the issuer moved, the old one's removal unlisted: only destroyed",
        FED,
        (f(1, 2 * H), f(2, 41 * M)),
        (listed(f(2)),),
        ("destroy v1",),
        trusts={1: TRUST, 2: MOVED},
        trust=MOVED,
    ),
    Row(
        "the issuer moved and an orphan of ours is listed: at most two, no creation",
        FED,
        (f(1),),
        (listed(f(1)), orphan("k9", "i9")),
        ("remove k9 (federated)", "create federated"),
        trusts={1: TRUST},
        trust=MOVED,
    ),
    Row(
        "the issuer moved, a young intent may have made one unseen: at most two, wait",
        FED,
        (f(1),),
        (listed(f(1)),),
        (),
        intents=(intent("i9", 5 * M),),
        trusts={1: TRUST},
        trust=MOVED,
    ),
    Row(
        "a version whose trust could not be read is taken as current",
        FED,
        (f(1),),
        (listed(f(1)),),
        (),
        trust=MOVED,
    ),
    Row(
        "an integration of secrets with a left-over federated intent: it is reconciled",
        SECRET,
        (s(1),),
        (orphan("k9", "i9"),),
        ("remove k9 (federated)", "clear i9"),
        intents=(intent("i9", 20 * M),),
        secrets=(secret_listed(s(1)),),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_federated_rules(row: Row) -> None:
    assert [render(a) for a in plan(row.state(), POLICY, NOW)] == list(row.expected)


def test_the_kind_is_never_renewed_and_capped_at_two() -> None:
    assert KINDS[FED] is FEDERATED
    assert FEDERATED.renew_before(POLICY) == timedelta(0)
    assert FEDERATED.max_ours == MAX_FEDERATED_OURS == 2
    assert FEDERATED.confirm_reads >= 1


def test_ours_carry_their_intent_and_theirs_carry_no_name() -> None:
    assert listed(f(3)).display_name == credential_display_name("i3")
    assert FOREIGN.display_name == ""
    assert federated_listed("x", "azsidecar:abc").display_name == ""  # not a federated name


def test_outdated_only_while_the_kind_is_wanted_and_an_issuer_is_set() -> None:
    row = Row("moved", FED, (f(1), f(2)), (), (), trusts={1: TRUST, 2: MOVED}, trust=MOVED)
    assert outdated_federated(row.state()) == {1}
    assert outdated_federated(replace(row, trust=None).state()) == frozenset()
    assert outdated_federated(replace(row, kind=SECRET).state()) == frozenset()


def test_the_issuer_moved_plan_never_holds_more_than_two_of_ours() -> None:
    """Walk a move of the issuer tick by tick: never three of ours, the old one retired."""
    state = Row("walk", FED, (f(1, 400 * H),), None, (), trusts={1: TRUST}, trust=MOVED).state()
    now, azure, stored, next_version = NOW, {"k1": "i1"}, [f(1, 400 * H)], 2
    trusts = {1: TRUST}
    for _ in range(20):
        listing = tuple(orphan(k, i) for k, i in azure.items())
        state = replace(state, stored=tuple(stored), federated=listing, trusts=dict(trusts))
        for action in plan(state, POLICY, now):
            match action:
                case CreateFederated():
                    key = f"k{next_version}"
                    azure[key] = f"i{next_version}"
                    stored.append(
                        StoredCredential(
                            next_version, key, f"i{next_version}", now, FEDERATED_NEVER_EXPIRES, FED
                        )
                    )
                    trusts[next_version] = MOVED
                    next_version += 1
                case RemoveFederated(key_id=key_id):
                    azure.pop(key_id)
                case DestroyStored(version=version):
                    stored = [c for c in stored if c.version != version]
        assert len(azure) <= MAX_FEDERATED_OURS
        now += 10 * M
    assert [c.version for c in stored] == [2]
    assert list(azure) == ["k2"]


def test_replan_at_wakes_to_retire_the_old_trust() -> None:
    state = Row(
        "moved", FED, (f(1, 2 * H), f(2, 5 * M)), None, (), trusts={1: TRUST, 2: MOVED}, trust=MOVED
    ).state()
    ready_for_margin = NOW - 5 * M + POLICY.propagation_delay + POLICY.ready_safety_margin
    assert replan_at(state, POLICY, NOW) == ready_for_margin


def test_replan_at_never_wakes_for_a_federated_expiry() -> None:
    state = Row("one", FED, (f(1, 400 * H),), None, ()).state()
    assert replan_at(state, POLICY, NOW) is None


@st.composite
def states(draw: st.DrawFn) -> IntegrationState:
    """Any mix of federated versions, listings, intents and trusts, wanted or not."""
    count = draw(st.integers(0, 3))
    stored = [
        f(v, draw(st.sampled_from([5 * M, 20 * M, 41 * M, 2 * H, 400 * H])))
        for v in range(1, count + 1)
    ]
    listed_ = [listed(c) for c in stored if draw(st.booleans())]
    orphans = [orphan(f"o{i}", f"j{i}") for i in range(draw(st.integers(0, 2)))]
    foreign = [FOREIGN] if draw(st.booleans()) else []
    intents = [
        intent(f"j{i}", draw(st.sampled_from([5 * M, 20 * M])))
        for i in range(draw(st.integers(0, 2)))
    ]
    trusts = {c.version: draw(st.sampled_from([TRUST, MOVED])) for c in stored}
    federated = (*listed_, *orphans, *foreign)
    return IntegrationState(
        name="p",
        stored=tuple(stored),
        azure=(),
        intents=tuple(intents),
        kind=draw(st.sampled_from([FED, SECRET])),
        keys=(),
        federated=federated if draw(st.integers(0, 4)) else None,
        trust=draw(st.sampled_from([TRUST, MOVED, None])),
        trusts=trusts,
    )


@given(states())
@settings(max_examples=300, deadline=None)
def test_never_more_than_two_of_ours_and_never_theirs(state: IntegrationState) -> None:
    actions = plan(state, POLICY, NOW)
    removed = {a.key_id for a in actions if isinstance(a, RemoveFederated)}
    assert "theirs" not in removed
    creates = [a for a in actions if isinstance(a, CreateFederated)]
    assert len(creates) <= 1
    if creates:
        assert state.kind is FED
        cleared = {a.intent_id for a in actions if isinstance(a, ClearIntent)}
        open_intents = [i for i in state.intents if i.intent_id not in cleared]
        assert all(NOW - i.created >= POLICY.intent_timeout for i in open_intents)
        ours = {c.key_id for c in state.stored}  # Azure may hold every stored one
        if state.federated is not None:
            ours |= {a.key_id for a in state.federated if a.display_name}
            grace = POLICY.missing_grace
            ours -= {
                c.key_id
                for c in state.stored
                if c.key_id not in {a.key_id for a in state.federated} and NOW - c.created >= grace
            }  # gone: destroyed as removed outside us
        assert len(ours - removed) + len(open_intents) + 1 <= MAX_FEDERATED_OURS
