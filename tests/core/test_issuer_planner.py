"""The signing-key planner, one row per rule, and a 120-day run against its promises.

Each row is the Transit key's versions (number, created how long before
``NOW``) under a policy; it expects the signer, the published versions,
what retires, whether a rotation is due, and when a signer will be ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from sidecar.errors import ConfigError
from sidecar.issuer.planner import ENTRA_MAX_KEYS, IssuerPolicy, KeyVersion, plan

NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
POLICY = IssuerPolicy()  # publish 24 h ahead, tokens 10 min, skew 5 min, rotate every 30 d
TAIL = POLICY.token_lifetime + POLICY.clock_skew  # 15 min


def versions(*ages: timedelta) -> list[KeyVersion]:
    """Versions 1..n created ``ages`` before NOW."""
    return [KeyVersion(i + 1, NOW - age) for i, age in enumerate(ages)]


@dataclass(frozen=True)
class Row:
    name: str
    ages: tuple[timedelta, ...]
    signer: int | None
    published: tuple[int, ...]
    retire_below: int | None = None
    rotate: bool = False
    ready_in: timedelta | None = None  # ready_at - NOW when nothing signs
    policy: IssuerPolicy = field(default=POLICY)


ROWS = [
    Row("no key: nothing signs, a key is due", (), None, (), rotate=True),
    Row("a new key is published, not yet signing", (0 * S,), None, (1,), ready_in=24 * H),
    Row("a key one second short of publish_ahead", (24 * H - S,), None, (1,), ready_in=S),
    Row("a key published for publish_ahead signs", (24 * H,), 1, (1,)),
    Row("a rotated version is published before it signs", (10 * D, H), 1, (1, 2)),
    Row("the new version signs once published long enough", (10 * D, 24 * H), 2, (1, 2)),
    Row("the old version stays while its last tokens live", (10 * D, 24 * H + TAIL - S), 2, (1, 2)),
    Row("the old version retires once they have expired", (10 * D, 24 * H + TAIL), 2, (2,), 2),
    Row("three versions: oldest retired, middle signs", (60 * D, 30 * D, H), 2, (2, 3), 2),
    Row("two eligible versions: the newest signs", (60 * D, 25 * H, 24 * H + 10 * M), 3, (2, 3), 2),
    Row("rotation is due rotation_period after the newest", (30 * D,), 1, (1,), rotate=True),
    Row("and not a second earlier", (30 * D - S,), 1, (1,)),
    Row(
        "no rotation while the JWKS is full",
        (25 * H + 30 * M, 25 * H),
        2,
        (1, 2),
        policy=IssuerPolicy(
            publish_ahead=24 * H, token_lifetime=2 * H, rotation_period=25 * H, max_published=2
        ),
    ),
    Row(
        "publish_ahead 0: a version signs the moment it exists",
        (2 * D, 0 * S),
        2,
        (1, 2),
        policy=IssuerPolicy(publish_ahead=timedelta(0)),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_plan(row: Row) -> None:
    result = plan(versions(*row.ages), row.policy, NOW)
    assert result.signer == row.signer
    assert result.published == row.published
    assert result.retire_below == row.retire_below
    assert result.rotate is row.rotate
    assert result.ready_at == (None if row.ready_in is None else NOW + row.ready_in)


def test_creation_times_out_of_order_never_retire_the_signer() -> None:
    # v2 claims to be newer than v3 (a clock went back): v3 signs, v2 never could.
    odd = [KeyVersion(1, NOW - 60 * D), KeyVersion(2, NOW - H), KeyVersion(3, NOW - 40 * D)]
    result = plan(odd, POLICY, NOW)
    assert result.signer == 3
    assert result.published == (3,)
    assert result.retire_below == 3


def test_the_plan_says_when_it_next_changes() -> None:
    result = plan(versions(10 * D, H), POLICY, NOW)
    assert result.next_change == NOW + 23 * H  # v2 becomes eligible
    assert result.next_retirement == NOW + 23 * H + TAIL  # then v1's tokens expire
    assert result.rotation_due == NOW - H + 30 * D
    assert plan(versions(10 * D, H), POLICY, NOW + 23 * H).signer == 2


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(versions(D), POLICY, datetime(2030, 6, 1, 12))


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"publish_ahead": -S}, "issuer.publish_ahead"),
        ({"token_lifetime": timedelta(0)}, "issuer.token_lifetime"),
        ({"clock_skew": -S}, "issuer.clock_skew"),
        ({"rotation_period": 24 * H}, "issuer.rotation_period"),
        ({"max_published": 1}, "issuer.max_published"),
        ({"max_published": ENTRA_MAX_KEYS + 1}, "issuer.max_published"),
    ],
)
def test_policy_refuses_what_breaks_the_rules(changes: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        replace(POLICY, **changes)  # type: ignore[arg-type]
    assert caught.value.key == key


@dataclass
class Signed:
    version: int
    expires: datetime


@pytest.mark.parametrize(
    "policy",
    [
        POLICY,
        IssuerPolicy(publish_ahead=2 * H, token_lifetime=H, rotation_period=3 * H),
        IssuerPolicy(publish_ahead=timedelta(0), token_lifetime=30 * M, rotation_period=H),
    ],
    ids=["defaults", "fast-rotation", "no-publish-ahead"],
)
def test_120_days_of_signing_keep_the_promises(policy: IssuerPolicy) -> None:
    """A daemon obeying the plan every 10 minutes, a token signed at each step.

    * a version signs only after it was published (present in Transit) for publish_ahead;
    * every version that signed a token still valid (plus skew) is published;
    * the JWKS never exceeds max_published; rotations happen.
    """
    start = NOW
    transit: dict[int, datetime] = {1: start}  # version -> created; retired ones removed
    first_seen: dict[int, datetime] = {1: start}
    signed: list[Signed] = []
    now = start
    step = 10 * M
    while now < start + 120 * D:
        result = plan([KeyVersion(v, c) for v, c in transit.items()], policy, now)
        if result.rotate:
            version = max(first_seen) + 1
            transit[version] = now
            first_seen[version] = now
            result = plan([KeyVersion(v, c) for v, c in transit.items()], policy, now)
        if result.retire_below is not None:
            for version in [v for v in transit if v < result.retire_below]:
                del transit[version]
        published = set(result.published)
        assert published == set(transit)
        assert len(published) <= policy.max_published
        signed = [t for t in signed if t.expires + policy.clock_skew > now]
        for token in signed:
            assert token.version in published, (now, token)
        if result.signer is not None:
            assert now - first_seen[result.signer] >= policy.publish_ahead
            signed.append(Signed(result.signer, now + policy.token_lifetime))
        else:
            assert now < start + policy.publish_ahead
        now += step
    assert len(first_seen) >= 4
