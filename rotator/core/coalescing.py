"""When an HTTP trigger starts nothing: it coalesces onto a forced rotation finished moments ago.

``daemon.min_trigger_interval`` keeps a flood of ``POST /v1/targets/NAME/rotate`` from minting a
token each. The rule is asked twice, and both ask this one function: by the daemon when the POST
arrives (answering ``coalesced`` at once), and by the engine under the target's lease when the
queued run starts (another replica may have forced a rotation while the trigger waited for a
worker). Both pass the trigger's arrival as ``instant``, so the two answers differ only by what the
journal learnt in between.

The boundary, chosen once: a trigger coalesces while ``instant < end + interval``, where ``end``
is when the last forced rotation finished (its start, if no end was recorded). At exactly
``end + interval`` it starts a rotation: that instant is the ``next_trigger_at`` a coalesced
answer announces, and an interval of ``0s`` means every trigger rotates.

A journal time more than :data:`CLOCK_SKEW_MARGIN` ahead of this process's clock was written by a
fast clock (another replica, a CronJob node); trusting it would block every trigger of the target
for the whole skew, so such a rotation is not recent (the callers log it).
"""

from datetime import datetime, timedelta

from rotator.core.model import Outcome, RotationRecord


#: The journal triggers of a forced rotation: an HTTP trigger is coalesced onto the newest of these.
#: Not "schedule" or "run-once": a due rotation is not what the caller asked for, and not counting
#: it keeps "rotate now" meaning a fresh token whenever no one forced one moments ago.
FORCED_TRIGGERS = frozenset({"http", "rotate"})
#: How far past this process's clock a journal time may lie and still count as "recent".
CLOCK_SKEW_MARGIN = timedelta(minutes=1)


def fast_clock_skew(rotation: RotationRecord, now: datetime, margin: timedelta) -> timedelta | None:
    """How far ``rotation``'s latest time lies past ``now``, when that is beyond ``margin``; else None."""
    recorded = max(rotation.planned_at, rotation.finished_at or rotation.planned_at)
    skew = recorded - now
    return skew if skew > margin else None


def coalesces(
    last: RotationRecord | None,
    instant: datetime,
    interval: timedelta,
    now: datetime,
    margin: timedelta = CLOCK_SKEW_MARGIN,
) -> bool:
    """Whether a trigger that arrived at ``instant`` coalesces onto ``last``, the last forced rotation.

    Only onto a finished one, whatever its outcome (a rotation that failed after its create has
    still minted a token); one in progress is another worker's (the daemon answers 409) or, under
    the lease, this run's to resume. Never onto a fast clock's (see the module docstring).
    """
    if last is None or not interval or last.outcome is Outcome.IN_PROGRESS:
        return False
    if fast_clock_skew(last, now, margin) is not None:
        return False
    return instant < (last.finished_at or last.planned_at) + interval


def next_trigger(rotation: RotationRecord, now: datetime, interval: timedelta) -> datetime:
    """From when a trigger starts a rotation again: the rotation's end plus the interval.

    At most ``now`` plus the interval: a time a little ahead of this clock (within the skew margin)
    must not stretch the wait beyond one interval.
    """
    return min((rotation.finished_at or rotation.planned_at) + interval, now + interval)
