"""The long-running mode: APScheduler wakes each target; the HTTP trigger asks for a rotation now.

Every wake-up goes through :meth:`rotator.engine.run.Engine.run_target`, the same door ``run-once``
uses, so the daemon adds timing and nothing else. Per target there are up to three jobs:

* ``check:NAME``: every ``daemon.check_interval`` (with ``jitter``), a run that is idle (journal
  only, no upstream call) unless something is due. It catches everything the others might miss.
* ``wake:NAME``: one shot at the target's next event (due time, end of a grace, end of a backoff),
  re-planned after every run, so a revoke fires when its grace ends, not at the next check.
* ``cron:NAME``: the target's ``schedule``, if it has one (the planner then finds it due).

Jobs share one pool of ``max_concurrent_rotations`` threads, with ``coalesce`` and
``max_instances=1``. A per-target lock, shared with the HTTP trigger, keeps two runs of one target
from overlapping in this process; the journal's lease does the same across processes and replicas.
Each replica takes its first checks in an order of its own (:func:`first_checks`), so replicas
started together spread over the targets instead of colliding on each; a collision (another
worker holds the lease: "busy") costs one journal transaction and is logged at debug only.

A trigger arriving within ``daemon.min_trigger_interval`` of the target's last forced rotation
(``POST .../rotate`` or ``rotator rotate``, as the journal records it, so the rule holds across
replicas and restarts) starts nothing: it is answered with that rotation, ``coalesced``. A queued
trigger is checked again when it runs, under the target's lease: a forced rotation another replica
ran while it waited coalesces it too. A journal time beyond the skew margin ahead of this clock
(:data:`rotator.core.coalescing.CLOCK_SKEW_MARGIN`) is a fast clock's, not recent, and is only warned
about. Both checks ask :func:`rotator.core.coalescing.coalesces`, with the trigger's arrival.

Stopping (:meth:`Daemon.stop`) takes no new work, lets the runs in flight finish within the
shutdown timeout, and says whether they did.
"""

import random
import threading
import uuid

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rotator.adapters import cron
from rotator.adapters.metrics import Metrics, TargetGauges
from rotator.core.coalescing import FORCED_TRIGGERS, coalesces, next_trigger
from rotator.core.durations import stamp
from rotator.core.errors import JournalDamagedError, RotatorError
from rotator.core.model import Outcome, Role, RotationRecord, TargetState
from rotator.core.schedule import expiry_instant
from rotator.core.spec import RotationSpec
from rotator.doors import report
from rotator.doors.wiring import Runtime
from rotator.engine.retire import unrevocable
from rotator.engine.run import RunOptions, TargetReport, awaits_revoke, from_a_fast_clock


log = structlog.get_logger("rotator")
#: How many trigger requests ``GET /v1/rotations/{id}`` remembers (oldest forgotten first).
KEPT_RUNS = 1000
#: How often the daemon re-reads its own credentials' expiry.
CREDENTIAL_REFRESH = timedelta(hours=1)
_WAKE_MARGIN = timedelta(seconds=1)  # wake just after an event, not a hair before it
_TRIGGER_WAIT = 0.5  # seconds a trigger waits for a target's lock before answering 409
#: Between two first checks: far below a check's own time, far above the scheduler's precision.
_FIRST_CHECK_STEP = timedelta(microseconds=10)


