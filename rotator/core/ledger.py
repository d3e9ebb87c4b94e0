"""The call ledger's two decisions, as pure functions: a per-second call window and a periodic job's claim.

Core: standard library only. Every store's ledger (memory, SQLite, PostgreSQL: see
:class:`rotator.core.ports.CallLedger`) and the adapters' in-process
:class:`rotator.adapters.retrying.Limiter` keep a bucket's calls as counts per whole second (on
one clock) and decide here, so "at most ``per_minute`` calls in any 60-second window" means the
same in a process and across a fleet.

Counts per second, not one instant per call: a bucket's row then holds at most :data:`SECONDS`
pairs whatever the call rate or the ceiling, so a take costs the same at 1,000 calls a minute as
at 10 (a log of instants grew with the rate, and was rewritten whole under the row's lock on
every call). The price is a wait up to a second longer than an exact log's (see :func:`admit`).

A clock that goes back (an NTP step, a failover to a database whose clock is behind) must not
block a bucket or a job for as long as it went back: calls counted in a second after ``now``'s
count as made in ``now``'s second (they still count: a step back never lets an extra call
through), so the wait they cause is at most :data:`SECONDS`; a claim recorded more than a period
after ``now`` holds the job off no more.
"""

import math

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta


#: The window's length, in seconds: a ceiling is given per minute.
WINDOW = 60.0

#: The whole seconds a window ``(now - 60, now]`` can overlap: the most pairs a bucket keeps.
SECONDS = 61

#: A claim is judged on the journal's clock, a job fires on the replica's: allow for the difference.
CLAIM_MARGIN = timedelta(seconds=1)

#: A bucket's calls: (epoch second, calls counted in it), oldest first, at most :data:`SECONDS`.
Counts = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a take of one or more calls got: how many were counted, else the wait, and for how long they hold.

    ``granted`` calls were counted (0: none fitted, and ``wait`` is the seconds until one more
    would, as :func:`admit` says). They are counted in the second of the clock's ``now``, so they
    must be made before that second ends: ``left`` seconds after ``now`` (0.0 when none were).
    """

    granted: int
    wait: float
    left: float


def admit(counts: Sequence[Sequence[int]], now: float, per_minute: int) -> tuple[Counts, float]:
    """The bucket after asking for one call at ``now``, and the wait: ``0.0`` when it was counted.

    ``counts`` are (second, calls) pairs: second ``s`` holds the calls made in ``[s, s + 1)``. A
    second is kept while it overlaps the window ``(now - 60, now]`` (``s + 1 > now - 60``), and
    every call in a kept second counts, even one made more than 60 s ago. The call is counted (in
    second ``floor(now)``) iff those counts plus one are at most ``per_minute``; otherwise nothing
    is counted and the wait is the time until enough of the oldest seconds have left the window
    for one more to fit: at most 61 s, and at most about 1 s longer than an exact log would wait.

    Why no 60-second window ever holds more than ``per_minute`` counted calls: take any window
    ``(a, a + 60]`` and the last call counted in it, at ``t`` (so ``t - 60 <= a``). Every other call
    of the window was made at some ``c`` with ``t - 60 <= a < c <= t``, so its second
    ``floor(c)`` has ``floor(c) + 1 > c > t - 60``: it overlapped ``t``'s window and was counted
    when ``t`` was admitted (a clock that went back only moves calls to a later second, which
    leaves later). So the window's calls, ``t``'s included, are at most the counts plus one, which
    was at most ``per_minute``.
    """
    counts, taken = reserve(counts, now, per_minute, 1)
    return counts, taken.wait


def reserve(
    counts: Sequence[Sequence[int]], now: float, per_minute: int, calls: int
) -> tuple[Counts, Reservation]:
    """The bucket after asking for up to ``calls`` calls at ``now``: as many as fit are counted.

    :func:`admit` for several calls at once: ``min(calls, per_minute - counts)`` are counted in
    second ``floor(now)``, or none (and the wait for one) when the window is full. The same proof
    holds if each call counted is made in ``[now, floor(now) + 1)``, the second it is counted in
    (so the caller spends what it reserved before ``left`` runs out, or never): take the last
    reservation ``t`` with a call in a window ``(a, a + 60]``; that call is made at
    ``t <= c <= a + 60``, so every other reservation with a call ``c'`` in the window, made
    before ``floor(t') + 1``, has ``floor(t') + 1 > c' > a >= t - 60`` and was counted when ``t``
    reserved. A call reserved and never made still counts: the ceiling holds; only its slot is lost.
    """
    if per_minute < 1:
        msg = f"per_minute must be at least 1, not {per_minute}"
        raise ValueError(msg)
    second = math.floor(now)
    kept: dict[int, int] = {}
    for at, n in counts:
        if at + 1 > now - WINDOW:  # overlaps the window; a second ahead of now counts as now's
            kept[min(at, second)] = kept.get(min(at, second), 0) + n
    ordered = sorted(kept.items())
    total = sum(n for _, n in ordered)
    if total < per_minute:
        granted = min(max(1, calls), per_minute - total)
        kept[second] = kept.get(second, 0) + granted
        return tuple(sorted(kept.items())), Reservation(granted, 0.0, second + 1 - now)
    # One more fits once the oldest seconds holding all but per_minute - 1 of them have left: a
    # second s leaves when s + 1 <= now - 60, so wait for the last of those to.
    for at, n in ordered:
        total -= n
        if total < per_minute:
            return tuple(ordered), Reservation(0, at + 1 + WINDOW - now, 0.0)
    raise AssertionError  # pragma: no cover - total < per_minute once every second has left


def claims(last: float | None, now: float, every: float) -> bool:
    """Whether a periodic job last claimed at ``last`` (``None``: never) may be claimed at ``now``.

    Once per ``every`` seconds: from ``last + every`` on. A claim recorded more than ``every`` after
    ``now`` (the clock went back that far) does not hold the job off; a smaller step back delays
    it by less than two periods, and never lets two callers claim one period.
    """
    return last is None or now >= last + every or now < last - every


def claim_window(interval: timedelta, jitter: timedelta) -> timedelta:
    """How long a fleet-wide job's claim holds the other replicas off: about ``interval``.

    Less the jitter and a margin: one replica's job fires every ``interval`` give or take
    ``jitter``, so its next fire may come that much early, and a claim held longer would make a
    lone replica skip every other turn. At least half the interval, whatever the jitter.
    """
    return max(interval - jitter - CLAIM_MARGIN, interval / 2)
