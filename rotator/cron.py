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

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = 5


def _day(text: str) -> int:
    lowered = text.lower()
    if lowered in _DAYS:
        return _DAYS.index(lowered)
    if lowered.isdigit() and 0 <= int(lowered) <= 7:  # noqa: PLR2004 - cron allows 7 for Sunday
        return int(lowered) % 7
    msg = f"day of week {text!r} is not 0-7 or sun..sat"
    raise ValueError(msg)


def _weekdays(field: str) -> str:
    """Cron's day-of-week field as APScheduler day names (see the module docstring)."""
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
            last = 7 if last == 0 and high.strip() == "7" else last  # 1-7 runs through Sunday
        else:
            first = last = _day(span)
            if step is not None:  # "1/2": from Monday to the end of the week
                last = 6
        if first > last:
            msg = f"range {span!r} runs backwards"
            raise ValueError(msg)
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_DAYS[day] for day in sorted(days))


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
