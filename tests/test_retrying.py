"""Retry waits and the client-side rate limiter."""

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.adapters.retrying import MAX_WAIT, Limiter, backoff, rate_limit_wait


@pytest.mark.parametrize(
    ("headers", "message", "expected"),
    [
        ({"Retry-After": "7"}, "", 7.0),
        ({"retry-after": "7", "RateLimit-Reset": "1000"}, "", 7.0),
        ({"RateLimit-Reset": "1030"}, "", 30.0),
        ({"RateLimit-Reset": "900"}, "", 0.0),
        ({}, "Rate limit exceeded. Please try again in 12 seconds", 12.0),
        ({"Retry-After": "3600"}, "", MAX_WAIT),
    ],
)
def test_429_wait_prefers_the_server_hint(headers: dict[str, str], message: str, expected: float) -> None:
    """Retry-After, then RateLimit-Reset (epoch), then Infisical's message; capped."""
    assert rate_limit_wait(headers, message, attempt=0, now=1000.0) == expected


def test_429_without_a_hint_backs_off() -> None:
    """No header and no message: exponential backoff."""
    assert 0 < rate_limit_wait({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, "", 3, 1000.0) <= 4.0


@given(st.integers(min_value=0, max_value=60))
def test_backoff_is_bounded_and_grows(attempt: int) -> None:
    """Each backoff lies within [ceiling/2, ceiling], ceiling = min(60, 0.5 * 2**attempt)."""
    ceiling = min(MAX_WAIT, 0.5 * 2**attempt)
    assert ceiling / 2 <= backoff(attempt) <= ceiling


def test_limiter_blocks_the_call_over_the_limit() -> None:
    """The third call in a minute at 2/min waits until the first's whole second leaves the window."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = Limiter(2, clock=lambda: now[0], sleep=sleep)
    limiter.acquire()
    now[0] = 10.0
    limiter.acquire()
    limiter.acquire()
    assert slept == [61.0 - 10.0]
