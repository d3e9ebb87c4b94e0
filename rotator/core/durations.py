"""Durations as users write them: ``45s``, ``10m``, ``12h``, ``30d``. Core module: standard library only."""

import re

from datetime import timedelta


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
