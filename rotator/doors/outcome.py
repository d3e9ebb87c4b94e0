"""How a command ended, in words: :data:`rotator.doors.cli.EXIT_CODES` is the one table of exit codes.

The commands (:mod:`rotator.doors.commands`, :mod:`rotator.doors.demo`) return an :class:`Outcome`
and never a number, so the meaning of 0, 1 and 2 is decided in one place and documented there.
"""

from enum import Enum


class Outcome(Enum):
    """What a command came to."""

    #: All fine: nothing due, every selected target fine, forgotten, the demo's proof held.
    OK = "ok"
    #: A selected target failed, is frozen by drift, holds a revoke or backs off; a demo run failed.
    FAILING = "failing"
    #: ``check`` found at least one problem.
    PROBLEMS = "problems"
    #: ``forget`` kept the entry: busy, an unfinished rotation, a live tombstone, or a revoke refused;
    #: ``state copy`` refused: a rotation in flight, or the copy did not read back as the source.
    REFUSED = "refused"
    #: ``daemon`` or ``fakes`` could not listen on the address asked for.
    CANNOT_LISTEN = "cannot_listen"
    #: ``daemon`` stopped with a rotation still in flight (the journal lets the next start resume it):
    #: the process ends at once rather than wait for the worker thread.
    ABANDONED = "abandoned"
    #: The demo's proof, asked of the fakes, did not hold.
    DISPROVED = "disproved"
    #: The demo was interrupted (Ctrl-C).
    INTERRUPTED = "interrupted"
    #: ``healthcheck``: the daemon did not answer ``/healthz`` with 200, or its address is unknown.
    UNHEALTHY = "unhealthy"
    #: The journal's database server could not be reached (or did not answer in time).
    UNAVAILABLE = "unavailable"
    #: The reader of stdout left early (``rotator history | head -1``).
    OUTPUT_LOST = "output_lost"
    #: Bad configuration or usage.
    USAGE = "usage"