@dataclass
class TriggeredRun:
    """One ``POST /v1/targets/{name}/rotate``, as ``GET /v1/rotations/{id}`` reports it."""

    id: str
    target: str
    requested_at: datetime
    status: str = "queued"  # queued | running | finished | cancelled
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None  # done | failed | busy | idle, as the engine reports
    failed: bool | None = None
    detail: str | None = None
    rotations: list[dict[str, Any]] = field(default_factory=list)
    #: Answered with an earlier forced rotation instead of starting one (daemon.min_trigger_interval).
    coalesced: bool = False
    #: For a coalesced answer: from when a trigger of this target starts a rotation again.
    next_trigger_at: datetime | None = None
    #: The ids of the rotations this request planned itself (not shown: ``rotations`` lists them).
    performed: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The JSON body."""
        return {
            "id": self.id,
            "target": self.target,
            "status": self.status,
            "requested_at": _iso(self.requested_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "outcome": self.outcome,
            "failed": self.failed,
            "detail": self.detail,
            "rotations": self.rotations,
            "coalesced": self.coalesced,
            "next_trigger_at": _iso(self.next_trigger_at),
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a trigger was not accepted: an HTTP status and a reason for the body."""

    status: int
    reason: str
    detail: str


def _iso(when: datetime | None) -> str | None:
    return stamp(when) if when else None


