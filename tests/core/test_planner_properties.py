"""The planner over 30 simulated days of random weather (see ``simulation.py``).

Properties, checked inside the simulation:

* once the first secret has propagated, a ready secret that every replica
  knows exists at every instant;
* Azure never holds more than three of our secrets;
* every live stored secret is on the application;
* an orphan is gone by the end of the first completed tick whose listing
  must have shown it; someone else's credentials are never touched.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.lifecycle.actions import ClearIntent, Create, DestroyStored, RemoveFromAzure
from sidecar.model import AzureCredential, Intent, StoredCredential, credential_display_name
from sidecar.ready import Ready, choose_ready
from sidecar.rotation.planner import IntegrationState, plan, replan_at
from sidecar.timing import TimingPolicy

from .simulation import Weather, simulate

H = timedelta(hours=1)
M = timedelta(minutes=1)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2**32 - 1)


@FAST
@given(seed=seeds, listing_failure=st.floats(0.0, 0.5), fraction=st.floats(0.25, 1.0))
def test_default_policy_on_plain_ticks_always_has_a_ready_secret(
    seed: int, listing_failure: float, fraction: float
) -> None:
    """No crashes, ticks at most ``tick`` apart: the TimingPolicy inequality suffices."""
    weather = Weather(seed, listing_failure=listing_failure, min_tick_fraction=fraction)
    report = simulate(TimingPolicy(), weather)
    assert report.created >= 30


@FAST
@given(
    seed=seeds,
    renew_hours=st.sampled_from([2, 3, 4]),
    listing_failure=st.floats(0.0, 0.3),
    crash=st.floats(0.0, 0.6),
    outage=st.floats(0.0, 0.3),
)
def test_crashes_outages_and_graph_failures_are_absorbed(
    seed: int, renew_hours: int, listing_failure: float, crash: float, outage: float
) -> None:
    """A daemon that also wakes at ``replan_at`` survives a crash per tick and missed ticks.

    The renewal may be late by an outage plus one crashed attempt retried
    when its intent times out (at most ``intent_timeout``); the outage is
    bounded so that this stays within ``secret_renew_before -
    propagation_delay - ready_safety_margin``.
    """
    policy = TimingPolicy(secret_renew_before=renew_hours * H)
    weather = Weather(
        seed,
        listing_failure=listing_failure,
        crash=crash,
        outage=outage,
        max_outage=policy.secret_renew_before - H,
        honour_replan=True,
        foreign=2,
    )
    simulate(policy, weather)


def test_every_minute_of_thirty_days_on_hourly_ticks() -> None:
    report = simulate(TimingPolicy(), Weather(seed=7, listing_failure=0.2))
    history = report.history
    first_ready = history[0][1][0].created + TimingPolicy().propagation_delay
    index, minute = 0, first_ready
    while minute < history[-1][0]:
        while index + 1 < len(history) and history[index + 1][0] <= minute:
            index += 1
        assert isinstance(choose_ready(history[index][1], minute, TimingPolicy()), Ready), minute
        minute += M


# -- plan() as a function -------------------------------------------------------

NOW = datetime(2030, 6, 1, tzinfo=UTC)
minutes = st.integers(-48 * 60, 48 * 60).map(lambda n: n * M)


@st.composite
def states(draw: st.DrawFn) -> IntegrationState:
    stored = []
    for version in range(1, draw(st.integers(0, 5)) + 1):
        created = NOW - abs(draw(minutes))
        stored.append(
            StoredCredential(version, f"k{version}", f"i{version}", created, created + 24 * H)
        )
    intents = [Intent(f"p{n}", NOW - abs(draw(minutes))) for n in range(draw(st.integers(0, 3)))]
    listing: list[AzureCredential] | None = None
    if draw(st.booleans()):
        listing = [
            AzureCredential(c.key_id, credential_display_name(c.intent_id), c.created, c.expires)
            for c in stored
            if draw(st.booleans())
        ]
        listing += [
            AzureCredential(f"o{i.intent_id}", credential_display_name(i.intent_id), NOW, NOW)
            for i in intents
            if draw(st.booleans())
        ]
        if draw(st.booleans()):
            listing.append(AzureCredential("foreign", "manual", NOW, NOW))
        listing = draw(st.permutations(listing))
    return IntegrationState(
        "p",
        tuple(draw(st.permutations(stored))),
        None if listing is None else tuple(listing),
        tuple(draw(st.permutations(intents))),
    )


@settings(max_examples=200, deadline=None)
@given(state=states())
def test_plan_is_deterministic_and_ordered(state: IntegrationState) -> None:
    actions = plan(state, TimingPolicy(), NOW)
    shuffled = random.Random(0)
    again = IntegrationState(
        state.name,
        tuple(shuffled.sample(state.stored, len(state.stored))),
        state.azure,
        tuple(shuffled.sample(state.intents, len(state.intents))),
    )
    assert plan(again, TimingPolicy(), NOW) == actions
    kinds = [type(a) for a in actions]
    order: list[type[object]] = [RemoveFromAzure, DestroyStored, ClearIntent, Create]
    assert kinds == sorted(kinds, key=order.index)
    assert kinds.count(Create) <= 1
    assert all(getattr(a, "key_id", None) != "foreign" for a in actions)


@settings(max_examples=200, deadline=None)
@given(state=states(), offset=st.integers(1, 48 * 60))
def test_plan_does_not_change_before_replan_at(state: IntegrationState, offset: int) -> None:
    policy = TimingPolicy()
    wake = replan_at(state, policy, NOW)
    later = NOW + offset * M
    if wake is None or later < wake:
        assert plan(state, policy, later) == plan(state, policy, NOW)
