"""Durations: the accepted spellings, the refused ones, and the round trip."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.durations import days_column, format_duration, in_days, parse_duration, stamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [("45s", timedelta(seconds=45)), ("10m", timedelta(minutes=10)), ("12h", timedelta(hours=12)),
     ("30d", timedelta(days=30)), ("0s", timedelta(0))],
)  # fmt: skip
def test_accepted_spellings(text: str, expected: timedelta) -> None:
    """Each unit parses to its timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "10", "1.5h", "-1d", "10 m", "1w", "h", "10M", "\u0663d", "\uff11\uff12h", "\U0001d7d1d", "3d\n3d"],
)
def test_refused_spellings_teach_the_format(text: str) -> None:
    """Anything else is a ValueError that shows the right format."""
    with pytest.raises(ValueError, match="like 45s, 10m, 12h or 30d"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**7))
def test_format_then_parse_round_trips(seconds: int) -> None:
    """format_duration's output parses back to the same duration."""
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(
    st.text(st.characters(categories=["Nd"]) | st.sampled_from("0123456789"), min_size=1, max_size=4),
    st.sampled_from("smhd"),
)
def test_only_ascii_digits_make_a_duration(digits: str, unit: str) -> None:
    """Digits then a unit parse exactly when every digit is 0-9: no other script's digits count."""
    try:
        parse_duration(digits + unit)
    except ValueError:
        assert not digits.isascii()
    else:
        assert digits.isascii()


def test_a_time_is_shown_as_rfc3339_utc_to_the_second() -> None:
    """Any zone is shown in UTC with a Z, without fractions; a naive time is taken as UTC."""
    paris = timezone(timedelta(hours=1))
    assert stamp(datetime(2026, 12, 4, 16, 30, 0, 999_999, tzinfo=paris)) == "2026-12-04T15:30:00Z"
    assert stamp(datetime(2026, 12, 4, 15, 30, tzinfo=UTC)) == "2026-12-04T15:30:00Z"
    assert stamp(datetime(2026, 12, 4, 15, 30)) == "2026-12-04T15:30:00Z"  # noqa: DTZ001 - the naive case


@pytest.mark.parametrize(
    ("left", "cell", "words"),
    [
        (timedelta(days=19, hours=23), "19d", "in 19 days"),
        (timedelta(days=1), "1d", "in 1 day"),
        (timedelta(hours=23, minutes=59), "<1d", "in less than a day"),
        (timedelta(0), "<1d", "in less than a day"),
        (timedelta(seconds=-1), "expired", "already past"),
    ],
)
def test_time_left_is_counted_in_whole_days(left: timedelta, cell: str, words: str) -> None:
    """Days rounded down, in a table cell and in a sentence; a past time is never counted as days left."""
    assert days_column(left.days) == cell
    assert in_days(left) == words
