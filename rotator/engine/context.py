"""What a target's run talks to and how long it waits: the :class:`Context` and its :class:`Settings`.

Every port (GitLab, Infisical, the journal), every clock (wall, monotonic) and the sleep arrive
here, built by :mod:`rotator.doors.wiring` (or a test); nothing in the engine reads them elsewhere.
:class:`Scratch` is what one run learns as it goes (reads shared within the run, its actions).
"""

import os

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from rotator.core.model import Connection, TokenInfo
from rotator.core.ports import GitLabPort, InfisicalPort, Journal, NoObserver, Observer
from rotator.engine.untracked import Untracked


#: How often a run renews its lease, at most (``lease_renew_for``).
LEASE_RENEW = timedelta(seconds=30)


def lease_renew_for(ttl: timedelta) -> timedelta:
    """How often a lease lasting ``ttl`` is renewed: every 30 s, or a third of ``ttl`` when shorter.

    A third leaves two more tries (or one slow statement) before a lease could lapse under a run.
    """
    return min(LEASE_RENEW, ttl / 3)


@dataclass(frozen=True, slots=True)
class Settings:
    """Timings of the protocol; tests shorten the waits."""

    #: ``state.lease_ttl``; ``lease_renew`` follows it (:func:`lease_renew_for`).
    lease_ttl: timedelta = timedelta(minutes=10)
    lease_renew: timedelta = LEASE_RENEW
    reread_window: timedelta = timedelta(minutes=1)
    self_check_window: timedelta = timedelta(seconds=10)
    in_use_margin: timedelta = timedelta(minutes=15)
    tombstone_life: timedelta = timedelta(days=3)
    possibly_held_settle: timedelta = timedelta(minutes=15)
    backoff_base: timedelta = timedelta(minutes=5)
    backoff_cap: timedelta = timedelta(hours=4)
    poll_interval: float = 2.0
    #: The time between two runs of a target (``daemon.check_interval``; run-once assumes the same).
    run_interval: timedelta = timedelta(minutes=5)


NO_OBSERVER: Observer = NoObserver()


def _no_cron(expression: str, _after: datetime) -> datetime | None:
    # Loud rather than silently never due: whoever builds a Context for scheduled targets passes one.
    msg = f"no cron evaluator was given for schedule {expression!r}"
    raise RuntimeError(msg)


def _exit_now() -> NoReturn:
    os._exit(70)  # a crash: no cleanup, no release, no last write


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a target's run talks to."""

    gitlab: GitLabPort
    infisical: InfisicalPort
    journal: Journal
    clock: Callable[[], datetime]
    sleep: Callable[[float], None]
    #: Seconds from an arbitrary start, never going back: the deadlines of the polls (self-check,
    #: verify). Injected with ``sleep`` so that a test's shortened sleeps count in full here.
    monotonic: Callable[[], float]
    gitlab_url: str
    actor: str
    settings: Settings = Settings()
    crash_after: str | None = None  # test hook: exit right after recording this step
    #: How the crash hook stops the run: the process ends (tests of the engine in process stop the run).
    crash: Callable[[], NoReturn] = _exit_now
    #: A cron expression's first fire time after an instant (:func:`rotator.adapters.cron.next_fire`).
    cron: Callable[[str, datetime], datetime | None] = _no_cron
    observer: Observer = NO_OBSERVER


@dataclass
class Scratch:
    """What one run has learnt about a target so far (reads shared within the run)."""

    connection: Connection | None = None
    tokens_listed: list[TokenInfo] | None = None
    actions: list[str] = field(default_factory=list)
    take_over: bool = False
    revoke_anyway: bool = False
    unknown_push: str | None = None  # the last push whose outcome was unknown, as a failure line
    untracked_listed: bool = False  # the take-over's list of untracked tokens is recorded
    #: A first rotation without adopt_token_id: the owner's tokens no target tracked before its create.
    first_untracked: Untracked | None = None
    planned: list[str] = field(default_factory=list)  # ids of the rotations this run recorded PLANNED
