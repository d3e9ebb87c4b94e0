"""When a target is due, and what a new token is called and when it expires. Pure: no I/O, no clock.

Theory of operation
-------------------
Every rule that decides *when* rotator acts lives here, as plain functions of values; the caller
passes ``now``. GitLab expiry is a UTC calendar date: a token with ``expires_at = D`` is dead from
00:00 UTC on D, so every computation goes through :func:`expiry_instant`.

A target is **due** (architecture §5) when any of these holds, checked in this order:

=====================  ===========================================================================
reason                 condition
=====================  ===========================================================================
``never-rotated``      no verified rotation on record
``expiring``           now ≥ expiry_instant(current token's ``expires_at``) - ``rotate_before``
``rotate-every``       now ≥ start of the last verified rotation + ``rotate_every`` - 1 h tolerance
=====================  ===========================================================================

The one-hour tolerance makes a daily CronJob with ``rotate_every: 7d`` rotate on the 7th day rather
than the 8th, whatever minute it started at last time. A target that is not due reports when it
will be (``next_due``), the earliest of the rules that can fire.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


#: ``rotate_every`` is measured with this tolerance (see the module docstring).
ROTATE_EVERY_TOLERANCE = timedelta(hours=1)
#: A new token's name: ``<base>-<yyyymmdd>-<first 8 hex of the rotation id>``.
SHORT_ID_LENGTH = 8


@dataclass(frozen=True, slots=True)
class Policy:
    """A target's timing rules, from its configuration."""

    lifetime: timedelta
    rotate_before: timedelta
    rotate_every: timedelta | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What the journal knows about a target's current token."""

    last_verified_start: datetime | None
    current_expires_at: date | None


@dataclass(frozen=True, slots=True)
class Due:
    """Whether a target is due now, why, and (if not) when it will be."""

    due: bool
    reason: str
    next_due: datetime | None


def expiry_instant(expires_at: date) -> datetime:
    """The instant a token with this ``expires_at`` dies: 00:00 UTC on that date."""
    return datetime.combine(expires_at, time(0), UTC)


def is_due(policy: Policy, history: History, now: datetime) -> Due:
    """Apply the due rules of the module docstring."""
    if history.last_verified_start is None:
        return Due(due=True, reason="never-rotated", next_due=now)
    candidates: list[tuple[datetime, str]] = []
    if history.current_expires_at is not None:
        candidates.append((expiry_instant(history.current_expires_at) - policy.rotate_before, "expiring"))
    if policy.rotate_every is not None:
        every = history.last_verified_start + policy.rotate_every - ROTATE_EVERY_TOLERANCE
        candidates.append((every, "rotate-every"))
    if not candidates:
        return Due(due=False, reason="no-rule", next_due=None)
    when, reason = min(candidates)
    return Due(due=now >= when, reason=reason, next_due=when)


def requested_expiry(now: datetime, lifetime: timedelta) -> date:
    """The ``expires_at`` to ask for: today (UTC) + the lifetime in whole days."""
    return now.astimezone(UTC).date() + timedelta(days=lifetime.days)


def clamped_expiry(limit: date) -> date:
    """After GitLab's "Expires at must be before D": ask for the day before D."""
    return limit - timedelta(days=1)


def token_name(base: str, now: datetime, rotation_id: str) -> str:
    """A fresh, exact name per attempt: ``<base>-<yyyymmdd>-<short id>``."""
    short = rotation_id.replace("-", "")[:SHORT_ID_LENGTH]
    return f"{base}-{now.astimezone(UTC):%Y%m%d}-{short}"
