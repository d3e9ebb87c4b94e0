"""A target's ``schedule:``: a standard 5-field cron expression, in UTC, read by APScheduler.

APScheduler 3 departs from crontab(5) in two ways that would move a rotation to the wrong day, so
expressions are translated here rather than handed over as they are:

* its day-of-week numbers start at 0 = Monday, where cron's 0 (and 7) is Sunday: ``0 3 * * 1``
  would rotate on Tuesdays. The day-of-week field is expanded with cron's numbering and passed
  to APScheduler as day names, which both read the same way.
* when both day-of-month and day-of-week are restricted, cron fires on *either*, APScheduler on
  *both*. Such an expression is refused: the OR reading is rarely what anyone means.
"""

import functools
import itertools
import re

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = 5


def _day(text: str) -> int:
    """A day as cron numbers it, 0-7 (both 0 and 7 are Sunday; names give 0-6)."""
    lowered = text.lower()
    if lowered in _DAYS:
        return _DAYS.index(lowered)
    if lowered.isdigit() and 0 <= int(lowered) <= 7:  # noqa: PLR2004 - cron allows 7 for Sunday
        return int(lowered)
    msg = f"day of week {text!r} is not 0-7 or sun..sat"
    raise ValueError(msg)


def _weekdays(field: str) -> str:
    """Cron's day-of-week field as APScheduler day names (see the module docstring).

    Spans run over cron's 0-7 and are folded onto the week only at the end, as cronie does:
    ``7-7`` is Sunday, ``1/2`` (= ``1-7/2``) is Mon, Wed, Fri and Sun.
    """
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            msg = f"step {step_text!r} is not a positive number"
            raise ValueError(msg)
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = _day(low), _day(high)
        else:
            first = _day(span)
            last = 7 if step is not None else first  # "N/step" runs to the end of the week
        if first > last:
            msg = f"range {span!r} runs backwards"
            raise ValueError(msg)
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_DAYS[day] for day in sorted(days))


#: What crontab(5) allows in each of the other fields (APScheduler would also take "last", "L" ...).
_NUMERIC = re.compile(r"^[\d*,/-]+$")
_MONTHS = re.compile(r"^(?:[\d*,/-]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)+$", re.IGNORECASE)
#: Each numeric field's bounds, as crontab(5) gives them.
_BOUNDS = {"minute": (0, 59), "hour": (0, 23), "day of month": (1, 31), "month": (1, 12)}


def _in_bounds(name: str, field: str) -> None:
    """Each number in ``field`` within the field's bounds, each range forwards, each step usable.

    Checked here so that the message names the field: APScheduler's own says only "Error
    validating expression '61'", which a reader of a five-field line cannot place.
    """
    low, high = _BOUNDS[name]
    for item in field.split(","):
        span, _, step = item.partition("/")
        numbers = [int(part) for part in span.split("-") if part.isdigit()]
        for number in numbers:
            if not low <= number <= high:
                msg = f"{name} {number} is out of range {low}-{high}"
                raise ValueError(msg)
        if len(numbers) == 2 and numbers[0] > numbers[1]:  # noqa: PLR2004 - a range's two ends
            msg = f"{name} range {span!r} runs backwards"
            raise ValueError(msg)
        if step and (not step.isdigit() or not 0 < int(step) <= high - low):
            msg = f"{name} step {step!r} must be a number from 1 to {high - low}"
            raise ValueError(msg)


@functools.lru_cache(maxsize=1024)
def trigger(expression: str) -> "CronTrigger":
    """APScheduler's trigger for a cron expression, in UTC; ValueError says what is wrong."""
    fields = expression.split()
    if len(fields) != _FIELDS:
        msg = f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        raise ValueError(msg)
    # Imported here: a CronJob's run-once pays for APScheduler only if a target has a schedule.
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

    minute, hour, day, month, weekday = fields
    for name, value, allowed in (
        ("minute", minute, _NUMERIC),
        ("hour", hour, _NUMERIC),
        ("day of month", day, _NUMERIC),
        ("month", month, _MONTHS),
    ):
        if not allowed.match(value):
            msg = f"{name} {value!r} is not crontab syntax (numbers, *, ranges, lists, steps)"
            raise ValueError(msg)
        _in_bounds(name, value)
    try:
        days = _weekdays(weekday) if weekday != "*" else "*"
        built = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=days, timezone=UTC)
    except ValueError as error:
        msg = str(error) or "is not a cron expression"
        raise ValueError(msg) from None
    if day != "*" and weekday != "*":
        msg = "restricts both day-of-month and day-of-week; cron would fire on either, so pick one"
        raise ValueError(msg)
    return built


def next_fire(expression: str, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (``None`` if it never fires again)."""
    fire: datetime | None = trigger(expression).get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire.astimezone(UTC) if fire is not None else None


def shortest_gap(expression: str, after: datetime, fires: int = 50) -> timedelta | None:
    """The shortest time between two of the next ``fires`` fire times; ``None`` if it never fires."""
    times: list[datetime] = []
    when: datetime | None = after
    while when is not None and len(times) < fires:
        when = next_fire(expression, when)
        if when is not None:
            times.append(when)
    if not times:
        return None
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return min(gaps) if gaps else timedelta.max
