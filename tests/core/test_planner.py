"""The rotation planner, one row per rule.

Each row is a situation (Vault's index, Graph's listing or None when Graph
failed, pending intents) at ``NOW`` under the default policy, and the exact
action list expected, written as ``remove <keyId>``, ``destroy v<n>``,
``clear <intent>`` and ``create``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.model import AzureCredential, Intent, StoredCredential, credential_display_name
from sidecar.rotation.planner import (
    Action,
    ClearIntent,
    CreateSecret,
    DestroyStored,
    IntegrationState,
    RemoveAzureCredential,
    plan,
    replan_at,
)
from sidecar.timing import TimingPolicy

POLICY = TimingPolicy()
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def v(version: int, age: timedelta = H, left: timedelta = 23 * H) -> StoredCredential:
    """Stored secret ``v<n>`` (keyId ``k<n>``, intent ``i<n>``) created ``age`` ago."""
    return StoredCredential(version, f"k{version}", f"i{version}", NOW - age, NOW + left)


def on_azure(c: StoredCredential) -> AzureCredential:
    return AzureCredential(c.key_id, credential_display_name(c.intent_id), c.created, c.expires)


def orphan(key_id: str, intent_id: str, age: timedelta = 5 * M) -> AzureCredential:
    return AzureCredential(key_id, credential_display_name(intent_id), NOW - age, NOW + 24 * H)


def foreign(key_id: str) -> AzureCredential:
    return AzureCredential(key_id, "terraform-bootstrap", NOW - 48 * H, NOW - H)


def intent(intent_id: str, age: timedelta) -> Intent:
    return Intent(intent_id, NOW - age)


def render(action: Action) -> str:
    match action:
        case RemoveAzureCredential(key_id=key_id):
            return f"remove {key_id}"
        case DestroyStored(version=version):
            return f"destroy v{version}"
        case ClearIntent(intent_id=intent_id):
            return f"clear {intent_id}"
        case CreateSecret():
            return "create"


@dataclass(frozen=True)
class Row:
    stored: tuple[StoredCredential, ...] = ()
    azure: tuple[AzureCredential, ...] | None = ()
    intents: tuple[Intent, ...] = ()
    expect: tuple[str, ...] = ()


def listed(*creds: StoredCredential, extra: tuple[AzureCredential, ...] = ()) -> Row:
    """Shortcut: every given secret is stored and visible on the application."""
    return Row(stored=creds, azure=tuple(on_azure(c) for c in creds) + extra)


FRESH = v(1)
DUE = v(1, age=22 * H + M, left=2 * H - M)

ROWS: dict[str, Row] = {
    # -- first secret
    "new-integration-gets-its-first-secret-at-once": Row(expect=("create",)),
    "first-secret-even-when-graph-listing-fails": Row(azure=None, expect=("create",)),
    "first-secret-waits-while-its-intent-is-in-flight": Row(intents=(intent("i9", 2 * M),)),
    # -- renewal
    "fresh-secret-nothing-to-do": listed(FRESH),
    "renew-when-less-than-renew-before-left": replace(listed(DUE), expect=("create",)),
    "renew-exactly-at-renew-before": replace(listed(v(1, 22 * H, 2 * H)), expect=("create",)),
    "no-renewal-one-second-before-the-window": listed(v(1, 22 * H - S, 2 * H + S)),
    "renewal-judged-by-the-newest-secret": listed(v(1, 22 * H, 2 * H - M), v(2, H, 23 * H)),
    "renew-when-graph-listing-fails": replace(listed(DUE), azure=None, expect=("create",)),
    "renewal-waits-for-a-young-intent": replace(listed(DUE), intents=(intent("i9", 14 * M),)),
    "renewal-after-the-intent-timed-out-unseen": replace(
        listed(DUE), intents=(intent("i9", 15 * M),), expect=("clear i9", "create")
    ),
    "old-unresolved-intent-does-not-block-when-graph-fails": replace(
        listed(DUE), azure=None, intents=(intent("i9", H),), expect=("create",)
    ),
    # -- expiry
    "expired-secret-removed-from-azure-and-destroyed": replace(
        listed(v(1, 25 * H, -H), v(2)),
        expect=("remove k1", "destroy v1"),
    ),
    "expired-secret-gone-from-azure-only-destroyed": Row(
        stored=(v(1, 25 * H, -H), v(2)),
        azure=(on_azure(v(2)),),
        expect=("destroy v1",),
    ),
    "expired-secret-removed-blind-when-graph-fails": Row(
        stored=(v(1, 25 * H, -H), v(2)), azure=None, expect=("remove k1", "destroy v1")
    ),
    "expiring-at-this-instant-counts-as-expired": replace(
        listed(v(1, 24 * H, timedelta(0)), v(2)), expect=("remove k1", "destroy v1")
    ),
    "only-secret-expired-is-replaced": replace(
        listed(v(1, 26 * H, -2 * H)), expect=("remove k1", "destroy v1", "create")
    ),
    # -- reconciliation
    "orphan-without-intent-removed": replace(
        listed(FRESH, extra=(orphan("kx", "ix"),)), expect=("remove kx",)
    ),
    "orphan-of-timed-out-intent-removed-and-intent-cleared": Row(
        stored=(FRESH,),
        azure=(on_azure(FRESH), orphan("kx", "ix")),
        intents=(intent("ix", 15 * M),),
        expect=("remove kx", "clear ix"),
    ),
    "credential-of-an-intent-in-flight-left-to-its-writer": Row(
        stored=(FRESH,),
        azure=(on_azure(FRESH), orphan("kx", "ix")),
        intents=(intent("ix", 3 * M),),
    ),
    "orphan-cleared-then-renewal-goes-ahead-in-the-same-plan": Row(
        stored=(DUE,),
        azure=(on_azure(DUE), orphan("kx", "ix")),
        intents=(intent("ix", 20 * M),),
        expect=("remove kx", "clear ix", "create"),
    ),
    "someone-elses-credential-left-alone": Row(
        stored=(FRESH,), azure=(on_azure(FRESH), foreign("kz"))
    ),
    "intent-whose-secret-is-stored-cleared": replace(
        listed(FRESH), intents=(intent("i1", M),), expect=("clear i1",)
    ),
    "intent-whose-secret-is-stored-cleared-even-when-graph-fails": replace(
        listed(FRESH), azure=None, intents=(intent("i1", M),), expect=("clear i1",)
    ),
    "young-unseen-intent-left-alone": replace(listed(FRESH), intents=(intent("i9", 14 * M),)),
    "old-unseen-intent-cleared": replace(
        listed(FRESH), intents=(intent("i9", 15 * M),), expect=("clear i9",)
    ),
    "old-intent-kept-while-graph-fails": replace(
        listed(FRESH), azure=None, intents=(intent("i9", 2 * H),)
    ),
    "stored-secret-unseen-past-missing-grace-destroyed": Row(
        stored=(FRESH, v(2, age=H)), azure=(on_azure(FRESH),), expect=("destroy v2",)
    ),
    "stored-secret-unseen-within-missing-grace-kept": Row(
        stored=(FRESH, v(2, age=59 * M)), azure=(on_azure(FRESH),)
    ),
    "only-secret-removed-outside-us-is-replaced": Row(
        stored=(FRESH,), azure=(), expect=("destroy v1", "create")
    ),
    "orphans-are-not-judged-when-graph-fails": Row(stored=(FRESH,), azure=None),
    # -- at most three of ours
    "never-a-fourth-secret": listed(v(1, 23 * H, H), v(2, 23 * H, H + M), v(3, 22 * H, 2 * H)),
    "unresolved-intents-count-towards-the-cap": Row(
        stored=(v(1, 23 * H, H), v(2, 22 * H, 2 * H)), azure=None, intents=(intent("i9", H),)
    ),
    "this-plans-removals-make-room": replace(
        listed(v(1, 25 * H, -M), v(2, 23 * H, H), v(3, 22 * H, 2 * H)),
        expect=("remove k1", "destroy v1", "create"),
    ),
    "foreign-credentials-do-not-count": replace(
        listed(v(1, 23 * H, H), v(2, 22 * H, 2 * H), extra=(foreign("ky"), foreign("kz"))),
        expect=("create",),
    ),
    # -- order
    "removals-then-destroys-then-clears-then-create": Row(
        stored=(v(3, 26 * H, -2 * H), v(1, 25 * H, -H), v(2, 22 * H, 90 * M)),
        azure=(
            orphan("kb", "ib"),
            on_azure(v(3, 26 * H, -2 * H)),
            orphan("ka", "ia"),
            on_azure(v(1, 25 * H, -H)),
            on_azure(v(2, 22 * H, 90 * M)),
        ),
        intents=(intent("iz", H), intent("ib", 20 * M), intent("i2", M)),
        expect=(
            "remove k1",
            "remove k3",
            "remove ka",
            "remove kb",
            "destroy v1",
            "destroy v3",
            "clear i2",
            "clear ib",
            "clear iz",
            "create",
        ),
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_rule(row: Row) -> None:
    state = IntegrationState("acme", row.stored, row.azure, row.intents)
    actions = plan(state, POLICY, NOW)
    assert tuple(render(a) for a in actions) == row.expect
    assert all(a.reason for a in actions)


def test_reasons_carry_no_secret_material() -> None:
    state = IntegrationState("acme", (DUE,), (on_azure(DUE), orphan("kx", "ix")), ())
    for action in plan(state, POLICY, NOW):
        assert "secret=" not in action.reason.lower()


REPLAN = {
    "nothing-stored-nothing-pending": (Row(), None),
    "young-intent-retried-when-it-times-out": (
        Row(intents=(intent("i9", 5 * M),)),
        NOW + 10 * M,
    ),
    "fresh-secret-checked-against-azure-after-missing-grace": (
        listed(v(1, 0 * M, 24 * H)),
        NOW + H,
    ),
    "settled-secret-wakes-at-its-renewal-point": (listed(FRESH), NOW + 21 * H),
    "secret-in-renew-window-wakes-at-expiry": (listed(DUE), NOW + 2 * H - M),
}


@pytest.mark.parametrize(("row", "expected"), REPLAN.values(), ids=REPLAN.keys())
def test_replan_at(row: Row, expected: datetime | None) -> None:
    state = IntegrationState("acme", row.stored, row.azure, row.intents)
    assert replan_at(state, POLICY, NOW) == expected
