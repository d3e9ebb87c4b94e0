"""Durations as users write them (``45s``, ``10m``, ``12h``, ``30d``), and times as people read them.

Core module: standard library only.
"""

import re

from datetime import UTC, datetime, timedelta


#: ASCII digits only: ``\d`` (and ``int()``) would also take Arabic-Indic, fullwidth or mathematical
#: digits (U+0663, U+FF11, U+1D7D1), which no one types on purpose and a reviewer may misread.
_PATTERN = re.compile(r"([0-9]+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """Parse ``<digits><s|m|h|d>``; raise ``ValueError`` with a teaching message otherwise."""
    found = _PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        msg = f"{text!r} is not a duration; write a whole number and a unit, like 45s, 10m, 12h or 30d"
        raise ValueError(msg)
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def format_duration(value: timedelta) -> str:
    """The shortest exact ``<n><unit>`` spelling of ``value`` (whole seconds)."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_duration(value: timedelta) -> str:
    """``value`` to the minute for people, largest units first: ``2d 15h 20m`` (``0m`` if shorter)."""
    minutes = int(value.total_seconds()) // 60
    parts = [(minutes // 1440, "d"), (minutes // 60 % 24, "h"), (minutes % 60, "m")]
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0m"


# -- times and durations as people read them -------------------------------------------------------
def stamp(when: datetime) -> str:
    """``when`` as RFC 3339 UTC to the second, ``2026-12-04T15:30:00Z``: the one time format people read.

    A naive datetime is the engine's UTC clock without its zone, not local time.
    """
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_or_none(when: datetime | None) -> str | None:
    """:func:`stamp`, or ``None`` for no time (a JSON field left null)."""
    return stamp(when) if when else None


def days_column(days: int | None) -> str:
    """A whole-day count for a table cell: ``19d``, ``<1d``, ``expired`` (``-`` for none)."""
    if days is None:
        return "-"
    if days < 0:
        return "expired"
    return f"{days}d" if days else "<1d"


def in_days(left: timedelta) -> str:
    """A time still to come, in days for a sentence: ``in 19 days``, ``in 1 day``, ``in less than a day``.

    ``already past`` once ``left`` is negative; counting a lifetime in hours (``456h``) or as
    ``19 days, 0:00:00`` makes people do the arithmetic.
    """
    days = left.days  # rounded down: 0 is less than a day, negative is already past
    if days < 0:
        return "already past"
    if days == 0:
        return "in less than a day"
    return f"in {days} day{'s' if days != 1 else ''}"
