"""The call ledger's decisions (rotator.core.ledger): the sliding window and a periodic job's claim.

Times are multiples of 1/64 s, exact in binary floating point, so a call made exactly 60 s ago is
tested exactly at the window's edge.
"""

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.ledger import WINDOW, admit, claims


TICK = 1 / 64
#: Gaps between asks, in ticks: zero (a burst), small, and around the window's edge.
GAPS = st.one_of(st.integers(0, 3), st.integers(0, 64 * 70), st.sampled_from([64 * 60 - 1, 64 * 60]))


def _in_window(granted: list[float], now: float) -> int:
    return sum(1 for at in granted if now - WINDOW < at <= now)


@given(st.integers(1, 5), st.lists(GAPS, max_size=40))
def test_the_window_grants_exactly_when_fewer_than_per_minute_were_granted_in_the_last_60s(
    per_minute: int, gaps: list[int]
) -> None:
    """Granted iff fewer than per_minute grants in (now - 60, now]; so never more in any 60 s window."""
    calls: tuple[float, ...] = ()
    granted: list[float] = []
    now = 1000.0
    for gap in gaps:
        now += gap * TICK
        allowed = _in_window(granted, now) < per_minute
        calls, wait = admit(calls, now, per_minute)
        assert (wait == 0.0) == allowed
        if allowed:
            granted.append(now)
        else:
            # The wait is exact: one more fits then, and not a tick sooner.
            assert 0.0 < wait <= WINDOW
            assert _in_window(granted, now + wait) < per_minute
            assert _in_window(granted, now + wait - TICK) >= per_minute
    for start in granted:
        assert sum(1 for at in granted if start <= at < start + WINDOW) <= per_minute


def test_only_the_last_minutes_calls_are_kept() -> None:
    """A call leaves the window exactly 60 s after it was made, and is then dropped."""
    calls, wait = admit((0.0, 30.0), 60.0, 2)
    assert (calls, wait) == ((30.0, 60.0), 0.0)


@given(st.lists(st.floats(0, 3600), min_size=1, max_size=10), st.floats(0, 3600))
def test_a_clock_that_went_back_blocks_for_one_window_at_most(calls: list[float], now: float) -> None:
    """Calls recorded after now still count, as made now: a wait is never longer than the window."""
    kept, wait = admit(sorted(calls), now, 1)
    assert wait <= WINDOW
    assert all(at <= now for at in kept)


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
