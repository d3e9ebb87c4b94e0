"""Shared plumbing for one target's run: the context, the journal writes, failures and alerts.

:class:`TargetRun` (in :mod:`rotator.engine.rotation`) does the protocol; this module holds what every
step needs: fenced, crash-testable journal writes, connection reads shared within a run, the
connection checks of rule 5, and the bookkeeping for failures and backoff.
"""

import functools
import os
import threading
import time

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import NoReturn

import structlog

from rotator.core.durations import format_duration, human_duration
from rotator.core.errors import LeaseLostError, RotatorError, UpstreamError
from rotator.core.model import OWNED_ROLES, Change, Connection, Lease, Role, TargetKey, TargetState, TokenInfo
from rotator.core.ports import Alert, GitLabPort, InfisicalPort, Journal, NoObserver, Observer
from rotator.core.redact import redact
from rotator.core.schedule import History, Policy, backoff_until, effective_rotate_before, expiry_instant
from rotator.doors.config import Target


log = structlog.get_logger("rotator")
#: The fixed list of alert reasons (also metric label values).
ALERT_REASONS = (
    "drift",
    "in_use",
    "failed",
    "journal_lost",
    "connection",
    "lockout",
    "expiring",
    "no_access",
)
GITLAB_COM = "https://gitlab.com"


@dataclass(frozen=True, slots=True)
class Settings:
    """Timings of the protocol; tests shorten the waits."""

    lease_ttl: timedelta = timedelta(minutes=10)
    lease_renew: timedelta = timedelta(seconds=30)
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
    gitlab_url: str
    actor: str
    settings: Settings = Settings()
    crash_after: str | None = None  # test hook: exit right after recording this step
    #: Measures the self-check and re-read windows; tests pair it with a sleep that only advances it.
    monotonic: Callable[[], float] = time.monotonic
    #: How the crash hook stops the run: the process ends (tests of the engine in process stop the run).
    crash: Callable[[], NoReturn] = _exit_now
    #: A cron expression's first fire time after an instant (:func:`rotator.adapters.cron.next_fire`).
    cron: Callable[[str, datetime], datetime | None] = _no_cron
    observer: Observer = NO_OBSERVER


class TargetFailedError(RotatorError):
    """This target cannot proceed in this run; ``reason`` is one of :data:`ALERT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        """Fail with an alert reason and a message naming what went wrong."""
        super().__init__(message)
        self.reason, self.message = reason, message


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
    planned: list[str] = field(default_factory=list)  # ids of the rotations this run recorded PLANNED


class Recorder:
    """Fenced journal writes for one target, with the crash hook the step tests use."""

    def __init__(
        self, ctx: Context, lease: Lease, target: Target, lost: threading.Event | None = None
    ) -> None:
        """Write under ``lease``; ``lost`` is set by the renewer when the lease cannot be kept."""
        self.ctx, self.lease, self.target = ctx, lease, target
        self.lost = lost or threading.Event()
        #: Where this target's run is, for alerts and the failures metric: a step or "revoke".
        self.step = "prepare"

    @property
    def key(self) -> TargetKey:
        """The target's journal key."""
        return self.lease.key

    def write(self, change: Change, point: str | None = None) -> None:
        """Record ``change``; then, if this is the test's crash point, stop dead."""
        self.ctx.journal.write(self.lease, change)
        if change.rotation is not None:
            self.step = change.rotation.step.value
        tell(self.ctx, lambda observer: observer.recorded(self.target.name, change))
        if point is not None:
            self.checkpoint(point)

    def ensure_lease(self) -> None:
        """Before a mutation: prove (with a fenced write) that this worker still holds the target."""
        if self.lost.is_set():
            msg = f"lease on {self.lease.key} lost; sending nothing more"
            raise LeaseLostError(msg)
        self.lease = self.ctx.journal.renew(self.lease, self.ctx.clock(), self.ctx.settings.lease_ttl)

    def checkpoint(self, point: str) -> None:
        """A crash point with nothing to record (between a check and the call it licenses)."""
        if point == self.ctx.crash_after:
            log.warning("test.crash", target=self.target.name, after=point)
            self.ctx.crash()

    def state(self) -> TargetState:
        """The target's current bookkeeping."""
        return self.ctx.journal.target(self.key) or TargetState(self.key, self.target.name)

    def failed(self, reason: str, message: str, *, backoff: bool = True) -> TargetFailedError:
        """Record a failure (and its backoff), alert, and return the error to raise."""
        now = self.ctx.clock()
        state = self.state()
        failures = state.failures + 1
        until = backoff_until(now, failures, self.ctx.settings.backoff_base, self.ctx.settings.backoff_cap)
        self.write(
            Change(
                target=replace(
                    state,
                    failures=failures if backoff else state.failures,
                    backoff_until=until if backoff else state.backoff_until,
                    last_error=message,
                )
            )
        )
        alert(self.ctx, self.target, self.key, reason, message, step=self.step)
        return TargetFailedError(reason, message)