class Daemon:
    """The scheduler, the trigger's bookkeeping, and what the HTTP endpoints read."""

    def __init__(self, rt: Runtime, metrics: Metrics, *, trigger_enabled: bool) -> None:
        """Drive ``rt``'s engine; ``metrics`` hears every run; the trigger is off without a token."""
        self.rt, self.metrics, self.trigger_enabled = rt, metrics, trigger_enabled
        self.config = rt.config
        self.targets = {t.name: t for t in rt.engine.spec.targets}
        self._locks = {name: threading.Lock() for name in self.targets}
        self._runs: OrderedDict[str, TriggeredRun] = OrderedDict()
        self._runs_lock = threading.Lock()
        self._inflight = 0
        self._idle = threading.Condition()
        self.draining = threading.Event()
        self._credentials: dict[str, datetime | None] = {}
        settings = rt.config.daemon
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(rt.config.max_concurrent_rotations)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(settings.check_interval.total_seconds()),
            },
            timezone=UTC,
        )
        metrics.start_targets(self.targets)
        metrics.watch_targets(self.gauges)
        metrics.watch_credentials(lambda: dict(self._credentials))

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule every target's jobs and start the scheduler; the first checks run at once."""
        settings = self.config.daemon
        now = datetime.now(UTC)
        every = IntervalTrigger(
            seconds=settings.check_interval.total_seconds(),
            jitter=int(settings.jitter.total_seconds()) or None,
            timezone=UTC,
        )
        for name, first in first_checks(list(self.targets), now):
            target = self.targets[name]
            self.scheduler.add_job(
                self._scheduled,
                every,
                args=[name],
                id=f"check:{name}",
                name=f"check {name}",
                next_run_time=first,
            )
            if target.schedule is not None:
                self.scheduler.add_job(
                    self._scheduled,
                    cron.trigger(target.schedule),
                    args=[name],
                    id=f"cron:{name}",
                    name=f"schedule {name}",
                )
        # Pending revokes of targets removed from the config are still carried out (rule 8).
        self.scheduler.add_job(
            self._sweep_removed, every, id="removed", name="removed targets", next_run_time=now
        )
        self.scheduler.add_job(
            self._refresh_credentials,
            IntervalTrigger(seconds=CREDENTIAL_REFRESH.total_seconds(), timezone=UTC),
            id="credentials",
            name="own credentials",
            next_run_time=now,
        )
        self.scheduler.start()

    def stop(self, timeout: timedelta) -> bool:
        """Take no new work; wait up to ``timeout`` for runs in flight; True if none is left."""
        with self._idle:  # under the lock that admits runs, so none slips in after this
            self.draining.set()
        self.rt.engine.stopping.set()
        self.scheduler.pause()
        with self._idle:
            drained = self._idle.wait_for(lambda: self._inflight == 0, timeout.total_seconds())
        self.scheduler.shutdown(wait=False)
        return drained

    @property
    def in_flight(self) -> int:
        """Runs executing now."""
        with self._idle:
            return self._inflight

    # -- the HTTP trigger -----------------------------------------------------------------------
    def trigger(self, name: str) -> TriggeredRun | Refusal:
        """Queue a forced rotation of ``name``, or say why not (404, 409, 503)."""
        target = self.targets.get(name)
        if target is None:
            return Refusal(404, "unknown_target", f"no target named {name!r}")
        if self.draining.is_set():
            return Refusal(503, "shutting_down", "the daemon is shutting down; retry on another replica")
        state = self._state(target)
        if state is not None and state.drift_since is not None:
            return Refusal(
                409,
                "drift",
                f"{name} is frozen by drift; run `rotator rotate {name} --take-over` after checking",
            )
        lock = self._locks[name]
        # A check with nothing due holds the lock for milliseconds: wait that out, not a rotation.
        if not lock.acquire(timeout=_TRIGGER_WAIT):
            return Refusal(409, "rotating", f"a run of {name} is in flight; see /v1/targets/{name}")
        try:
            # Under the lock, so this process's own last run of the target has finished writing.
            answer = self._recent(target) or self._queue(name)
        except BaseException:
            lock.release()
            raise
        if not isinstance(answer, TriggeredRun) or answer.coalesced:
            lock.release()  # nothing was queued; a queued run releases it when it ends
        return answer

    def _queue(self, name: str) -> TriggeredRun | Refusal:
        """Queue a forced run of ``name``, whose lock the caller holds (503 if draining)."""
        run = TriggeredRun(uuid.uuid4().hex, name, datetime.now(UTC))
        # The job may wait for a worker while another replica forces a rotation of the target:
        # the engine re-checks the interval under the lease, from the trigger's arrival.
        interval = self.config.daemon.min_trigger_interval
        arrived = self.rt.engine.ctx.clock() if interval else None
        with self._runs_lock:
            self._remember(run)
        with self._idle:  # stop() sets draining under this lock: no 202 for a run that never comes
            if self.draining.is_set():
                return Refusal(503, "shutting_down", "the daemon is shutting down; retry on another replica")
            # misfire_grace_time=None: however long it waits for a free worker, it runs (and so
            # releases the target's lock); a missed trigger would lock the target for good.
            self.scheduler.add_job(
                self._triggered,
                args=[run, arrived],
                id=f"trigger:{run.id}",
                name=f"trigger {name}",
                misfire_grace_time=None,
            )
        return run

    def _recent(self, target: RotationSpec) -> TriggeredRun | Refusal | None:
        """The answer to a trigger inside ``min_trigger_interval`` of a forced rotation; else None.

        Read from the journal, so a rotation another replica or ``rotator rotate`` forced counts
        too, and a restart does not reset the interval. A finished rotation counts from its end,
        so a burst coalesces however long the rotation took. Whatever its outcome: a rotation that
        failed after its create has still minted a token, and retrying a failure at once is what
        ``rotator rotate NAME`` is for.
        """
        interval = self.config.daemon.min_trigger_interval
        key = self.rt.engine.key(target, resolve=False)
        last = self.rt.journal.last_rotation(key, FORCED_TRIGGERS) if interval and key else None
        if last is None:
            return None
        now = self.rt.engine.ctx.clock()
        if from_a_fast_clock(target.name, last, now):
            return None  # a fast clock's time is not "recent": it would block triggers for the skew
        if last.outcome is Outcome.IN_PROGRESS:
            # Another process's (its lease keeps ours out); an older one is resumed by the run.
            if now < last.planned_at + interval:
                detail = f"a forced rotation of {target.name} is in flight; see /v1/targets/{target.name}"
                return Refusal(409, "rotating", detail)
            return None
        if not coalesces(last, now, interval, now):
            return None
        until = next_trigger(last, now, interval)
        self._count_coalesced(target, last, until)
        return replace(self._answered_by(target, last), coalesced=True, next_trigger_at=until)

    def _count_coalesced(self, target: RotationSpec, rotation: RotationRecord, until: datetime) -> None:
        self.metrics.triggers_coalesced.labels(target.name).inc()
        log.info(
            "daemon.trigger_coalesced", target=target.name, rotation=rotation.id, next_trigger_at=_iso(until)
        )

    def _answered_by(self, target: RotationSpec, rotation: RotationRecord) -> TriggeredRun:
        """The trigger request that performed ``rotation``, or one made up from the journal.

        Only a request that planned the rotation itself answers for it: one that came back busy,
        or was coalesced, lists another's rotation or did nothing, and its outcome would say so.
        """
        with self._runs_lock:
            for run in reversed(self._runs.values()):
                if run.id == rotation.id or rotation.id in run.performed:
                    return run
            # Another replica's, or from before a restart: known by the journal's rotation id,
            # which then also answers GET /v1/rotations/{id}.
            run = TriggeredRun(
                rotation.id,
                target.name,
                rotation.planned_at,
                status="finished",
                started_at=rotation.planned_at,
                finished_at=rotation.finished_at,
                rotations=[_reference(rotation)],
            )
            _describe(run, rotation)
            self._remember(run)
            return run

    def _remember(self, run: TriggeredRun) -> None:
        """Keep ``run`` for ``GET /v1/rotations/{id}`` (the caller holds ``_runs_lock``)."""
        self._runs[run.id] = run
        while len(self._runs) > KEPT_RUNS:
            self._runs.popitem(last=False)

    def run(self, run_id: str) -> TriggeredRun | None:
        """A trigger request by id, or ``None`` if unknown (or long forgotten)."""
        with self._runs_lock:
            return self._runs.get(run_id)

    # -- what the endpoints read ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``status --json``'s document."""
        return report.status(self.config, self.rt.journal, self.rt.engine.ctx.clock)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready unless draining, the journal is unreachable, or an upstream refused our credential.

        Draining (stop requested, runs in flight finishing) is not ready, so a load balancer or a
        Kubernetes Service sends the next trigger to another replica instead of to a 503.
        """
        draining = self.draining.is_set()
        try:
            self.rt.journal.targets()
            journal = "ok"
        except JournalDamagedError:
            journal = "damaged"  # the runs' alerts carry the line saying where and what to do
        except Exception as error:  # noqa: BLE001 - any failure to read means not ready
            journal = f"unreachable ({type(error).__name__})"
        credentials = {
            "gitlab": self.rt.gitlab.credential_refused,
            "infisical": self.rt.infisical.credential_refused,
        }
        body = {
            "journal": journal,
            "gitlab": {
                "credential": "refused" if credentials["gitlab"] else "ok",
                "expires_at": _iso(self._credentials.get("gitlab_manager_token")),
            },
            "infisical": {
                "credential": "refused" if credentials["infisical"] else "ok",
                "expires_at": _iso(self._credentials.get("infisical_access_token")),
            },
            "draining": draining,
        }
        ready = journal == "ok" and not any(credentials.values()) and not draining
        return ready, {"ready": ready, **body}

    def gauges(self) -> list[TargetGauges]:
        """The per-target gauges, from the journal."""
        engine = self.rt.engine
        rows = []
        for target in self.targets.values():
            key = engine.key(target, resolve=False)
            situation, state = engine.situation(target, key)
            tokens = self.rt.journal.tokens(key) if key else []
            current = [t for t in tokens if t.role is Role.CURRENT and t.expires_at is not None]
            expires = current[-1].expires_at if current else None
            rows.append(
                TargetGauges(
                    target=target.name,
                    token_expiry=expiry_instant(expires) if expires else None,
                    next_rotation=situation.due.next_due,
                    last_success=state.verified_start if state else None,
                    drift=bool(state and state.drift_since),
                    # Not failing_reason: it stops counting when a backoff ends, while the retry runs.
                    failing=bool(state and (state.drift_since or state.hold_since or state.failures))
                    or any(unrevocable(t) for t in tokens)
                    or engine.unresolved(target, key) is not None,
                    pending_revokes=sum(1 for t in tokens if awaits_revoke(t)),
                )
            )
        return rows

    # -- jobs -----------------------------------------------------------------------------------
    def _scheduled(self, name: str) -> None:
        lock = self._locks[name]
        if not lock.acquire(blocking=False):
            return  # the trigger (or another job) is running this target; it re-plans the wake-up
        try:
            self._execute(self.targets[name], RunOptions(names=(name,), trigger="schedule"))
        finally:
            lock.release()

    def _triggered(self, run: TriggeredRun, arrived: datetime | None = None) -> None:
        lock = self._locks[run.target]
        try:
            # Times before statuses: a poller never sees "running" without started_at.
            run.started_at = datetime.now(UTC)
            run.status = "running"
            target = self.targets[run.target]
            options = RunOptions(
                names=(run.target,),
                force=True,
                trigger="http",
                triggered_at=arrived,
                min_trigger_interval=self.config.daemon.min_trigger_interval,
            )
            outcome = self._execute(target, options)
            if outcome is None:
                run.finished_at = datetime.now(UTC)
                run.status = "cancelled"
                return
            onto = self._rotation(target, outcome.coalesced_onto) if outcome.coalesced_onto else None
            if onto is not None:
                # Described by the rotation it was coalesced onto, as a coalesced 202 is.
                interval = self.config.daemon.min_trigger_interval
                until = next_trigger(onto, self.rt.engine.ctx.clock(), interval)
                self._count_coalesced(target, onto, until)
                run.rotations, run.coalesced, run.next_trigger_at = [_reference(onto)], True, until
                _describe(run, onto)
            else:
                run.performed = outcome.rotations
                run.rotations = self._rotations(target, outcome.rotations)
                run.outcome, run.failed, run.detail = outcome.status, outcome.failed, outcome.detail
            run.finished_at = datetime.now(UTC)
            run.status = "finished"
        finally:
            lock.release()

    def _sweep_removed(self) -> None:
        try:
            stand_ins = self.rt.engine.removed_targets()
        except JournalDamagedError as error:
            # The check jobs alert per target; this says why removed targets are not swept either.
            log.error("journal.damaged", error=str(error))
            return
        for stand_in in stand_ins:
            self._execute(stand_in, RunOptions(trigger="schedule"), plan=False)

    def _execute(
        self, target: RotationSpec, options: RunOptions, *, plan: bool = True
    ) -> TargetReport | None:
        """Run one target unless the daemon is draining (``None`` then)."""
        if not self._enter():
            return None
        try:
            outcome = self.rt.engine.run_target(target, options)
        finally:
            self._leave()
        if outcome.status == "busy":
            # Another replica (or a run-once) holds the target: expected with several, not news.
            log.debug("daemon.run", target=target.name, trigger=options.trigger, status=outcome.status)
        elif outcome.status != "idle":
            log.info("daemon.run", target=target.name, trigger=options.trigger, status=outcome.status)
        if plan:
            self._plan_wake(target)
        return outcome

    def _plan_wake(self, target: RotationSpec) -> None:
        """Schedule a one-shot run at the target's next event: due, a grace's end, a backoff's end."""
        if self.draining.is_set():
            return
        try:
            engine = self.rt.engine
            situation, state = engine.situation(target, engine.key(target, resolve=False))
        except Exception as error:  # noqa: BLE001 - the check job still runs on its interval
            log.warning("daemon.wake_unplanned", target=target.name, error=type(error).__name__)
            return
        now = engine.ctx.clock()
        events = [situation.due.next_due, *situation.revoke_afters, *situation.tombstones_until]
        if state is not None and state.failures and state.backoff_until is not None:
            events.append(state.backoff_until)
        future = [when for when in events if when is not None and when > now]
        if not future:
            return
        # The engine's clock may be shifted (test hook); APScheduler runs on the real one.
        run_at = datetime.now(UTC) + (min(future) - now) + _WAKE_MARGIN
        self.scheduler.add_job(
            self._scheduled,
            "date",
            run_date=run_at,
            args=[target.name],
            id=f"wake:{target.name}",
            name=f"wake {target.name}",
            replace_existing=True,
        )

    def _refresh_credentials(self) -> None:
        if not self._enter():  # the clients are about to close
            return
        try:
            self._read_credentials()
        finally:
            self._leave()

    def _read_credentials(self) -> None:
        expiries: dict[str, datetime | None] = {}
        try:
            me = self.rt.gitlab.manager_self()
            expiries["gitlab_manager_token"] = expiry_instant(me.expires_at) if me.expires_at else None
        except RotatorError as error:
            log.warning("daemon.credential_unread", credential="gitlab_manager_token", error=str(error))
        try:
            if self.config.targets:  # the access token is obtained by a first authenticated read
                self.rt.infisical.get_connection(str(self.config.targets[0].connection_id))
            expiries["infisical_access_token"] = self.rt.infisical.access_token_expiry()
        except RotatorError as error:
            log.warning("daemon.credential_unread", credential="infisical_access_token", error=str(error))
        self._credentials.update(expiries)

    # -- helpers --------------------------------------------------------------------------------
    def _enter(self) -> bool:
        """Admit a run (counted in flight) unless draining; the check and the count are one step."""
        with self._idle:
            if self.draining.is_set():
                return False
            self._inflight += 1
            return True

    def _leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def _state(self, target: RotationSpec) -> TargetState | None:
        key = self.rt.engine.key(target, resolve=False)
        return self.rt.journal.target(key) if key else None

    def _rotations(self, target: RotationSpec, ids: tuple[str, ...]) -> list[dict[str, Any]]:
        """The journal's records of the rotations ``ids`` (a run plans at most two), oldest first."""
        key = self.rt.engine.key(target, resolve=False)
        if key is None or not ids:
            return []
        return [_reference(r) for r in reversed(self.rt.journal.rotations(key, limit=10)) if r.id in ids]

    def _rotation(self, target: RotationSpec, rotation_id: str) -> RotationRecord | None:
        key = self.rt.engine.key(target, resolve=False)
        found = [r for r in self.rt.journal.rotations(key, limit=10) if r.id == rotation_id] if key else []
        return found[0] if found else None


