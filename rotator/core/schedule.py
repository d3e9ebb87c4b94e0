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
``expiring``           now ≥ expiry_instant(current token's ``expires_at``) - effective ``rotate_before``
``rotate-every``       now ≥ start of the last verified rotation + ``rotate_every`` - 1 h tolerance
``schedule``           a fire time of the target's cron ``schedule`` (UTC) has passed since that start
=====================  ===========================================================================

The one-hour tolerance makes a daily CronJob with ``rotate_every: 7d`` rotate on the 7th day rather
than the 8th, whatever minute it started at last time. A target that is not due reports when it
will be (``next_due``), the earliest of the rules that can fire.

**Effective rotate_before.** GitLab may cap a token's lifetime below what was asked (an admin's
"maximum allowable lifetime"): the create is clamped, and the token's *real* lifetime (from its
issue to 00:00 UTC on its real ``expires_at``) can leave no room for ``rotate_before``. Taken as
configured, every run would then be due again and mint a new token. So when the real lifetime
minus ``rotate_before`` is not longer than ``grace`` plus the run interval, the effective
``rotate_before`` is a third of the real lifetime (cert-manager's rule for ``renewBefore``), never
more than configured: one rotation per effective due time, never one per run
(:func:`effective_rotate_before`).

The planner stays pure by taking the cron schedule as a function (``Policy.next_fire``: the first
fire time strictly after an instant); :mod:`rotator.adapters.cron` builds it from APScheduler's trigger.
"""

import re

from collections.abc import Callable
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
    #: The first fire time of the target's ``schedule`` strictly after an instant (None: no schedule).
    next_fire: Callable[[datetime], datetime | None] | None = None
    #: The target's grace, and the time between two runs: a rotation needs both to fit in a lifetime.
    grace: timedelta = timedelta(0)
    run_interval: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class History:
    """What the journal knows about a target's current token."""

    last_verified_start: datetime | None
    current_expires_at: date | None
    #: When the current token was issued (the start of the rotation that created it), if known.
    current_issued_at: datetime | None = None

    @property
    def real_lifetime(self) -> timedelta | None:
        """The current token's lifetime as GitLab granted it: from its issue to its real expiry."""
        if self.current_issued_at is None or self.current_expires_at is None:
            return None
        return expiry_instant(self.current_expires_at) - self.current_issued_at


@dataclass(frozen=True, slots=True)
class Due:
    """Whether a target is due now, why, and (if not) when it will be."""

    due: bool
    reason: str
    next_due: datetime | None


def expiry_instant(expires_at: date) -> datetime:
    """The instant a token with this ``expires_at`` dies: 00:00 UTC on that date."""
    return datetime.combine(expires_at, time(0), UTC)


def effective_rotate_before(policy: Policy, history: History) -> timedelta:
    """``rotate_before``, or a third of the real lifetime when that leaves no room (module docstring).

    "No room": after ``rotate_before`` is taken off the real lifetime, no more than ``grace``
    plus the run interval is left, so the token would be due again at (or right after) its issue.
    """
    lifetime = history.real_lifetime
    if lifetime is None or lifetime - policy.rotate_before > policy.grace + policy.run_interval:
        return policy.rotate_before
    return min(policy.rotate_before, lifetime / 3)


def is_due(policy: Policy, history: History, now: datetime) -> Due:
    """Apply the due rules of the module docstring."""
    if history.last_verified_start is None:
        return Due(due=True, reason="never-rotated", next_due=now)
    candidates: list[tuple[datetime, str]] = []
    if history.current_expires_at is not None:
        before = effective_rotate_before(policy, history)
        candidates.append((expiry_instant(history.current_expires_at) - before, "expiring"))
    if policy.rotate_every is not None:
        every = history.last_verified_start + policy.rotate_every - ROTATE_EVERY_TOLERANCE
        candidates.append((every, "rotate-every"))
    if policy.next_fire is not None:
        fire = policy.next_fire(history.last_verified_start)
        if fire is not None:
            candidates.append((fire, "schedule"))
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


_EXPIRY_LIMIT = re.compile(r"must be before (\d{4}-\d{2}-\d{2})")
#: A name this tool made for ``base``: ``<base>-<yyyymmdd>-<8 hex>`` (checked for "journal lost?").
_OUR_NAME = r"-\d{8}-[0-9a-f]{8}"


def expiry_limit(message: str) -> date | None:
    """The date D in GitLab's 400 "Expires at must be before D", or ``None``."""
    match = _EXPIRY_LIMIT.search(message)
    return date.fromisoformat(match.group(1)) if match else None


def is_our_name(base: str, name: str) -> bool:
    """Whether ``name`` looks like one rotator made for this base name."""
    return re.fullmatch(re.escape(base) + _OUR_NAME, name) is not None


def named_like_ours(name: str) -> bool:
    """Whether ``name`` looks like one rotator made for any base name (:func:`token_name`'s shape)."""
    return re.search(_OUR_NAME + r"\Z", name) is not None


def backoff_until(now: datetime, failures: int, base: timedelta, cap: timedelta) -> datetime:
    """When a target that failed ``failures`` times in a row may be tried again: base * 2**(n-1), capped."""
    return now + min(cap, base * (1 << min(30, max(0, failures - 1))))


@dataclass(frozen=True, slots=True)
class Situation:
    """What the journal says about a target, reduced to what :func:`decide` needs."""

    due: Due
    unfinished: bool
    frozen: bool
    holding: bool
    backoff_until: datetime | None
    revoke_afters: tuple[datetime, ...]
    tombstones_until: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class Work:
    """What one run does for one target, and whether the target is in a failing state."""

    resume: bool
    rotate: bool
    revoke: bool
    recheck: bool
    blocked: str | None  # why a due rotation is not attempted: "drift" or "backoff"

    @property
    def idle(self) -> bool:
        """Nothing to send upstream."""
        return not (self.resume or self.rotate or self.revoke or self.recheck)


def decide(situation: Situation, now: datetime, *, force: bool, take_over: bool) -> Work:
    """The work of a run for one target (architecture §5 "Due" and "Idle runs").

    An unfinished rotation is always resumed. A drift freeze blocks creating and revoking until
    ``take_over``; a failure backoff blocks a due rotation unless forced. Pending revokes past
    their grace and every tombstone (an expired one gets its final check) are checked on every run.
    """
    frozen = situation.frozen and not take_over
    backing_off = situation.backoff_until is not None and now < situation.backoff_until and not force
    wants = force or situation.due.due
    blocked = "drift" if frozen and wants else ("backoff" if backing_off and wants else None)
    return Work(
        resume=situation.unfinished and not frozen,
        rotate=wants and not frozen and not backing_off,
        revoke=not frozen and any(after <= now for after in situation.revoke_afters),
        # An expired stone still gets its final re-check before it is dropped.
        recheck=bool(situation.tombstones_until),
        blocked=blocked,
    )