def tell(ctx: Context, call: Callable[[Observer], None]) -> None:
    """Tell the observer something; its failure (a closed pipe, a full disk) never stops a rotation."""
    try:
        call(ctx.observer)
    except Exception as error:  # noqa: BLE001 - observers are told, never relied on
        log.warning("observer.failed", error=type(error).__name__)


def alert(  # noqa: PLR0913 - one alert, each part named at the call site
    ctx: Context, target: Target, key: TargetKey | None, reason: str, message: str, *, step: str = "prepare"
) -> None:
    """Raise an alert: one ``target.alert`` error event, and every observer (metrics, webhook) told.

    The alert carries the current token's expiry when it is already inside ``rotate_before``:
    a failure then is urgent, since the token will die unless a later rotation succeeds.
    """
    log.error("target.alert", target=target.name, reason=reason, step=step, error=message)
    now = ctx.clock()
    try:
        expires = expiring_on(ctx, target, key, now)
    except Exception:  # noqa: BLE001 - the journal may be what failed; alert without the expiry
        expires = None
    tell(ctx, lambda observer: observer.alert(Alert(target.name, reason, message, now, step, expires)))


def timing(ctx: Context, target: Target, key: TargetKey | None) -> tuple[Policy, History]:
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


def lifetime_note(ctx: Context, target: Target, key: TargetKey | None) -> str | None:
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


def expiring_on(ctx: Context, target: Target, key: TargetKey | None, now: datetime) -> date | None:
    """The current token's ``expires_at`` if ``now`` is inside its effective ``rotate_before``."""
    policy, history = timing(ctx, target, key)
    expires = history.current_expires_at
    if expires is None:
        return None
    return expires if now >= expiry_instant(expires) - effective_rotate_before(policy, history) else None


def owned_elsewhere(journal: Journal, key: TargetKey, token_id: int) -> str | None:
    """Which other target the journal tracks ``token_id`` for as a live token, in words; else ``None``.

    Architecture §6: one token, one owner. Checked against the whole journal, not one target's
    rows, so no target adopts or revokes a token another target holds, pends or may have pushed.
    """
    owners = [o for o in journal.owners(key.gitlab_url, token_id) if o.key != key and o.role in OWNED_ROLES]
    if not owners:
        return None
    return f"token {token_id} is " + " and ".join(
        f"the {o.role.value.replace('_', ' ')} token of target {o.target}" for o in owners
    )


def upstream_message(error: UpstreamError, step: str) -> str:
    """An upstream error as one line naming the step."""
    return str(replace(error, step=step)) if error.step is None else str(error)


def check_connection(conn: Connection, gitlab_url: str) -> str | None:
    """Rule 5: why this connection must not be written to, or ``None`` if it is fine."""
    if conn.app != "gitlab":
        return f"connection {conn.id} is for app {conn.app!r}, not gitlab"
    if conn.method != "access-token":
        return f"connection {conn.id} uses method {conn.method!r}; rotator needs access-token"
    if not conn.access_token_type:
        return f"connection {conn.id} has no accessTokenType"
    held = (conn.instance_url or GITLAB_COM).rstrip("/")
    if held != gitlab_url.rstrip("/"):
        # instanceUrl is whatever a person typed, user:password@ included: never quote that part.
        shown = redact(held)
        return f"connection {conn.id} points at {shown}, not the configured gitlab.url {gitlab_url}"
    return None