def first_checks(
    names: Sequence[str], now: datetime, rng: random.Random | None = None
) -> list[tuple[str, datetime]]:
    """Each target's first check: all due at ``now``, in an order of this replica's own.

    Replicas that start together each check every target. In one shared order they would all
    reach the same target at once and every one but the lease holder would answer "busy", while
    the targets further down wait: shuffled, each replica starts on different targets and those
    it reaches after another replica are already done (an idle check, journal reads only).
    APScheduler runs jobs due together by job id, so the order is set by the times, a few
    microseconds apart.
    """
    shuffled = list(names)
    (rng or random.Random()).shuffle(shuffled)  # noqa: S311 - an order of work, not a secret
    return [(name, now + index * _FIRST_CHECK_STEP) for index, name in enumerate(shuffled)]


def _describe(run: TriggeredRun, rotation: RotationRecord) -> None:
    """Set ``run``'s outcome from the finished journal ``rotation`` it stands for."""
    succeeded = rotation.outcome is Outcome.SUCCEEDED
    run.outcome, run.failed, run.detail = ("done" if succeeded else "failed"), not succeeded, rotation.error


def _reference(rotation: RotationRecord) -> dict[str, Any]:
    """A journal rotation as a triggered run lists it."""
    return {
        "id": rotation.id,
        "outcome": rotation.outcome.value,
        "step": rotation.step.value,
        "new_token_id": rotation.new_token_id,
    }


def on_signal(stop: threading.Event) -> Callable[[int, object], None]:
    """A signal handler that asks the daemon to stop."""

    def handler(signum: int, _frame: object) -> None:
        log.info("daemon.signal", signal=signum)
        stop.set()

    return handler
