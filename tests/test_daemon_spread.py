"""How a daemon replica orders its first checks, so replicas started together spread over the targets."""

import random

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rotator.doors.daemon import first_checks


NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@given(st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=50), st.integers(0, 2**32))
def test_every_target_is_checked_once_at_once_in_a_strict_order(names: list[str], seed: int) -> None:
    """Each target has one first check, all within a millisecond of now, at distinct increasing times."""
    checks = first_checks(names, NOW, random.Random(seed))  # noqa: S311 - an order, not a secret
    assert sorted(name for name, _ in checks) == sorted(names)
    times = [when for _, when in checks]
    assert times == sorted(set(times))
    assert all(NOW <= when < NOW + timedelta(milliseconds=1) for when in times)


def test_two_replicas_start_on_different_targets() -> None:
    """Two replicas over 1,000 targets begin with different targets, not one shared order."""
    names = [f"t{i}" for i in range(1000)]
    one, two = (first_checks(names, NOW, random.Random(s)) for s in (1, 2))  # noqa: S311
    assert [n for n, _ in one[:4]] != [n for n, _ in two[:4]]
    assert [n for n, _ in one] != names  # not the config's order either
