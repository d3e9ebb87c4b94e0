"""The pure planner: due rules as a table, and invariants with Hypothesis."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.schedule import (
    Due,
    History,
    Policy,
    Situation,
    backoff_until,
    clamped_expiry,
    decide,
    effective_rotate_before,
    expiry_instant,
    expiry_limit,
    is_due,
    is_our_name,
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


_CAPPED = Policy(
    lifetime=timedelta(days=30),
    rotate_before=timedelta(days=10),
    grace=timedelta(hours=1),
    run_interval=timedelta(minutes=5),
)


@pytest.mark.parametrize(
    ("issued", "expires_at", "effective"),
    [
        # GitLab granted the 30 days asked for: rotate_before as configured.
        (NOW, date(2026, 12, 25), timedelta(days=10)),
        # An 8-day cap: 7 days 21 hours left, a third of it.
        (NOW, date(2026, 12, 3), (datetime(2026, 12, 3, tzinfo=UTC) - NOW) / 3),
        # Exactly grace + interval of room is still no room.
        (
            datetime(2026, 12, 13, tzinfo=UTC) - timedelta(days=10, hours=1, minutes=5),
            date(2026, 12, 13),
            (timedelta(days=10, hours=1, minutes=5)) / 3,
        ),
        # One more minute of room: as configured.
        (
            datetime(2026, 12, 13, tzinfo=UTC) - timedelta(days=10, hours=1, minutes=6),
            date(2026, 12, 13),
            timedelta(days=10),
        ),
        # Issue time unknown (an adopted token): as configured.
        (None, date(2026, 12, 3), timedelta(days=10)),
    ],
)
def test_effective_rotate_before_table(
    issued: datetime | None, expires_at: date, effective: timedelta
) -> None:
    """A real lifetime with no room for rotate_before + grace + interval gives a third of that lifetime."""
    history = History(issued, expires_at, issued)
    assert effective_rotate_before(_CAPPED, history) == effective


def test_a_capped_token_is_due_once_not_on_every_run() -> None:
    """With an 8-day cap a fresh token is not due; it is due a third of its lifetime before expiry."""
    history = History(NOW, date(2026, 12, 3), NOW)
    assert not is_due(_CAPPED, history, NOW + timedelta(minutes=5)).due
    due_at = datetime(2026, 12, 3, tzinfo=UTC) - (datetime(2026, 12, 3, tzinfo=UTC) - NOW) / 3
    assert is_due(_CAPPED, history, NOW + timedelta(minutes=5)).next_due == due_at
    assert is_due(_CAPPED, history, due_at).due


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


# -- decide: what a run does for one target ------------------------------------------------------

_DUE = Due(due=True, reason="expiring", next_due=NOW)
_NOT_DUE = Due(due=False, reason="rotate-every", next_due=NOW + timedelta(days=1))


def _situation(**changes: object) -> Situation:
    base: dict[str, object] = {
        "due": _NOT_DUE,
        "unfinished": False,
        "frozen": False,
        "holding": False,
        "backoff_until": None,
        "revoke_afters": (),
        "tombstones_until": (),
    }
    return Situation(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("situation", "force", "take_over", "expected"),
    [
        (_situation(), False, False, (False, False, False, False, None)),
        (_situation(due=_DUE), False, False, (False, True, False, False, None)),
        (_situation(), True, False, (False, True, False, False, None)),
        (_situation(due=_DUE, frozen=True), True, False, (False, False, False, False, "drift")),
        (_situation(due=_DUE, frozen=True), True, True, (False, True, False, False, None)),
        (
            _situation(due=_DUE, backoff_until=NOW + timedelta(minutes=5)),
            False,
            False,
            (False, False, False, False, "backoff"),
        ),
        (
            _situation(due=_DUE, backoff_until=NOW + timedelta(minutes=5)),
            True,
            False,
            (False, True, False, False, None),
        ),
        (_situation(unfinished=True), False, False, (True, False, False, False, None)),
        (_situation(unfinished=True, frozen=True), False, False, (False, False, False, False, None)),
        (_situation(revoke_afters=(NOW,)), False, False, (False, False, True, False, None)),
        (
            _situation(revoke_afters=(NOW + timedelta(seconds=1),)),
            False,
            False,
            (False, False, False, False, None),
        ),
        (_situation(revoke_afters=(NOW,), frozen=True), False, False, (False, False, False, False, None)),
        (
            _situation(tombstones_until=(NOW + timedelta(days=1),)),
            False,
            False,
            (False, False, False, True, None),
        ),
        # Past its window a stone still gets its final re-check (then it is dropped).
        (_situation(tombstones_until=(NOW,)), False, False, (False, False, False, True, None)),
    ],
)
def test_decide_table(
    situation: Situation, force: bool, take_over: bool, expected: tuple[object, ...]
) -> None:
    """Resume, rotate, revoke, re-check and the blocking reason for each journal situation."""
    work = decide(situation, NOW, force=force, take_over=take_over)
    assert (work.resume, work.rotate, work.revoke, work.recheck, work.blocked) == expected


@given(
    due=st.booleans(),
    unfinished=st.booleans(),
    frozen=st.booleans(),
    force=st.booleans(),
    take_over=st.booleans(),
    backoff_minutes=st.integers(min_value=-60, max_value=60) | st.none(),
    revoke_minutes=st.lists(st.integers(min_value=-120, max_value=120), max_size=3),
)
def test_decide_never_acts_on_a_frozen_target(  # noqa: PLR0913, PLR0917 - Hypothesis passes one per field
    due: bool,
    unfinished: bool,
    frozen: bool,
    force: bool,
    take_over: bool,
    backoff_minutes: int | None,
    revoke_minutes: list[int],
) -> None:
    """Frozen without --take-over: no create, no revoke, whatever else holds; idle means no work at all."""
    situation = _situation(
        due=_DUE if due else _NOT_DUE,
        unfinished=unfinished,
        frozen=frozen,
        backoff_until=None if backoff_minutes is None else NOW + timedelta(minutes=backoff_minutes),
        revoke_afters=tuple(NOW + timedelta(minutes=m) for m in revoke_minutes),
    )
    work = decide(situation, NOW, force=force, take_over=take_over)
    if frozen and not take_over:
        assert not work.rotate
        assert not work.revoke
        assert not work.resume
    if not (due or force) or (frozen and not take_over):
        assert not work.rotate


@given(st.integers(min_value=1, max_value=200))
def test_backoff_grows_and_is_capped(failures: int) -> None:
    """Backoff doubles per failure from 5 minutes and never exceeds the 4-hour cap."""
    base, cap = timedelta(minutes=5), timedelta(hours=4)
    wait = backoff_until(NOW, failures, base, cap) - NOW
    assert base <= wait <= cap
    assert wait <= backoff_until(NOW, failures + 1, base, cap) - NOW


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("400 Bad request - Expires at must be before 2027-05-01", date(2027, 5, 1)),
        ("expires_at must be before 2027-11-25", date(2027, 11, 25)),
        ("400 Bad request - Token already revoked", None),
    ],
)
def test_expiry_limit_reads_both_message_shapes(message: str, expected: date | None) -> None:
    """The date is found in the string and in the flattened-dict form of the 400."""
    assert expiry_limit(message) == expected


def test_our_names_are_recognised_exactly() -> None:
    """Only `<base>-<yyyymmdd>-<8 hex>` counts as ours, so a journal-lost check cannot misfire on a prefix."""
    assert is_our_name("app-deploy", "app-deploy-20261125-abcdef01")
    assert not is_our_name("app-deploy", "app-deploy")
    assert not is_our_name("app", "app-deploy-20261125-abcdef01")
    assert not is_our_name("app-deploy", "app-deploy-20261125-abcdef012")


@given(
    start=_times,
    granted_days=st.integers(min_value=1, max_value=365),
    before_days=st.integers(min_value=1, max_value=364),
    grace_minutes=st.integers(min_value=0, max_value=7 * 24 * 60),
    interval_minutes=st.integers(min_value=1, max_value=24 * 60),
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
)
def test_a_capped_token_is_rotated_before_it_dies_and_not_at_once(  # noqa: PLR0913, PLR0917 - one per drawn value
    start: datetime,
    granted_days: int,
    before_days: int,
    grace_minutes: int,
    interval_minutes: int,
    elapsed: timedelta,
) -> None:
    """Invariant: whatever GitLab granted, a token is due before it dies, and never right after issue."""
    policy = Policy(
        lifetime=timedelta(days=before_days + 1),
        rotate_before=timedelta(days=before_days),
        grace=timedelta(minutes=grace_minutes),
        run_interval=timedelta(minutes=interval_minutes),
    )
    expires_at = start.date() + timedelta(days=granted_days)
    history = History(start, expires_at, start)
    lifetime = expiry_instant(expires_at) - start
    effective = effective_rotate_before(policy, history)
    assert timedelta(0) < effective <= policy.rotate_before
    now = start + elapsed
    if now >= expiry_instant(expires_at) - effective:
        assert is_due(policy, history, now).due
    # Not due before the run after its grace, nor before two thirds of its real lifetime.
    if now < start + min(policy.grace + policy.run_interval, lifetime * 2 / 3):
        assert not is_due(policy, history, now).due
