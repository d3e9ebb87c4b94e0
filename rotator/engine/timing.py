"""A target's timing as the planner sees it: its rules from the spec, its current token from the journal.

Also the two things said of that timing: the rule-6 note when GitLab's lifetime cap overrides
``rotate_before``, and whether the current token is already inside its effective ``rotate_before``.
"""

import functools

from datetime import date, datetime

from rotator.core.durations import format_duration, human_duration
from rotator.core.model import Role, TargetKey
from rotator.core.schedule import History, Policy, effective_rotate_before, expiry_instant
from rotator.core.spec import RotationSpec
from rotator.engine.context import Context


def timing(ctx: Context, target: RotationSpec, key: TargetKey | None) -> tuple[Policy, History]:
    """The planner's view of a target: its rules from the config, its current token from the journal.

    Every place that weighs ``rotate_before`` (due, alerts, ``status``, warnings) starts here, so
    they all agree on the effective value (:func:`rotator.core.schedule.effective_rotate_before`).
    """
    schedule = target.schedule
    next_fire = None if schedule is None else functools.partial(ctx.cron, schedule)
    policy = Policy(
        target.token.lifetime,
        target.renew_before,
        target.rotate_every,
        next_fire,
        grace=target.grace,
        run_interval=ctx.settings.run_interval,
    )
    state = ctx.journal.target(key) if key else None
    current = [t for t in ctx.journal.tokens(key) if t.role is Role.CURRENT] if key else []
    start = state.verified_start if state else None
    # The current token was created by the rotation whose start is the last verified one.
    history = History(start, current[-1].expires_at if current else None, start if current else None)
    return policy, history


def lifetime_note(ctx: Context, target: RotationSpec, key: TargetKey | None) -> str | None:
    """One line when the current token's real lifetime overrides ``rotate_before``, else ``None``."""
    policy, history = timing(ctx, target, key)
    effective = effective_rotate_before(policy, history)
    lifetime = history.real_lifetime
    if lifetime is None or effective == policy.rotate_before:
        return None
    return (
        f"rotate_before {format_duration(policy.rotate_before)} leaves no room in the current token's"
        f" real lifetime of {human_duration(lifetime)} (GitLab capped it: expires_at"
        f" {history.current_expires_at}); the effective rotate_before is {human_duration(effective)},"
        " a third of that lifetime"
    )


def expiring_on(ctx: Context, target: RotationSpec, key: TargetKey | None, now: datetime) -> date | None:
    """The current token's ``expires_at`` if ``now`` is inside its effective ``rotate_before``."""
    policy, history = timing(ctx, target, key)
    expires = history.current_expires_at
    if expires is None:
        return None
    return expires if now >= expiry_instant(expires) - effective_rotate_before(policy, history) else None
