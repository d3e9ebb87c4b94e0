"""``schedule:``: cron expressions read as crontab(5) does, in UTC, and the planner's schedule rule."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from hypothesis import given
from hypothesis import strategies as st

from rotator.adapters import cron
from rotator.core.errors import ConfigError
from rotator.core.schedule import History, Policy, is_due
from rotator.doors import wiring


WEDNESDAY = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 3 * * 1", datetime(2026, 11, 30, 3, 0, tzinfo=UTC)),  # Monday, not APScheduler's Tuesday
        ("0 3 * * 0", datetime(2026, 11, 29, 3, 0, tzinfo=UTC)),  # Sunday
        ("0 3 * * 7", datetime(2026, 11, 29, 3, 0, tzinfo=UTC)),  # Sunday again
        ("0 3 * * mon-fri", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        ("0 3 * * */2", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),  # Sun, Tue, Thu, Sat
        ("*/15 * * * *", datetime(2026, 11, 25, 6, 15, tzinfo=UTC)),
        ("0 0 1 * *", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_next_fire_reads_days_as_crontab_does(expression: str, expected: datetime) -> None:
    """Day-of-week numbers are cron's (0 and 7 = Sunday), times are UTC, and fires are strictly after."""
    assert cron.next_fire(expression, WEDNESDAY) == expected


def test_a_fire_at_the_instant_itself_is_not_after_it() -> None:
    """``next_fire`` is strictly after its argument, so a rotation at a fire time is not due again."""
    at = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert cron.next_fire("0 3 * * 1", at) == at + timedelta(days=7)


@given(day=st.integers(0, 7), start=st.datetimes(datetime(2026, 1, 1), datetime(2030, 1, 1)))  # noqa: DTZ001 - Hypothesis takes naive bounds; the test adds UTC
def test_every_numeric_weekday_fires_on_that_crontab_day(day: int, start: datetime) -> None:
    """For any day 0-7 and any start, the next fire falls on crontab's day (Sunday = 0 = 7)."""
    fire = cron.next_fire(f"30 4 * * {day}", start.replace(tzinfo=UTC))
    assert fire is not None
    assert fire.isoweekday() % 7 == day % 7
    assert timedelta(0) < fire - start.replace(tzinfo=UTC) <= timedelta(days=7)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 3 * *", "needs 5 fields"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("* 24 * * *", "hour 24 is out of range 0-23"),
        ("0 3 0 * *", "day of month 0 is out of range 1-31"),
        ("0 3 * 13 *", "month 13 is out of range 1-12"),
        ("*/90 * * * *", "minute step '90' must be a number from 1 to 59"),
        ("30-10 * * * *", "minute range '30-10' runs backwards"),
        ("0 3 1 * 1", "both day-of-month and day-of-week"),
        ("0 3 * * 8", "not 0-7"),
        ("0 3 * * 5-2", "backwards"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, problem: str) -> None:
    """Each mistake is named, so the config error can point at it."""
    with pytest.raises(ValueError, match=problem) as raised:
        cron.trigger(expression)
    # The scheduler library's own wording cannot place the value in a five-field line.
    assert "Error validating" not in str(raised.value)


def test_the_config_names_a_bad_schedule(tmp_path: Path) -> None:
    """A bad ``schedule`` is a config error naming ``targets[0].schedule`` (exit 2 at the CLI)."""
    path = tmp_path / "rotator.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "gitlab": {"url": "https://gitlab.example.com"},
                "targets": [
                    {
                        "name": "app",
                        "project": 1,
                        "connection_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                        "token": {"scopes": ["api"]},
                        "schedule": "0 3 1 * 1",
                    }
                ],
            }
        )
    )
    with pytest.raises(ConfigError) as error:
        wiring.load(str(path), {})
    assert error.value.key == "targets[0].schedule"


def test_a_passed_fire_time_makes_a_target_due() -> None:
    """Due by schedule once a fire time has passed since the last verified rotation's start."""
    policy = Policy(
        timedelta(days=30), timedelta(days=10), None, lambda after: cron.next_fire("0 3 * * 1", after)
    )
    history = History(WEDNESDAY, date(2026, 12, 25))
    before = is_due(policy, history, datetime(2026, 11, 30, 2, 59, tzinfo=UTC))
    assert (before.due, before.reason, before.next_due) == (
        False,
        "schedule",
        datetime(2026, 11, 30, 3, tzinfo=UTC),
    )
    after = is_due(policy, history, datetime(2026, 11, 30, 3, 0, 1, tzinfo=UTC))
    assert (after.due, after.reason) == (True, "schedule")


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("7-7", "sun"),
        ("1/2", "sun,mon,wed,fri"),
        ("7/2", "sun"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
    ],
)
def test_weekday_spans_run_over_0_to_7_as_cronie_reads_them(field: str, days: str) -> None:
    """Spans and steps are taken over cron's 0-7 and only then folded onto the week."""
    assert cron.next_fire(f"0 3 * * {field}", WEDNESDAY) is not None
    assert cron._weekdays(field) == days  # noqa: SLF001 - the translation is the unit under test


@pytest.mark.parametrize("expression", ["0 3 last * *", "0 3 L * *", "0 3 * jan-foo *"])
def test_apscheduler_extensions_are_not_crontab(expression: str) -> None:
    """What APScheduler would accept beyond crontab(5) (``last``, ``L``) is refused."""
    with pytest.raises(ValueError, match="not crontab syntax"):
        cron.trigger(expression)


def _config_with(tmp_path: Path, **target: object) -> Path:
    path = tmp_path / "rotator.yaml"
    entry = {
        "name": "app",
        "project": 1,
        "connection_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "token": {"scopes": ["api"]},
        **target,
    }
    path.write_text(yaml.safe_dump({"gitlab": {"url": "https://gitlab.example.com"}, "targets": [entry]}))
    return path


@pytest.mark.parametrize(
    ("target", "key", "problem"),
    [
        ({"schedule": "0 3 31 2 *"}, "targets[0].schedule", "never fires"),
        ({"schedule": "*/5 * * * *", "grace": "1h"}, "targets[0].grace", "shortest gap (5m)"),
    ],
)
def test_a_schedule_that_never_fires_or_outpaces_grace_is_refused(
    tmp_path: Path, target: dict[str, str], key: str, problem: str
) -> None:
    """A schedule that never fires, or fires faster than grace lets old tokens go, is a config error."""
    with pytest.raises(ConfigError) as error:
        wiring.load(str(_config_with(tmp_path, **target)), {})
    assert error.value.key == key
    assert problem in error.value.problem
