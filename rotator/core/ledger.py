"""The call ledger's two decisions, as pure functions: a sliding call window and a periodic job's claim.

Core: standard library only. Every store's ledger (memory, SQLite, PostgreSQL: see
:class:`rotator.core.ports.CallLedger`) and the adapters' in-process
:class:`rotator.adapters.retrying.Limiter` keep a bucket's calls as instants (seconds on one clock)
and decide here, so "at most ``per_minute`` calls in any 60-second window" means the same in a
process and across a fleet.

A clock that goes back (an NTP step, a failover to a database whose clock is behind) must not
block a bucket or a job for as long as it went back: a call recorded after ``now`` counts as made
``now`` (it still counts: a step back never lets an extra call through), so the wait it causes is
at most one window; a claim recorded more than a period after ``now`` holds the job off no more.
"""

from collections.abc import Sequence


#: The window's length, in seconds: a ceiling is given per minute.
WINDOW = 60.0


def admit(calls: Sequence[float], now: float, per_minute: int) -> tuple[tuple[float, ...], float]:
    """The bucket after asking for one call at ``now``, and the wait: ``0.0`` when it was counted.

    ``calls`` are the instants of the calls counted so far, oldest first. The result keeps only the
    calls still inside the window (a call leaves it exactly 60 s after it was made) and appends
    ``now`` if fewer than ``per_minute`` remain; otherwise nothing is counted and the wait is the
    time until enough calls have left the window for one more to fit.
    """
    if per_minute < 1:
        msg = f"per_minute must be at least 1, not {per_minute}"
        raise ValueError(msg)
    kept = sorted(min(at, now) for at in calls if now - at < WINDOW)
    if len(kept) < per_minute:
        return (*kept, now), 0.0
    # One more fits once all but per_minute - 1 of them have left: wait for the last of those.
    leaving = kept[len(kept) - per_minute]
    return tuple(kept), WINDOW - (now - leaving)


def claims(last: float | None, now: float, every: float) -> bool:
    """Whether a periodic job last claimed at ``last`` (``None``: never) may be claimed at ``now``.

    Once per ``every`` seconds: from ``last + every`` on. A claim recorded more than ``every`` after
    ``now`` (the clock went back that far) does not hold the job off; a smaller step back delays
    it by less than two periods, and never lets two callers claim one period.
    """
    return last is None or now >= last + every or now < last - every
