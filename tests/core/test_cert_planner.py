"""The management-certificate planner, one row per rule.

Each row is Vault's certificates, the management application's key
credentials (None when Graph failed) and pending intents at ``NOW``; it
expects the active version (or ``stuck``) and the exact actions, written as
``remove <keyId>``, ``destroy v<n>``, ``clear <intent>`` and ``renew``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.certs.planner import (
    CertAction,
    CertificatePlan,
    CertificateState,
    RemoveKey,
    RenewCertificate,
    Stuck,
    plan,
)
from sidecar.lifecycle.actions import ClearIntent, DestroyStored
from sidecar.model import AzureKey, Intent, IntentKind, StoredCertificate, credential_display_name
from sidecar.ready import choose_active
from sidecar.timing import TimingPolicy

POLICY = TimingPolicy()  # 30 d lifetime, renew 7 d before, switch 10 min after upload
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
D = timedelta(days=1)


def cert(version: int, uploaded: timedelta, left: timedelta) -> StoredCertificate:
    """Certificate ``v<n>`` (key ``k<n>``, intent ``c<n>``) uploaded ``uploaded`` ago."""
    return StoredCertificate(
        version,
        f"k{version}",
        f"TP{version}",
        f"c{version}",
        not_before=NOW - uploaded - M,
        not_after=NOW + left,
        uploaded_at=NOW - uploaded,
    )


def key(c: StoredCertificate, name: str | None = None) -> AzureKey:
    display = name or credential_display_name(c.intent_id)
    return AzureKey(c.key_id, c.thumbprint, display, c.not_before, c.not_after)


def orphan(key_id: str, intent_id: str) -> AzureKey:
    return AzureKey(key_id, "TPX", credential_display_name(intent_id), NOW, NOW + 30 * D)


def intent(intent_id: str, age: timedelta) -> Intent:
    return Intent(intent_id, NOW - age, IntentKind.CERTIFICATE)


def render(action: CertAction) -> str:
    match action:
        case RemoveKey(key_id=key_id):
            return f"remove {key_id}"
        case DestroyStored(version=version):
            return f"destroy v{version}"
        case ClearIntent(intent_id=intent_id):
            return f"clear {intent_id}"
        case RenewCertificate():
            return "renew"


@dataclass(frozen=True)
class Row:
    stored: tuple[StoredCertificate, ...]
    azure: tuple[AzureKey, ...] | None
    active: int | str  # version, or "stuck"
    expect: tuple[str, ...] = ()
    intents: tuple[Intent, ...] = ()


def on_azure(*certs: StoredCertificate, extra: tuple[AzureKey, ...] = ()) -> tuple[AzureKey, ...]:
    return tuple(key(c) for c in certs) + extra


SETTLED = cert(1, 10 * D, 20 * D)
DUE = cert(1, 23 * D + M, 7 * D - M)
SUCCESSOR = cert(2, 9 * M, 30 * D)  # not yet replicated long enough
SWITCHED = cert(2, 10 * M, 30 * D)
EXPIRED = cert(1, 31 * D, -D)

ROWS: dict[str, Row] = {
    # -- which certificate authenticates
    "nothing-stored-is-stuck": Row((), None, "stuck"),
    "every-certificate-expired-is-stuck": Row((EXPIRED,), on_azure(EXPIRED), "stuck"),
    "settled-certificate-is-active-nothing-to-do": Row((SETTLED,), on_azure(SETTLED), 1),
    "bootstrap-certificate-used-at-once-when-it-is-the-only-one": Row(
        (cert(1, M, 30 * D),), on_azure(cert(1, M, 30 * D)), 1
    ),
    "successor-unused-until-switch-delay-passes": Row(
        (DUE, SUCCESSOR), on_azure(DUE, SUCCESSOR), 1
    ),
    "successor-active-after-switch-delay-old-key-removed": Row(
        (DUE, SWITCHED), on_azure(DUE, SWITCHED), 2, ("remove k1", "destroy v1")
    ),
    "not-yet-valid-certificate-is-not-used": Row(
        (SETTLED, replace(SWITCHED, not_before=NOW + M)), on_azure(SETTLED, SWITCHED), 1
    ),
    # -- renewal
    "renew-when-less-than-renew-before-left": Row((DUE,), on_azure(DUE), 1, ("renew",)),
    "renew-exactly-at-renew-before": Row(
        (cert(1, 23 * D, 7 * D),), on_azure(cert(1, 23 * D, 7 * D)), 1, ("renew",)
    ),
    "no-renewal-one-second-before-the-window": Row(
        (cert(1, 23 * D, 7 * D + S),), on_azure(cert(1, 23 * D, 7 * D + S)), 1
    ),
    "no-renewal-while-a-fresh-successor-propagates": Row((DUE, SUCCESSOR), on_azure(DUE), 1),
    "renewal-waits-for-a-young-intent": Row(
        (DUE,), on_azure(DUE), 1, intents=(intent("c9", 14 * M),)
    ),
    "renewal-after-the-intent-timed-out-unseen": Row(
        (DUE,), on_azure(DUE), 1, ("clear c9", "renew"), (intent("c9", 15 * M),)
    ),
    "renew-when-graph-listing-fails": Row((DUE,), None, 1, ("renew",)),
    # -- retiring keys
    "old-key-removed-blind-when-listing-fails": Row(
        (DUE, SWITCHED), None, 2, ("remove k1", "destroy v1")
    ),
    "old-key-already-gone-only-destroyed": Row(
        (DUE, SWITCHED), on_azure(SWITCHED), 2, ("destroy v1",)
    ),
    "expired-key-removed-even-before-successor-switches": Row(
        (EXPIRED, SUCCESSOR), on_azure(EXPIRED, SUCCESSOR), 2, ("remove k1", "destroy v1")
    ),
    "active-key-kept-even-when-listing-lacks-it": Row((SETTLED,), (), 1),
    "hand-named-bootstrap-key-is-rotated-out-too": Row(
        (DUE, SWITCHED), (key(DUE, "bootstrap"), key(SWITCHED)), 2, ("remove k1", "destroy v1")
    ),
    # -- reconciliation
    "orphan-key-removed": Row(
        (SETTLED,), on_azure(SETTLED, extra=(orphan("kx", "cx"),)), 1, ("remove kx",)
    ),
    "orphan-of-timed-out-intent-removed-and-intent-cleared": Row(
        (SETTLED,),
        on_azure(SETTLED, extra=(orphan("kx", "cx"),)),
        1,
        ("remove kx", "clear cx"),
        (intent("cx", 15 * M),),
    ),
    "key-of-an-intent-in-flight-left-to-its-writer": Row(
        (SETTLED,),
        on_azure(SETTLED, extra=(orphan("kx", "cx"),)),
        1,
        (),
        (intent("cx", 3 * M),),
    ),
    "orphan-cleared-then-renewal-goes-ahead": Row(
        (DUE,),
        on_azure(DUE, extra=(orphan("kx", "cx"),)),
        1,
        ("remove kx", "clear cx", "renew"),
        (intent("cx", 20 * M),),
    ),
    "someone-elses-key-left-alone": Row(
        (SETTLED,), on_azure(SETTLED, extra=(AzureKey("kz", "TPZ", "ops laptop", NOW, NOW),)), 1
    ),
    "intent-whose-certificate-is-stored-cleared": Row(
        (DUE, SUCCESSOR), None, 1, ("clear c2",), (intent("c2", 9 * M),)
    ),
    "young-unseen-intent-left-alone": Row(
        (SETTLED,), on_azure(SETTLED), 1, intents=(intent("c9", 14 * M),)
    ),
    "old-unseen-intent-cleared": Row(
        (SETTLED,), on_azure(SETTLED), 1, ("clear c9",), (intent("c9", 15 * M),)
    ),
    "old-intent-kept-while-graph-fails": Row((SETTLED,), None, 1, intents=(intent("c9", D),)),
    "unstored-successor-within-lag-kept": Row((DUE, SUCCESSOR), on_azure(DUE), 1),
    "stored-certificate-gone-from-azure-past-missing-grace-destroyed": Row(
        (SETTLED, replace(cert(2, 60 * M, 30 * D), not_before=NOW + M)),
        on_azure(SETTLED),
        1,
        ("destroy v2",),
    ),
    # -- order
    "removals-then-destroys-then-clears-then-renew": Row(
        (cert(3, 40 * D, -10 * D), cert(1, 31 * D, -D), cert(2, 23 * D, 6 * D)),
        on_azure(
            cert(3, 40 * D, -10 * D),
            cert(1, 31 * D, -D),
            cert(2, 23 * D, 6 * D),
            extra=(orphan("kb", "cb"), orphan("ka", "ca")),
        ),
        2,
        (
            "remove k1",
            "remove k3",
            "remove ka",
            "remove kb",
            "destroy v1",
            "destroy v3",
            "clear c2",
            "clear cb",
            "clear cz",
            "renew",
        ),
        (intent("cz", D), intent("cb", 20 * M), intent("c2", M)),
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_rule(row: Row) -> None:
    outcome = plan(CertificateState(row.stored, row.azure, row.intents), POLICY, NOW)
    if row.active == "stuck":
        assert isinstance(outcome, Stuck)
        assert "by hand" in outcome.reason
        return
    assert isinstance(outcome, CertificatePlan)
    assert outcome.active.version == row.active
    assert tuple(render(a) for a in outcome.actions) == row.expect
    assert all(a.reason for a in outcome.actions)


def test_active_and_newer_keys_are_never_removed() -> None:
    """Over a whole renewal cycle, minute by minute, the key in use survives each plan."""
    old, new = cert(1, 23 * D, 7 * D), cert(2, -M, 30 * D)
    for minute in range(0, 120):
        now = NOW + minute * M
        stored = (old, new) if now >= new.uploaded_at else (old,)
        outcome = plan(CertificateState(stored, on_azure(*stored), ()), POLICY, now)
        assert isinstance(outcome, CertificatePlan)
        removed = {a.key_id for a in outcome.actions if isinstance(a, RemoveKey)}
        assert outcome.active.key_id not in removed
        assert "k2" not in removed
        expected = 2 if now >= new.uploaded_at + POLICY.cert_switch_delay else 1
        assert outcome.active.version == expected


def test_choose_active_prefers_newest_replicated() -> None:
    stored = [SETTLED, replace(SWITCHED, version=3, key_id="k3"), SUCCESSOR]
    chosen = choose_active(stored, NOW, POLICY)
    assert chosen is not None and chosen.version == 3
    assert choose_active([EXPIRED], NOW, POLICY) is None
