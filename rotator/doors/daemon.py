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

With several replicas on one journal, the per-target jobs (``check``, ``wake``, ``cron``) run on
every replica: that is how the work spreads, and the target's lease lets one replica at a time act
on it (another's run comes back busy, or finds nothing due once it is done). The ``removed`` sweep
is the fleet's: each replica's job first claims the turn in the journal's call ledger
(:meth:`rotator.core.ports.CallLedger.claim`), and only the one that gets it sweeps, so the keys
no configured target maps to are swept once per ``check_interval``, not once per replica. The
expiry watch (job ``watch``, when the caller turns it on) is the fleet's the same way
(:mod:`rotator.doors.watch`). The ``credentials`` refresh stays per replica: it feeds that
replica's own ``/readyz`` and credential gauges, which say what that replica sees (its own
clients, its own Infisical login). A credential an upstream refused (a GitLab 401, a refused
Infisical login) is one ``daemon.credential_refused`` line saying what to fix
(:mod:`rotator.doors.preflight`'s words), logged when it is first seen refused, not again until it
has worked in between.

Trigger requests are kept in the journal (:class:`rotator.core.model.TriggerRequest`), so
``GET /v1/rotations/{id}`` answers on every replica sharing it, and a request outlives the replica
that accepted it. The accepting replica claims the request and renews its claims (job
``requests``, every lease renewal interval, on a thread of its own so busy workers cannot starve
it); a request whose claim lapsed (its replica died, or lost the database) and that has not ended is
claimed by another replica with one conditional update, and carried out there. Carried out once:
the engine, under the target's lease, plans no rotation for a request that already planned one
(``RunOptions.request_id``), and resumes that one instead.

Stopping (:meth:`Daemon.stop`) takes no new work, lets the runs in flight finish within the
shutdown timeout, and says whether they did; then it lets its claims lapse at once, so another
replica takes over the requests it accepted but never started.
"""

import os
import random
import threading
import uuid

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rotator.adapters import cron
from rotator.adapters.metrics import Metrics, TargetGauges
from rotator.core.coalescing import FORCED_TRIGGERS, coalesces, next_trigger
from rotator.core.durations import stamp_or_none
from rotator.core.errors import JournalDamagedError, JournalUnavailableError, RotatorError, UpstreamError
from rotator.core.ledger import claim_window
from rotator.core.model import (
    Outcome,
    RequestStatus,
    Role,
    RotationRecord,
    TargetState,
    TriggerRequest,
)
from rotator.core.schedule import Situation, expiry_instant
from rotator.core.spec import RotationSpec
from rotator.doors import report
from rotator.doors.journal_health import JournalHealth, bounded_gauges
from rotator.doors.preflight import Wording, refused_credential
from rotator.doors.requests import TriggeredRun, described, made_up, reference
from rotator.doors.watch import WATCH_JOB, ExpiryWatch, Watching
from rotator.doors.wiring import Runtime
from rotator.engine.context import Settings
from rotator.engine.retire import unrevocable
from rotator.engine.run import RunOptions, TargetReport, awaits_revoke, from_a_fast_clock


log = structlog.get_logger("rotator")
#: At most this many lapsed requests are taken over in one pass of the ``requests`` job.
TAKEN_PER_PASS = 100
#: How often the daemon re-reads its own credentials' expiry.
CREDENTIAL_REFRESH = timedelta(hours=1)
_WAKE_MARGIN = timedelta(seconds=1)  # wake just after an event, not a hair before it
#: The fleet-wide job's name in the journal's claims.
REMOVED_JOB = "removed"
#: Seconds before a request that found its target held by another worker is tried again.
BUSY_RETRY = 2.0
_TRIGGER_WAIT = 0.5  # seconds a trigger waits for a target's lock before answering 409
#: Between two first checks: far below a check's own time, far above the scheduler's precision.
_FIRST_CHECK_STEP = timedelta(microseconds=10)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a trigger was not accepted: an HTTP status and a reason for the body."""

    status: int
    reason: str
    detail: str


class Daemon:
    """The scheduler, the trigger's bookkeeping, and what the HTTP endpoints read."""

    def __init__(
        self,
        rt: Runtime,
        metrics: Metrics,
        *,
        trigger_enabled: bool,
        wording: Wording | None = None,
        watching: Watching | None = None,
    ) -> None:
        """Drive ``rt``'s engine; ``metrics`` hears every run; the trigger is off without a token.

        ``wording`` names the variables the credentials came from (default: this process's environment).
        ``watching`` turns the expiry watch on (:mod:`rotator.doors.watch`): the caller builds its
        inventory provider and timings from the config; without it the daemon watches nothing.
        """
        self.rt, self.metrics, self.trigger_enabled = rt, metrics, trigger_enabled
        self._wording = wording if wording is not None else Wording.of(os.environ)
        self._refused: set[str] = set()  # credentials whose refusal was logged and has not cleared
        self.config = rt.config
        self.targets = {t.name: t for t in rt.engine.spec.targets}
        self._locks = {name: threading.Lock() for name in self.targets}
        #: Who claims this daemon's trigger requests: one name per daemon, never reused.
        self.replica = f"{rt.engine.ctx.actor}:{uuid.uuid4().hex[:8]}"
        self._inflight = 0
        self._idle = threading.Condition()
        self.draining = threading.Event()
        self._credentials: dict[str, datetime | None] = {}
        settings = rt.config.daemon
        self.scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(rt.config.max_concurrent_rotations),
                # The claims' renewal must not wait behind rotations for a worker.
                "requests": ThreadPoolExecutor(1),
                # An inventory of a large fleet takes minutes of rate-limited reads: not a rotation's worker.
                "watch": ThreadPoolExecutor(1),
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(settings.check_interval.total_seconds()),
            },
            timezone=UTC,
        )
        metrics.start_targets(self.targets)
        #: Whether the journal can be read and written, asked within a deadline (/readyz, /metrics).
        self.journal_health = JournalHealth(rt.journal)
        metrics.watch_journal(self.journal_health.reason)
        metrics.watch_targets(bounded_gauges(self.journal_health, self.gauges))
        metrics.watch_credentials(lambda: dict(self._credentials))
        self.watch = (
            ExpiryWatch(
                watching,
                ledger=rt.journal,
                metrics=metrics,
                observer=rt.engine.ctx.observer,
                jitter=settings.jitter,
            )
            if watching is not None
            else None
        )

    @property
    def _settings(self) -> Settings:
        """The engine's timings: a request's claim lasts as long as a lease, renewed as often."""
        return self.rt.engine.ctx.settings

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule every target's jobs and start the scheduler; the first checks run at once."""
        self.add_jobs(datetime.now(UTC))
        self.scheduler.start()

    def add_jobs(self, now: datetime) -> None:
        """Add every job to the scheduler (:meth:`start` starts it), the first runs at ``now``."""
        settings = self.config.daemon
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
            self.sweep_removed, every, id=REMOVED_JOB, name="removed targets", next_run_time=now
        )
        if self.watch is not None:
            self.scheduler.add_job(
                self.run_watch,
                IntervalTrigger(
                    seconds=self.watch.watching.interval.total_seconds(),
                    jitter=int(settings.jitter.total_seconds()) or None,
                    timezone=UTC,
                ),
                id=WATCH_JOB,
                name="expiry watch",
                executor="watch",
                next_run_time=now,
            )
        self.scheduler.add_job(
            self.tend_requests,
            IntervalTrigger(seconds=self._settings.lease_renew.total_seconds(), timezone=UTC),
            id="requests",
            name="trigger requests",
            executor="requests",
            next_run_time=now,
        )
        self.scheduler.add_job(
            self._refresh_credentials,
            IntervalTrigger(seconds=CREDENTIAL_REFRESH.total_seconds(), timezone=UTC),
            id="credentials",
            name="own credentials",
            next_run_time=now,
        )

    def stop(self, timeout: timedelta) -> bool:
        """Take no new work; wait up to ``timeout`` for runs in flight; True if none is left."""
        with self._idle:  # under the lock that admits runs, so none slips in after this
            self.draining.set()
        self.rt.engine.stopping.set()
        self.scheduler.pause()
        with self._idle:
            drained = self._idle.wait_for(lambda: self._inflight == 0, timeout.total_seconds())
        self.scheduler.shutdown(wait=False)
        self._hand_over()
        return drained

    def _hand_over(self) -> None:
        """Let this replica's claims lapse now: another takes over what it accepted but did not finish.

        A queued request never started here; one still running (the drain timed out) is resumed
        elsewhere under the exactly-once rule. If this write fails, the claims lapse on their own.
        """
        try:
            self.rt.journal.renew_claims(self.replica, self.rt.engine.ctx.clock(), timedelta(0))
        except Exception as error:  # noqa: BLE001 - stopping goes on; the claims lapse with their ttl
            log.warning("daemon.claims_kept", error=type(error).__name__)

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
        if not isinstance(answer, TriggeredRun) or answer.request.coalesced:
            lock.release()  # nothing was queued; a queued run releases it when it ends
        return answer

    def _queue(self, name: str) -> TriggeredRun | Refusal:
        """Record and queue a forced run of ``name``, whose lock the caller holds (503 if draining).

        The request is in the journal, claimed by this replica, before the 202: if this process
        dies any time after, its claim lapses and another replica carries the request out.
        """
        request = TriggerRequest(
            uuid.uuid4().hex,
            name,
            datetime.now(UTC),
            # The job may wait for a worker while another replica forces a rotation of the
            # target: the engine re-checks the interval under the lease, from this arrival.
            arrived_at=self.rt.engine.ctx.clock(),
            replica=self.replica,
        )
        with self._idle:  # stop() sets draining under this lock: no 202 for a run that never comes
            if self.draining.is_set():
                return Refusal(503, "shutting_down", "the daemon is shutting down; retry on another replica")
            try:
                request = self.rt.journal.add_request(
                    request, self.rt.engine.ctx.clock(), self._settings.lease_ttl
                )
            except Exception as error:  # noqa: BLE001 - nothing recorded: the caller may retry, here or elsewhere
                why = str(error) if isinstance(error, RotatorError) else type(error).__name__
                return Refusal(503, "journal_unavailable", f"the request could not be recorded: {why}")
            self._schedule(request)
        return TriggeredRun(request)

    def _schedule(self, request: TriggerRequest, *, taken_over: bool = False, delay: float = 0) -> None:
        """Run ``request`` on a worker (``taken_over``: this job takes the target's lock itself)."""
        # misfire_grace_time=None: however long it waits for a free worker, it runs (and so
        # releases the target's lock); a missed trigger would lock the target for good.
        self.scheduler.add_job(
            self._taken if taken_over else self._triggered,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=delay),
            args=[request],
            id=f"trigger:{request.id}",
            name=f"trigger {request.target}",
            misfire_grace_time=None,
            replace_existing=True,
        )

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
        answer = self._answered_by(target, last)
        return TriggeredRun(replace(answer, coalesced=True, next_trigger_at=until))

    def _count_coalesced(self, target: RotationSpec, rotation: RotationRecord, until: datetime) -> None:
        self.metrics.triggers_coalesced.labels(target.name).inc()
        log.info(
            "daemon.trigger_coalesced",
            target=target.name,
            rotation=rotation.id,
            next_trigger_at=stamp_or_none(until),
        )

    def _answered_by(self, target: RotationSpec, rotation: RotationRecord) -> TriggerRequest:
        """The trigger request that planned ``rotation`` (any replica's), or one made up from the journal.

        Only the request that planned the rotation answers for it (the rotation records which):
        one that came back busy, or was coalesced, planned none, and its outcome would say so.
        """
        if rotation.request is not None:
            request = self.rt.journal.request(rotation.request)
            if request is not None:
                return request
        # `rotator rotate`'s rotation, or one whose request was pruned: known by the rotation's
        # id, recorded (once) so that GET /v1/rotations/{id} answers for it on every replica.
        made = made_up(target.name, rotation)
        try:
            return self.rt.journal.add_request(made, self.rt.engine.ctx.clock(), self._settings.lease_ttl)
        except Exception as error:  # noqa: BLE001 - the answer stands; only a later GET of its id misses
            log.warning("daemon.request_unrecorded", request=made.id, error=type(error).__name__)
            return made

    def run(self, run_id: str) -> TriggeredRun | None:
        """A trigger request by id, as the journal holds it; ``None`` if unknown (or long pruned)."""
        request = self.rt.journal.request(run_id)
        return TriggeredRun(request) if request is not None else None

    # -- what the endpoints read ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``status --json``'s document."""
        return report.status(self.config, self.rt.journal, self.rt.engine.ctx.clock)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready unless draining, the journal is not ``ok``, or an upstream refused our credential.

        Draining (stop requested, runs in flight finishing) is not ready, so a load balancer or a
        Kubernetes Service sends the next trigger to another replica instead of to a 503. So is
        a journal that is unreachable, damaged or read-only: a run there would fail at its lease.
        """
        draining = self.draining.is_set()
        journal = self.journal_health.state()
        credentials = {
            "gitlab": self.rt.gitlab.credential_refused,
            "infisical": self.rt.infisical.credential_refused,
        }
        body = {
            "journal": journal,
            "gitlab": {
                "credential": "refused" if credentials["gitlab"] else "ok",
                "expires_at": stamp_or_none(self._credentials.get("gitlab_manager_token")),
            },
            "infisical": {
                "credential": "refused" if credentials["infisical"] else "ok",
                "expires_at": stamp_or_none(self._credentials.get("infisical_access_token")),
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

    def _triggered(self, request: TriggerRequest) -> None:
        """Carry out a request this replica accepted; the HTTP thread took the target's lock for it."""
        try:
            self._carry_out(request)
        finally:
            self._locks[request.target].release()

    def _taken(self, request: TriggerRequest) -> None:
        """Carry out a request taken over from another replica, when no run of its target is in flight."""
        if request.target not in self.targets:
            # This replica's config differs from the one that accepted it: nothing here to run.
            detail = (
                f"replica {self.replica} took the request over but has no target named {request.target!r}"
            )
            cancelled = replace(
                request, status=RequestStatus.CANCELLED, finished_at=datetime.now(UTC), detail=detail
            )
            try:
                self._record(cancelled)
            except Exception as error:  # noqa: BLE001 - the claim is ours: nobody else would end it
                self._retry_later(request, error)
            return
        lock = self._locks[request.target]
        if not lock.acquire(blocking=False):
            # A run of the target is in flight here: try again soon (the claim is ours, renewed).
            self._schedule(request, taken_over=True, delay=self._settings.lease_renew.total_seconds())
            return
        try:
            self._carry_out(request)
        finally:
            lock.release()

    def _carry_out(self, request: TriggerRequest) -> None:
        """Run the request's forced rotation and record how it ended, all under this replica's claim.

        Each record is conditional on the claim: if another replica took the request over (this
        one's claim lapsed while it waited), nothing more is recorded or started here. What
        happens at each crash point: before RUNNING is recorded, or at any point after, the
        request stays open under a claim that lapses; the replica taking it over runs it again,
        and the engine's exactly-once rule (under the target's lease) turns that run into
        resuming the rotation this one planned, if it planned one, or reporting it once ended.
        A record that fails here (the journal unreachable) is retried the same way, by this
        replica, so a claim it keeps renewing never strands the request.
        """
        if self.draining.is_set():
            return  # still queued: stop() lets the claim lapse, and another replica takes it over
        target = self.targets[request.target]
        running = replace(request, status=RequestStatus.RUNNING, started_at=datetime.now(UTC))
        try:
            if not self._record(running):
                return
        except Exception as error:  # noqa: BLE001 - not started: try again later
            self._retry_later(request, error)
            return
        interval = self.config.daemon.min_trigger_interval
        options = RunOptions(
            names=(request.target,),
            force=True,
            trigger="http",
            triggered_at=request.arrived_at if interval else None,
            min_trigger_interval=interval,
            request_id=request.id,
        )
        outcome = self._execute(target, options)
        try:
            if outcome is None or outcome.status == "skipped":
                # stop() began meanwhile (before the run was admitted, or after, before the engine
                # started it): nothing was done, so back in the queue, for another replica.
                self._record(replace(request, status=RequestStatus.QUEUED))
            elif outcome.status == "busy":
                # Another worker holds the target (a replica's run, a CronJob, or a dead replica's
                # lease not lapsed yet): nothing was done, and a 202 promised the rotation. Back in
                # the queue, tried again shortly; then it rotates, or coalesces onto the forced
                # rotation that held the target.
                if self._record(replace(request, status=RequestStatus.QUEUED)):
                    delay = min(BUSY_RETRY, self._settings.lease_renew.total_seconds())
                    self._schedule(request, taken_over=True, delay=delay)
            else:
                self._record(self._ended(running, target, outcome))
        except Exception as error:  # noqa: BLE001 - a run again reports what this one did, once
            self._retry_later(request, error)

    def _retry_later(self, request: TriggerRequest, error: Exception) -> None:
        log.warning("daemon.request_unrecorded", request=request.id, error=type(error).__name__)
        self._schedule(request, taken_over=True, delay=self._settings.lease_renew.total_seconds())

    def _ended(self, request: TriggerRequest, target: RotationSpec, outcome: TargetReport) -> TriggerRequest:
        """``request`` finished with the engine's ``outcome``."""
        ended = replace(request, status=RequestStatus.FINISHED, finished_at=datetime.now(UTC))
        onto = self._rotation(target, outcome.coalesced_onto) if outcome.coalesced_onto else None
        if onto is not None:
            # Described by the rotation it was coalesced onto, as a coalesced 202 is.
            until = next_trigger(onto, self.rt.engine.ctx.clock(), self.config.daemon.min_trigger_interval)
            self._count_coalesced(target, onto, until)
            coalesced = replace(ended, rotations=(reference(onto),), coalesced=True, next_trigger_at=until)
            return described(coalesced, onto)
        # Every rotation recorded for the request: planned here, or by a replica that died after PLANNED.
        served = tuple(reference(r) for r in self.rt.journal.request_rotations(request.id))
        return replace(
            ended, rotations=served, outcome=outcome.status, failed=outcome.failed, detail=outcome.detail
        )

    def _record(self, request: TriggerRequest) -> bool:
        """Record the request's progress under this replica's claim; False if that claim is gone."""
        if self.rt.journal.update_request(request):
            return True
        log.info("daemon.request_taken_elsewhere", request=request.id, target=request.target)
        return False

    # -- requests whose replica is gone ---------------------------------------------------------
    def tend_requests(self) -> None:
        """Renew this replica's claims; then take over requests whose claim lapsed (none while draining)."""
        clock, ttl = self.rt.engine.ctx.clock, self._settings.lease_ttl
        try:
            self.rt.journal.renew_claims(self.replica, clock(), ttl)
            if self.draining.is_set():
                return
            lapsed = self.rt.journal.lapsed_requests(clock(), TAKEN_PER_PASS)
            for request in lapsed:
                self._take_over(request)
        except Exception as error:  # noqa: BLE001 - the next pass tries again; the claims lapse meanwhile
            log.warning("daemon.requests_untended", error=type(error).__name__)

    def _take_over(self, request: TriggerRequest) -> None:
        """Claim ``request`` (one replica wins) and carry it out here; cancel it if its target is unknown."""
        claimed = self.rt.journal.claim_request(
            request.id, self.replica, self.rt.engine.ctx.clock(), self._settings.lease_ttl
        )
        if claimed is None:
            return  # another replica won it, or its own replica renewed in time
        log.info(
            "daemon.request_taken_over", request=request.id, target=request.target, replica=request.replica
        )
        self._schedule(claimed, taken_over=True)

    def sweep_removed(self) -> bool:
        """The ``removed`` job: sweep the removed targets, unless another replica's turn came first.

        True if this replica swept (see the module docstring: once per fleet per ``check_interval``).
        """
        if self.draining.is_set():
            return False  # a stopping replica leaves the turn to the others
        settings = self.config.daemon
        try:
            if not self.rt.journal.claim(REMOVED_JOB, claim_window(settings.check_interval, settings.jitter)):
                return False
            stand_ins = self.rt.engine.removed_targets()
        except JournalDamagedError as error:
            # The check jobs alert per target; this says why removed targets are not swept either.
            log.error("journal.damaged", error=str(error))
            return False
        except JournalUnavailableError as error:
            log.warning("daemon.removed_unswept", error=str(error))  # names the server, never a password
            return False
        for stand_in in stand_ins:
            self._execute(stand_in, RunOptions(trigger="schedule"), plan=False)
        return True

    def run_watch(self) -> bool:
        """The ``watch`` job: the expiry watch's turn (:mod:`rotator.doors.watch`); True if it ran here."""
        if self.watch is None or self.draining.is_set():
            return False  # a stopping replica leaves the turn to the others
        return self.watch.run()

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
            self._plan_wake(target, outcome.reading)
        return outcome

    def _plan_wake(
        self, target: RotationSpec, reading: tuple[Situation, TargetState | None] | None = None
    ) -> None:
        """Schedule a one-shot run at the target's next event: due, a grace's end, a backoff's end.

        From ``reading`` when the run gave one (idle: what its decision read; done: the records
        as it left them, read under its lease), a moment ago; else from the journal. Only a plan:
        the run it schedules reads afresh.
        """
        if self.draining.is_set():
            return
        engine = self.rt.engine
        try:
            situation, state = reading or engine.situation(target, engine.key(target, resolve=False))
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
            self._unread("gitlab_manager_token", error)
        try:
            if self.config.targets:  # the access token is obtained by a first authenticated read
                self.rt.infisical.get_connection(str(self.config.targets[0].connection_id))
            expiries["infisical_access_token"] = self.rt.infisical.access_token_expiry()
        except RotatorError as error:
            self._unread("infisical_access_token", error)
        self._refused -= expiries.keys()  # read: whatever was refused works again
        self._credentials.update(expiries)

    def _unread(self, credential: str, error: RotatorError) -> None:
        """Log why ``credential`` was not read: a refusal once, as what to fix; anything else as it is."""
        if not (isinstance(error, UpstreamError) and refused_credential(error)):
            log.warning("daemon.credential_unread", credential=credential, error=str(error))
        elif credential not in self._refused:
            self._refused.add(credential)
            log.error(
                "daemon.credential_refused", credential=credential, problem=self._wording.problem(error)
            )

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


def on_signal(stop: threading.Event) -> Callable[[int, object], None]:
    """A signal handler that asks the daemon to stop."""

    def handler(signum: int, _frame: object) -> None:
        log.info("daemon.signal", signal=signum)
        stop.set()

    return handler
