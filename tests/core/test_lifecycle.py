"""The life cycle every credential kind shares, one row per rule.

The kind here is made up ("token" in Vault, "grant" on the application), so
the rows speak of the shared rules only: each is a view (held versions,
Graph's listing or None when Graph failed, pending intents, what the kind
retires, versions in use) at ``NOW`` under the default policy, and the exact
actions expected, written as ``remove <keyId>``, ``destroy v<n>`` (with
``?`` when it waits on confirming reads), ``clear <intent>`` and ``create``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.lifecycle.actions import Action, ClearIntent, Create, DestroyStored, RemoveFromAzure
from sidecar.lifecycle.kind import Held, Kind, Retirement, View, latest_accepted, latest_expiry
from sidecar.lifecycle.plan import plan
from sidecar.lifecycle.reconcile import Verdict, confirm_destroy, reconcile
from sidecar.model import AzureCredential, Intent, credential_display_name
from sidecar.timing import TimingPolicy

POLICY = TimingPolicy()  # intent timeout 15 min, missing grace 1 h
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
RENEW_BEFORE = 6 * H

TOKEN = Kind(
    stored="token",
    listed="grant",
    renew_before=lambda _policy: RENEW_BEFORE,
    newest=latest_expiry,
)
CAPPED = replace(TOKEN, max_ours=2, confirm_reads=2)


def h(version: int, age: timedelta = 2 * H, left: timedelta = 22 * H) -> Held:
    """Held ``v<n>`` (keyId ``k<n>``, intent ``i<n>``) accepted ``age`` ago."""
    return Held(version, f"k{version}", f"i{version}", NOW - age, NOW + left)


def on_azure(held: Held) -> AzureCredential:
    return AzureCredential(held.key_id, credential_display_name(held.intent_id), NOW, NOW)


def orphan(key_id: str, intent_id: str) -> AzureCredential:
    return AzureCredential(key_id, credential_display_name(intent_id), NOW, NOW)


def foreign(key_id: str) -> AzureCredential:
    return AzureCredential(key_id, "made by hand", NOW, NOW)


def intent(intent_id: str, age: timedelta) -> Intent:
    return Intent(intent_id, NOW - age)


def retire(version: int) -> Retirement:
    return Retirement(version, f"token v{version} retired", "retired")


def render(action: Action) -> str:
    match action:
        case RemoveFromAzure(key_id=key_id):
            return f"remove {key_id}"
        case DestroyStored(version=version, confirm_reads=reads):
            return f"destroy v{version}" + ("?" * bool(reads))
        case ClearIntent(intent_id=intent_id):
            return f"clear {intent_id}"
        case Create():
            return "create"


@dataclass(frozen=True)
class Row:
    held: tuple[Held, ...] = ()
    azure: tuple[AzureCredential, ...] | None = ()
    intents: tuple[Intent, ...] = ()
    retiring: tuple[Retirement, ...] = ()
    keep: frozenset[int] = frozenset()
    kind: Kind = TOKEN
    expect: tuple[str, ...] = ()

    def view(self) -> View:
        return View("acme", self.held, self.azure, self.intents, self.retiring, self.keep)


def listed(*held: Held, extra: tuple[AzureCredential, ...] = ()) -> Row:
    """Shortcut: every given version is held and visible on the application."""
    return Row(held=held, azure=tuple(on_azure(c) for c in held) + extra)


FRESH = h(1)
DUE = h(1, age=18 * H, left=RENEW_BEFORE)
KEYLESS = replace(h(2), key_id="")

RECONCILE: dict[str, Row] = {
    "nothing-held-nothing-listed": Row(),
    # -- retired versions
    "retired-and-listed-removed-and-destroyed": replace(
        listed(FRESH, h(2)), retiring=(retire(1),), expect=("remove k1", "destroy v1")
    ),
    "retired-and-unlisted-only-destroyed": Row(
        held=(FRESH, h(2)),
        azure=(on_azure(h(2)),),
        retiring=(retire(1),),
        expect=("destroy v1",),
    ),
    "retired-removed-blind-when-graph-fails": Row(
        held=(FRESH,), azure=None, retiring=(retire(1),), expect=("remove k1", "destroy v1")
    ),
    "retired-with-unknown-key-waits-for-a-listing": Row(
        held=(KEYLESS,), azure=None, retiring=(retire(2),)
    ),
    "retired-with-unknown-key-destroyed-once-listed": Row(
        held=(KEYLESS,), azure=(), retiring=(retire(2),), expect=("destroy v2",)
    ),
    # -- intents
    "intent-whose-version-is-held-cleared": replace(
        listed(FRESH), intents=(intent("i1", M),), expect=("clear i1",)
    ),
    "intent-whose-version-is-held-cleared-even-when-graph-fails": replace(
        listed(FRESH), azure=None, intents=(intent("i1", M),), expect=("clear i1",)
    ),
    "young-unseen-intent-left-alone": replace(listed(FRESH), intents=(intent("i9", 14 * M),)),
    "old-unseen-intent-cleared": replace(
        listed(FRESH), intents=(intent("i9", 15 * M),), expect=("clear i9",)
    ),
    "old-intent-kept-while-graph-fails": replace(
        listed(FRESH), azure=None, intents=(intent("i9", 2 * H),)
    ),
    # -- orphans
    "orphan-without-intent-removed": replace(
        listed(FRESH, extra=(orphan("kx", "ix"),)), expect=("remove kx",)
    ),
    "orphan-of-timed-out-intent-removed-and-intent-cleared": replace(
        listed(FRESH, extra=(orphan("kx", "ix"),)),
        intents=(intent("ix", 15 * M),),
        expect=("remove kx", "clear ix"),
    ),
    "grant-of-an-intent-in-flight-left-to-its-writer": replace(
        listed(FRESH, extra=(orphan("kx", "ix"),)), intents=(intent("ix", 14 * M),)
    ),
    "someone-elses-grant-left-alone": listed(FRESH, extra=(foreign("kz"),)),
    "orphans-are-not-judged-when-graph-fails": Row(held=(FRESH,), azure=None),
    # -- missing
    "held-unlisted-past-missing-grace-destroyed": Row(
        held=(FRESH, h(2, age=H)), azure=(on_azure(FRESH),), expect=("destroy v2",)
    ),
    "held-unlisted-within-missing-grace-kept": Row(
        held=(FRESH, h(2, age=H - S)), azure=(on_azure(FRESH),)
    ),
    "held-unlisted-in-use-kept": Row(held=(FRESH,), azure=(), keep=frozenset({1})),
    "missing-destroy-waits-on-confirming-reads-when-the-kind-asks": Row(
        held=(FRESH,), azure=(), kind=CAPPED, expect=("destroy v1?",)
    ),
    "retired-destroy-never-waits-on-confirming-reads": Row(
        held=(FRESH,), azure=(), kind=CAPPED, retiring=(retire(1),), expect=("destroy v1",)
    ),
    # -- order
    "removals-then-destroys-then-clears": Row(
        held=(h(3), h(1), h(2)),
        azure=(orphan("kb", "ib"), on_azure(h(3)), orphan("ka", "ia"), on_azure(h(1))),
        intents=(intent("iz", H), intent("ib", 20 * M), intent("i2", M)),
        retiring=(retire(3), retire(1)),
        expect=(
            "remove k1",
            "remove k3",
            "remove ka",
            "remove kb",
            "destroy v1",
            "destroy v2",
            "destroy v3",
            "clear i2",
            "clear ib",
            "clear iz",
        ),
    ),
}


@pytest.mark.parametrize("row", RECONCILE.values(), ids=RECONCILE.keys())
def test_reconcile(row: Row) -> None:
    actions = reconcile(row.kind, row.view(), POLICY, NOW).actions()
    assert tuple(render(a) for a in actions) == row.expect
    assert all(a.reason for a in actions)


def test_reasons_name_the_kind() -> None:
    row = replace(
        listed(FRESH, extra=(orphan("kx", "ix"),)),
        intents=(intent("ix", H), intent("i1", M), intent("i9", H)),
    )
    reasons = {a.reason for a in reconcile(TOKEN, row.view(), POLICY, NOW).actions()}
    assert reasons == {
        "orphan of intent ix: Vault never stored it",
        "its grant is orphaned and being removed",
        "its token is stored; the clear was interrupted",
        "no grant appeared in Azure; abandoned",
    }


RENEWAL: dict[str, Row] = {
    "nothing-live-creates-at-once": Row(expect=("create",)),
    "nothing-live-creates-even-when-graph-fails": Row(azure=None, expect=("create",)),
    "fresh-version-nothing-to-do": listed(FRESH),
    "renew-exactly-at-renew-before": replace(listed(DUE), expect=("create",)),
    "no-renewal-one-second-before-the-window": listed(h(1, left=RENEW_BEFORE + S)),
    "renewal-judged-by-the-kinds-newest": listed(h(1, left=H), h(2, age=H)),
    "a-retired-version-is-not-live": replace(
        listed(h(2, age=H)), retiring=(retire(2),), expect=("remove k2", "destroy v2", "create")
    ),
    "renewal-waits-for-a-young-intent": replace(listed(DUE), intents=(intent("i9", 14 * M),)),
    "intent-cleared-in-this-plan-does-not-block": replace(
        listed(DUE), intents=(intent("i9", 15 * M),), expect=("clear i9", "create")
    ),
    "no-cap-unless-the-kind-sets-one": replace(
        listed(DUE, h(2, left=H), h(3, left=H)), expect=("create",)
    ),
    "cap-counts-held-versions": replace(listed(DUE, h(2, left=H)), kind=CAPPED),
    "cap-counts-open-intents-when-graph-fails": Row(
        held=(DUE,), azure=None, intents=(intent("i9", H),), kind=CAPPED
    ),
    "cap-ignores-someone-elses-grants": replace(
        listed(DUE, extra=(foreign("kz"),)), kind=CAPPED, expect=("create",)
    ),
    "cap-counts-room-made-by-this-plan": replace(
        listed(DUE, extra=(orphan("kx", "ix"),)), kind=CAPPED, expect=("remove kx", "create")
    ),
}


@pytest.mark.parametrize("row", RENEWAL.values(), ids=RENEWAL.keys())
def test_renewal(row: Row) -> None:
    actions = plan(row.kind, row.view(), POLICY, NOW)
    assert tuple(render(a) for a in actions) == row.expect


def test_creation_reason_names_the_subject_or_the_newest() -> None:
    [create] = plan(TOKEN, Row().view(), POLICY, NOW)
    assert create.reason == "acme has no live token"
    [create] = plan(TOKEN, listed(DUE).view(), POLICY, NOW)
    assert create.reason == f"newest token v1 expires {DUE.expires.isoformat()}"


def test_newest_by_expiry_or_by_acceptance() -> None:
    early_long = h(1, age=3 * H, left=30 * H)
    late_short = h(2, age=H, left=20 * H)
    assert latest_expiry([early_long, late_short]) == early_long
    assert latest_accepted([early_long, late_short]) == late_short
    assert latest_expiry([]) is None


KEY = DestroyStored(7, "k7", "no longer on the application; removed outside us", 2)
LIVE = NOW + H
SHOWN = frozenset({"k7", "k8"})
LACKING = frozenset({"k8"})

CONFIRM: dict[str, tuple[datetime | None, tuple[frozenset[str] | None, ...], Verdict]] = {
    "no-longer-held-destroyed-without-reading": (None, (), Verdict.DESTROY),
    "expired-destroyed-without-reading": (NOW, (), Verdict.DESTROY),
    "live-asks-for-a-first-read": (LIVE, (), Verdict.READ_AGAIN),
    "lacking-once-asks-again": (LIVE, (LACKING,), Verdict.READ_AGAIN),
    "lacking-on-every-read-destroyed": (LIVE, (LACKING, LACKING), Verdict.DESTROY),
    "shown-on-a-read-kept": (LIVE, (LACKING, SHOWN), Verdict.KEEP),
    "shown-at-once-kept": (LIVE, (SHOWN,), Verdict.KEEP),
    "a-failed-read-cannot-confirm": (LIVE, (None,), Verdict.KEEP),
}


@pytest.mark.parametrize(("expires", "reads", "verdict"), CONFIRM.values(), ids=CONFIRM.keys())
def test_confirm_destroy(
    expires: datetime | None, reads: tuple[frozenset[str] | None, ...], verdict: Verdict
) -> None:
    assert confirm_destroy(KEY, expires, NOW, reads) is verdict
