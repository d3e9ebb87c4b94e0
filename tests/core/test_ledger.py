"""The call ledger's decisions (rotator.core.ledger): the per-second call window and a periodic job's claim.

Times are multiples of 1/64 s, exact in binary floating point, so a call made exactly 60 s ago is
tested exactly at the window's edge.
"""

import math

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.ledger import SECONDS, WINDOW, Counts, admit, claims, reserve


TICK = 1 / 64
#: Gaps between asks, in ticks: zero (a burst), small, and around the window's edge.
GAPS = st.one_of(st.integers(0, 3), st.integers(0, 64 * 70), st.sampled_from([64 * 60 - 1, 64 * 60, 64 * 61]))


def _counted(granted: list[float], now: float) -> int:
    """The model: the granted calls whose whole second overlaps (now - 60, now]."""
    return sum(1 for at in granted if math.floor(at) + 1 > now - WINDOW)


@given(st.integers(1, 5), st.lists(GAPS, max_size=40))
def test_no_60s_window_ever_holds_more_than_per_minute_grants(per_minute: int, gaps: list[int]) -> None:
    """SAFETY: granted iff the model says so, and brute force finds no window over the ceiling."""
    counts: Counts = ()
    granted: list[float] = []
    now = 1000.0
    for gap in gaps:
        now += gap * TICK
        allowed = _counted(granted, now) < per_minute
        counts, wait = admit(counts, now, per_minute)
        assert (wait == 0.0) == allowed
        assert len(counts) <= SECONDS
        if allowed:
            granted.append(now)
    for start in granted:
        assert sum(1 for at in granted if start <= at < start + WINDOW) <= per_minute


@given(
    st.integers(1, 12),
    st.lists(st.tuples(GAPS, st.integers(1, 5), st.lists(st.integers(0, 63), max_size=5)), max_size=30),
)
def test_calls_reserved_and_made_before_their_second_ends_never_exceed_the_ceiling(
    per_minute: int, asks: list[tuple[int, int, list[int]]]
) -> None:
    """SAFETY: as many as fit are granted, and made anywhere in their second's rest, no window is over."""
    counts: Counts = ()
    reserved: list[float] = []  # one entry per call counted, at its reservation
    made: list[float] = []
    now = 1000.0
    for gap, calls, used in asks:
        now += gap * TICK
        room = per_minute - _counted(reserved, now)
        counts, taken = reserve(counts, now, per_minute, calls)
        assert taken.granted == max(0, min(calls, room))
        assert (taken.wait == 0.0) == (taken.granted > 0)
        if taken.granted:
            assert taken.left == math.floor(now) + 1 - now
            reserved += [now] * taken.granted
            # Each call made at a tick of the second's rest (the latest: its last tick), or never.
            made += [min(now + u * TICK, math.floor(now) + 1 - TICK) for u in used[: taken.granted]]
        assert len(counts) <= SECONDS
    for start in made:
        assert sum(1 for at in made if start <= at < start + WINDOW) <= per_minute


@given(st.integers(1, 5), st.lists(GAPS, max_size=40))
def test_a_refusal_waits_at_most_61s_and_asking_again_then_is_granted(
    per_minute: int, gaps: list[int]
) -> None:
    """LIVENESS: a wait is in (0, 61]; alone, asking after it is granted, a tick sooner is not."""
    counts: Counts = ()
    now = 1000.0
    for gap in gaps:
        now += gap * TICK
        before = counts
        counts, wait = admit(counts, now, per_minute)
        if wait:
            assert 0.0 < wait <= SECONDS
            assert admit(counts, now + wait, per_minute)[1] == 0.0
            assert admit(counts, now + wait - TICK, per_minute)[1] > 0.0
            assert counts == tuple((s, n) for s, n in before if s + 1 > now - WINDOW)  # nothing counted


@given(st.lists(st.tuples(st.integers(0, 3600), st.integers(1, 100)), max_size=10), st.integers(1, 50))
def test_with_no_call_in_the_last_61s_a_take_is_granted(
    counts: list[tuple[int, int]], per_minute: int
) -> None:
    """Every second recorded is 61 s old or more: none overlaps the window, so the call fits."""
    now = max((s for s, _ in counts), default=0) + SECONDS + 0.5
    assert admit(counts, now, per_minute) == (((math.floor(now), 1),), 0.0)


def test_a_bucket_keeps_at_most_61_seconds_whatever_the_rate() -> None:
    """10,000 calls over 100 s under a ceiling that never binds: the bucket stays at 61 pairs at most."""
    counts: Counts = ()
    for i in range(10_000):
        counts, wait = admit(counts, 1000.0 + i / 100, 1_000_000)
        assert wait == 0.0
        assert len(counts) <= SECONDS
    assert sum(n for _, n in counts) == 6_100  # seconds 1039..1099, 100 calls each


def test_a_second_counts_while_it_overlaps_the_window() -> None:
    """Second 0 overlaps (0.5, 60.5] but not (1, 61]: at 60.5 it still counts, at 61 it is dropped."""
    assert admit(((0, 1), (30, 1)), 60.5, 2) == (((0, 1), (30, 1)), 0.5)
    assert admit(((0, 1), (30, 1)), 61.0, 2) == (((30, 1), (61, 1)), 0.0)


@given(
    st.lists(st.tuples(st.integers(0, 3600), st.integers(1, 3)), min_size=1, max_size=10), st.floats(0, 3600)
)
def test_a_clock_that_went_back_blocks_for_61s_at_most(counts: list[tuple[int, int]], now: float) -> None:
    """Calls counted in a later second still count, as made in now's: a wait is at most 61 s."""
    kept, wait = admit(sorted(counts), now, 1)
    assert wait <= SECONDS
    assert all(s <= now for s, _ in kept)
    assert sum(n for _, n in kept) == sum(n for s, n in counts if s + 1 > now - WINDOW) + (wait == 0.0)


def test_a_ceiling_below_one_is_refused() -> None:
    """per_minute 0 would never grant: a programming error, not a wait."""
    with pytest.raises(ValueError, match="at least 1"):
        admit((), 0.0, 0)


@given(st.integers(1, 64 * 120), st.lists(GAPS, max_size=30))
def test_a_job_is_claimed_once_per_period_and_whenever_a_period_has_passed(
    every: int, gaps: list[int]
) -> None:
    """Claims are at least ``every`` apart, and a claim is granted as soon as ``every`` has passed."""
    last: float | None = None
    now = 1000.0
    for gap in gaps:
        now += gap * TICK
        claimed = claims(last, now, every * TICK)
        assert claimed == (last is None or now - last >= every * TICK)
        if claimed:
            last = now


def test_a_claim_from_far_ahead_does_not_hold_a_job_off() -> None:
    """A clock that went back more than a period: claimable; less than that: wait for the period."""
    assert claims(1000.0, 1000.0 - 301, 300)
    assert not claims(1000.0, 1000.0 - 299, 300)
