"""The pure planner: due rules as a table, and invariants with Hypothesis."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.plan import (
    History,
    Policy,
    clamped_expiry,
    expiry_instant,
    is_due,
    requested_expiry,
    token_name,
)


NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
POLICY = Policy(lifetime=timedelta(days=30), rotate_before=timedelta(days=10), rotate_every=timedelta(days=7))


@pytest.mark.parametrize(
    ("history", "due", "reason"),
    [
        (History(None, None), True, "never-rotated"),
        (History(NOW - timedelta(days=1), date(2026, 12, 24)), False, "rotate-every"),
        (History(NOW - timedelta(days=7) + timedelta(minutes=59), date(2026, 12, 24)), True, "rotate-every"),
        (History(NOW - timedelta(days=6, hours=22), date(2026, 12, 24)), False, "rotate-every"),
        (History(NOW - timedelta(days=1), date(2026, 12, 5)), True, "expiring"),
        (History(NOW - timedelta(days=1), date(2026, 12, 6)), False, "expiring"),
    ],
)
def test_due_table(history: History, due: bool, reason: str) -> None:
    """Each due rule fires at its boundary, with its reason."""
    result = is_due(POLICY, history, NOW)
    assert (result.due, result.reason) == (due, reason)


def test_without_rotate_every_only_expiry_counts() -> None:
    """With no rotate_every, a target is due only near expiry, and says when."""
    policy = Policy(lifetime=timedelta(days=30), rotate_before=timedelta(days=10))
    result = is_due(policy, History(NOW - timedelta(days=20), date(2026, 12, 20)), NOW)
    assert not result.due
    assert result.next_due == datetime(2026, 12, 10, tzinfo=UTC)


def test_a_token_dies_at_midnight_utc_of_its_date() -> None:
    """expires_at 2026-12-01 means dead from 2026-12-01T00:00Z."""
    assert expiry_instant(date(2026, 12, 1)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_requested_expiry_uses_the_utc_date() -> None:
    """Just before midnight in UTC+2 it is still the previous day in UTC."""
    local = datetime(2026, 11, 26, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert requested_expiry(local, timedelta(days=30)) == date(2026, 12, 25)


def test_clamp_asks_for_the_day_before_the_limit() -> None:
    """After 'must be before D', the retry asks for D - 1 day."""
    assert clamped_expiry(date(2027, 11, 25)) == date(2027, 11, 24)


def test_token_names_are_exact_and_fresh() -> None:
    """Names are <base>-<yyyymmdd>-<8 hex of the rotation id>."""
    name = token_name("app-deploy", NOW, "3c90c3cc-0d44-4b50-8888-8dd25736052a")
    assert name == "app-deploy-20261125-3c90c3cc"


_times = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - Hypothesis bounds are naive; timezones= adds UTC
    max_value=datetime(2030, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(
    start=_times,
    lifetime_days=st.integers(min_value=2, max_value=365),
    every_days=st.one_of(st.none(), st.integers(min_value=1, max_value=400)),
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)),
)
def test_a_token_is_always_rotated_before_it_dies(
    start: datetime, lifetime_days: int, every_days: int | None, elapsed: timedelta
) -> None:
    """Invariant: once a token is within rotate_before of death, the target is due."""
    lifetime = timedelta(days=lifetime_days)
    policy = Policy(lifetime, lifetime / 3, timedelta(days=every_days) if every_days else None)
    history = History(start, requested_expiry(start, lifetime))
    now = start + elapsed
    result = is_due(policy, history, now)
    if now >= expiry_instant(requested_expiry(start, lifetime)) - policy.rotate_before:
        assert result.due
    if not result.due:
        assert result.next_due is not None
        assert result.next_due > now


@given(start=_times, elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
def test_due_is_monotonic_in_time(start: datetime, elapsed: timedelta) -> None:
    """Invariant: a due target stays due as time passes (nothing un-dues it but a rotation)."""
    history = History(start, requested_expiry(start, POLICY.lifetime))
    first = is_due(POLICY, history, start + elapsed)
    later = is_due(POLICY, history, start + elapsed + timedelta(hours=1))
    assert not first.due or later.due
