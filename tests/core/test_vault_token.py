"""The rule of when to renew a Vault token, log in again, or report it: a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sidecar.vault_token import Step, TokenView, decide, was_capped

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def view(ttl: int, renewable: bool = True, capped: bool = False) -> TokenView:
    return TokenView(seen_at=T0, ttl=ttl * S, renewable=renewable, capped=capped)


@pytest.mark.parametrize(
    ("token", "elapsed", "can_login", "step", "due_after"),
    [
        # renewable, max TTL far: renew at two thirds of the TTL
        (view(30), 0, True, Step.RENEW, 20),
        (view(30), 19, True, Step.RENEW, 20),
        (view(30), 21, False, Step.RENEW, 20),
        # a renewal was capped (max TTL near): log in again at once, if we can
        (view(10, capped=True), 0, True, Step.LOGIN, 0),
        (view(10, capped=True), 3, True, Step.LOGIN, 3),
        # ... and report it otherwise, from two thirds of what is left
        (view(9, capped=True), 0, False, Step.EXPIRING, 6),
        # not renewable at all: log in again at two thirds, or report then
        (view(30, renewable=False), 0, True, Step.LOGIN, 20),
        (view(30, renewable=False), 0, False, Step.EXPIRING, 20),
        # expired already (a paused process): log in at once, or report
        (view(30), 31, True, Step.LOGIN, 31),
        (view(30), 31, False, Step.EXPIRING, 31),
        # never expires (root, ttl 0): nothing to do for a while
        (view(0, renewable=False), 0, False, Step.WAIT, 300),
    ],
)
def test_decide(
    token: TokenView, elapsed: int, can_login: bool, step: Step, due_after: int
) -> None:
    decision = decide(token, T0 + elapsed * S, can_login)
    assert decision.step is step
    assert decision.at == T0 + due_after * S


def test_an_unrenewable_token_is_reported_with_its_expiry_and_what_to_do() -> None:
    reason = decide(view(30, renewable=False), T0, False).reason
    assert "2026-03-01T08:00:30Z" in reason
    assert "token file" in reason and "AppRole" in reason


@pytest.mark.parametrize(
    ("asked", "granted", "capped"),
    [(30, 30, False), (30, 29.5, False), (30, 28, True), (30, 2, True), (0, 5, False)],
)
def test_a_renewal_granting_less_than_asked_hit_the_maximum(
    asked: float, granted: float, capped: bool
) -> None:
    assert was_capped(asked * S, granted * S) is capped
