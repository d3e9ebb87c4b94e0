"""The one room every door leads into: a run over some targets, each isolated, each under a lease.

``run-once``, ``rotate``, the daemon's scheduled jobs and its HTTP trigger all call
:meth:`Engine.run`. Per target it reads the journal, asks :func:`rotator.core.schedule.decide` what to do,
and (only if there is work) takes the target's lease and resumes, rotates, revokes and re-checks
tombstones, in that order. One target's failure never stops another's; the report says which
failed, so the CLI can exit 1.
"""

import difflib
import threading
import uuid

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import structlog

from rotator.core.coalescing import CLOCK_SKEW_MARGIN, FORCED_TRIGGERS, coalesces, fast_clock_skew
from rotator.core.durations import stamp
from rotator.core.errors import (
    ConfigError,
    JournalDamagedError,
    JournalUnavailableError,
    LeaseLostError,
    TargetFailedError,
    UpstreamError,
)
from rotator.core.model import (
    Kind,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TargetKey,
    TargetRecords,
    TargetState,
    TokenRecord,
    UnresolvedProject,
)
from rotator.core.schedule import Due, Situation, Work, decide, expiry_instant, is_due
from rotator.core.spec import EngineSpec, RotationSpec
from rotator.engine import untracked
from rotator.engine.alerts import alert
from rotator.engine.context import Context
from rotator.engine.lease import LeaseKeeper
from rotator.engine.owners import PathCache, cache_ref, owner_of, path_ref, shown
from rotator.engine.readthrough import ReadThrough
from rotator.engine.recorder import Recorder, upstream_message
from rotator.engine.removed import Removed, RemovedRun, find_removed, plan_removed, stand_in
from rotator.engine.retire import unrevocable
from rotator.engine.rotation import TargetRun
from rotator.engine.timing import expiring_on, lifetime_note, timing


log = structlog.get_logger("rotator")
#: Suffix of the stand-in for a target removed from the config (see :meth:`Engine.removed_targets`).
REMOVED = " (removed)"
#: The step named when a target's ``group/project`` path does not resolve to an id.
RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What a run was asked to do."""

    names: tuple[str, ...] = ()
    force: bool = False
    dry_run: bool = False
    take_over: bool = False
    revoke_anyway: bool = False
    trigger: str = "run-once"
    #: An HTTP trigger's arrival, re-checked under the lease against ``min_trigger_interval``
    #: (:func:`rotator.core.coalescing.coalesces`): a forced rotation that finished within the
    #: interval before it makes the run start nothing. ``None`` (the CLI, the schedule): no check.
    triggered_at: datetime | None = None
    min_trigger_interval: timedelta = timedelta(0)
    #: The HTTP trigger request this run carries out, recorded in the PLANNED record of every
    #: rotation it plans. Under the lease, a request that already planned a rotation plans no
    #: other (another replica took it over): that rotation is resumed if unfinished, and reported.
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class TargetReport:
    """What a run did (or, dry, would do) for one target."""

    name: str
    status: str  # idle | planned | done | failed | busy | skipped | coalesced
    failed: bool
    detail: str
    actions: tuple[str, ...] = ()
    #: The ids of the rotations this run planned (not one it resumed, nor another worker's); for
    #: a request (``RunOptions.request_id``), every rotation recorded for it, oldest first.
    rotations: tuple[str, ...] = ()
    #: Status "coalesced": the forced rotation the run was coalesced onto (RunOptions.triggered_at).
    coalesced_onto: str | None = None
    #: Status "idle" or "planned" (what the decision read) or "done" (the records as the run left
    #: them, read under its lease): the daemon plans the next wake-up from it instead of reading
    #: the journal again.
    reading: "tuple[Situation, TargetState | None] | None" = field(default=None, compare=False, repr=False)
    #: What the run leaves an operator to do that is no failure (the exit code ignores it): a
    #: first rotation's untracked tokens (:mod:`rotator.engine.untracked`). One line each.
    warnings: tuple[str, ...] = ()


class Engine:
    """Runs targets against the ports in a :class:`Context`."""

    def __init__(self, spec: EngineSpec, ctx: Context) -> None:
        """Act on ``spec``'s targets through ``ctx``."""
        self.spec, self.ctx = spec, ctx
        #: Set on SIGTERM: targets not yet started are skipped; those in flight finish.
        self.stopping = threading.Event()
        #: What :meth:`removed_targets` found, by the stand-in spec it returned.
        self._removed: dict[RotationSpec, Removed] = {}
        #: Lifetime notes already logged by this process (one warning per target and value).
        self._noted: set[tuple[str, str]] = set()
        self._noted_lock = threading.Lock()
        #: Resolved paths, read from the journal once per process (:class:`PathCache`).
        self.paths = PathCache(ctx.journal)

    def select(self, names: Sequence[str]) -> list[RotationSpec]:
        """The named targets (all if none); an unknown name is a usage error."""
        known = {t.name: t for t in self.spec.targets}
        for name in names:
            require_known(name, known)
        return [known[n] for n in names] if names else list(self.spec.targets)

    def run(self, options: RunOptions) -> list[TargetReport]:
        """Run the selected targets, at most ``max_concurrent_rotations`` at once."""
        targets = self.select(options.names)
        with ThreadPoolExecutor(max_workers=self.spec.max_concurrent_rotations) as pool:
            reports = list(pool.map(lambda t: self._guarded(t, options), targets))
            if options.names:
                return reports
            # Removed keys after the configured targets: a re-pointed target's verified push,
            # made just now, is what lets its old key retire its tokens in the same run.
            try:
                removed = self.removed_targets()
            except JournalDamagedError:
                raise
            except Exception as error:  # noqa: BLE001 - the configured targets have run; say why not these
                log.error("journal.unreadable", error=type(error).__name__)
                removed = []
            return reports + list(pool.map(lambda t: self._guarded(t, options), removed))

    def run_target(self, target: RotationSpec, options: RunOptions) -> TargetReport:
        """Run one target (configured, or a stand-in from :meth:`removed_targets`); never raises.

        The daemon's way in: a damaged journal fails the run with its one line (and /readyz
        says so), where :meth:`run` lets it end the command.
        """
        try:
            return self._guarded(target, options)
        except JournalDamagedError as error:
            return self._failed(target, str(error))

    def removed_targets(self) -> list[RotationSpec]:
        """Stand-ins for the journal keys no configured target maps to (:mod:`rotator.engine.removed`).

        Each is revoke-only: never due, never created for; :meth:`run_target` runs it.
        """
        stand_ins = []
        names: set[str] = set()
        for found in find_removed(self.spec, self.ctx.journal, self.ctx.clock(), self.paths):
            name = stand_in_name(found, names)
            names.add(name)
            spec = stand_in(found, name)
            self._removed[spec] = found
            stand_ins.append(spec)
        return stand_ins

    def key(self, target: RotationSpec, *, resolve: bool) -> TargetKey | None:
        """The journal key: the project path's id from the journal, or from GitLab if ``resolve``."""
        url = self.spec.gitlab_url

        def lookup(kind: Kind, path: str) -> int | None:
            ref = cache_ref(kind, path)
            found = self.paths.project_id(url, ref)
            if found is None and resolve:
                found = (
                    self.ctx.gitlab.group_id(path) if kind is Kind.GROUP else self.ctx.gitlab.project_id(path)
                )
                self.paths.remember(url, ref, found)
            return found

        owner = owner_of(target, lookup)
        return TargetKey.of(url, owner, target.connection_id) if owner is not None else None

    def unresolved(self, target: RotationSpec, key: TargetKey | None) -> UnresolvedProject | None:
        """The recorded failure to resolve the target's project path, while that leaves it keyless."""
        ref = path_ref(target)
        if key is not None or ref is None:
            return None
        return self.ctx.journal.unresolved(self.spec.gitlab_url, ref)

    def failing(
        self,
        target: RotationSpec,
        key: TargetKey | None,
        state: TargetState | None,
        now: datetime,
        ctx: Context | None = None,
    ) -> str | None:
        """Why a configured target counts as failing (exit 1), from the journal alone; else None."""
        if key is None:
            return unresolved_reason(self.unresolved(target, key))
        return failing_reason(state, now, (ctx or self.ctx).journal.tokens(key), target.name)

    def situation(
        self, target: RotationSpec, key: TargetKey | None, ctx: Context | None = None
    ) -> tuple[Situation, TargetState | None]:
        """What the journal says about the target, offline (through ``ctx``'s journal if given)."""
        ctx = ctx or self.decision_ctx(key)
        state = ctx.journal.target(key) if key else None
        tokens = ctx.journal.tokens(key) if key else []
        due: Due = is_due(*timing(ctx, target, key), ctx.clock())
        return (
            Situation(
                due=due,
                unfinished=bool(key and ctx.journal.unfinished(key)),
                frozen=bool(state and state.drift_since),
                holding=bool(state and state.hold_since),
                backoff_until=state.backoff_until if state else None,
                revoke_afters=tuple(t.revoke_after for t in tokens if awaits_revoke(t) and t.revoke_after),
                tombstones_until=tuple(s.until for s in ctx.journal.tombstones(key)) if key else (),
            ),
            state,
        )

    def decision_ctx(self, key: TargetKey | None, kept: TargetRecords | None = None) -> Context:
        """The context for one decision about ``key``: its own records read once (no lease held).

        What it keeps (``kept``, if given: records just read) lives for this decision only; acting
        on it takes the lease, and reads afresh.
        """
        if key is None:
            return self.ctx
        return replace(self.ctx, journal=ReadThrough(self.ctx.journal, key, kept).as_journal())

    def _guarded(self, target: RotationSpec, options: RunOptions) -> TargetReport:
        if self.stopping.is_set():
            return TargetReport(target.name, "skipped", failed=False, detail="not started: stopping")
        # The rotations this run plans, filled as each is recorded: kept even if the run then fails.
        planned: list[str] = []
        # The context (and key) the run last read through: its decision's, or the records it left.
        decided: list[tuple[Context, TargetKey | None]] = []
        try:
            report = replace(self._one(target, options, planned, decided), rotations=tuple(planned))
        except UpstreamError as error:
            message = upstream_message(replace(error, target=target.name), "prepare")
        except LeaseLostError as error:
            message = str(error)
        except JournalUnavailableError as error:
            message = f"{target.name}: {error}"  # names the server, never a password
        except JournalDamagedError:
            raise  # not this target's failure: no target can run on a damaged journal
        except Exception as error:  # noqa: BLE001 - one target's surprise must not sink the others
            # The type only: an unexpected exception's text is not known to be free of secrets.
            message = f"{target.name}: unexpected {type(error).__name__}; see the journal and retry"
        else:
            self._warn_lifetime(target, *(decided[0] if decided else ()))
            return report
        return self._failed(target, message, planned)

    def _failed(self, target: RotationSpec, message: str, planned: Sequence[str] = ()) -> TargetReport:
        """Alert that ``target`` failed with ``message``, and report it."""
        try:
            key = self.key(target, resolve=False)
        except Exception:  # noqa: BLE001 - the journal may be what failed; alert without the expiry
            key = None
        alert(self.ctx, target, key, "failed", message)
        return TargetReport(target.name, "failed", failed=True, detail=message, rotations=tuple(planned))

    def _warn_lifetime(
        self, target: RotationSpec, ctx: Context | None = None, key: TargetKey | None = None
    ) -> None:
        """Rule 6: warn once per target (and value) when GitLab's lifetime cap overrides rotate_before.

        From ``ctx`` and ``key`` when the run gives them (what it read a moment ago), else the journal.
        """
        if target.removed:
            return
        try:
            if ctx is None:
                ctx, key = self.ctx, self.key(target, resolve=False)
            note = lifetime_note(ctx, target, key)
        except Exception:  # noqa: BLE001 - a warning must never turn a finished run into a failure
            return
        if note is None:
            return
        with self._noted_lock:
            if (target.name, note) in self._noted:
                return
            self._noted.add((target.name, note))
        # Not a failure: the token is rotated at the effective time, once per lifetime.
        log.warning("token.lifetime_capped", target=target.name, note=note)

    def _one(
        self,
        target: RotationSpec,
        options: RunOptions,
        planned: list[str],
        decided: list[tuple[Context, TargetKey | None]],
    ) -> TargetReport:
        if target.removed:
            # A stand-in this engine's removed_targets made (its key and what replaced it).
            return self._removed_one(target, self._removed[target], options)
        key = self.key(target, resolve=False)
        ctx = self.decision_ctx(key)
        situation, state = self.situation(target, key, ctx)
        work = decide(situation, self.ctx.clock(), force=options.force, take_over=options.take_over)
        failing = self.failing(target, key, state, self.ctx.clock(), ctx)
        if options.dry_run:
            detail = describe(work, situation, failing)
            note = lifetime_note(ctx, target, key)
            decided.append((ctx, key))
            return TargetReport(
                target.name,
                "planned",
                failing is not None,
                f"{detail}; {note}" if note else detail,
                reading=(situation, state),
            )
        if work.idle:
            if failing is not None and expiring_on(ctx, target, key, self.ctx.clock()) is not None:
                # Nothing will be tried before the backoff ends, and the token is running out.
                alert(self.ctx, target, key, "expiring", f"not rotated: {failing}")
            decided.append((ctx, key))
            return TargetReport(
                target.name,
                "idle",
                failing is not None,
                failing or describe(work, situation, None),
                reading=(situation, state),
            )
        if key is None:
            try:
                key = self.key(target, resolve=True)
            except UpstreamError as error:
                return self._unresolved(target, error)
        if key is None:  # pragma: no cover - resolve=True always yields a key or raises
            raise AssertionError
        return self._leased(target, key, options, work, planned, decided=decided)

    def _leased(  # noqa: PLR0913 - the two lists are _one's, filled as the run goes
        self,
        target: RotationSpec,
        key: TargetKey,
        options: RunOptions,
        work: Work,
        planned: list[str],
        *,
        decided: list[tuple[Context, TargetKey | None]],
    ) -> TargetReport:
        """Do ``work`` under the target's lease ("busy" if another worker holds it).

        Filled as the run goes: ``planned``, the rotations it planned; ``decided``, once it is
        done, a context holding its key's records as it left them (for the lifetime note, after
        the release).
        """
        # One holder per acquisition, so two runs in one process never share a lease.
        holder = f"{self.ctx.actor}:{uuid.uuid4().hex[:8]}"
        # The records are read with the acquisition (one round trip on a database), once the lease
        # is taken: they hold every write of a holder whose lease lapsed, and only this run writes
        # them from now on, so the run's first reads need not ask the store again.
        taken = self.ctx.journal.acquire_reading(
            key, target.name, holder, self.ctx.clock(), self.ctx.settings.lease_ttl
        )
        if taken is None:
            return TargetReport(target.name, "busy", failed=False, detail="another worker holds this target")
        lease, records = taken
        keeper = LeaseKeeper(self.ctx, lease, records)
        try:
            # Exactly once, under the lease (so whoever planned for this request has recorded it or
            # never will): a request that planned a rotation, here or on a replica that died
            # after PLANNED, plans no other. Its rotation is resumed if unfinished, as any is.
            served = self.ctx.journal.request_rotations(options.request_id) if options.request_id else []
            if served and not nothing_minted(served):
                planned.extend(r.id for r in served)
                unfinished = any(r.outcome is Outcome.IN_PROGRESS for r in served)
                work = replace(work, rotate=False, resume=work.resume or unfinished)
            else:
                # Under the lease, so another replica's forced rotation that ran while this trigger
                # waited for a worker is finished and recorded; before PLANNED, so nothing is minted.
                onto = self._coalesced_onto(target, lease.key, options)
                if onto is not None:
                    return _coalesced(target, onto)
            with keeper:
                report = self._work(target, options, Recorder(keeper, target), work, planned)
                # What the run left, kept past the release (the keeper's view is dropped then) for
                # the lifetime note alone, as a decision's reads are: read a moment ago, never acted on.
                if report.status == "done" and (left := keeper.view.kept()) is not None:
                    decided.append((self.decision_ctx(key, left), key))
                return report
        finally:
            self._release(keeper)

    def _release(self, keeper: LeaseKeeper) -> None:
        """Give the lease up; once it is lost, only as far as the journal lets (else it lapses)."""
        try:
            self.ctx.journal.release(keeper.lease)
        except Exception as error:
            if not keeper.lost.is_set():
                raise
            # The run has already failed on the lost lease: that, not this, is what it reports.
            log.warning("lease.release_failed", key=str(keeper.lease.key), error=type(error).__name__)

    def _coalesced_onto(
        self, target: RotationSpec, key: TargetKey, options: RunOptions
    ) -> RotationRecord | None:
        """The finished forced rotation an HTTP-triggered run is coalesced onto (lease held), if any."""
        if options.triggered_at is None:
            return None
        last = self.ctx.journal.last_rotation(key, FORCED_TRIGGERS)
        # An unfinished one is no other worker's any more (we hold the lease): the run resumes it.
        if last is None or last.outcome is Outcome.IN_PROGRESS:
            return None
        now = self.ctx.clock()
        if from_a_fast_clock(target.name, last, now):
            return None
        return last if coalesces(last, options.triggered_at, options.min_trigger_interval, now) else None

    def _unresolved(self, target: RotationSpec, error: UpstreamError) -> TargetReport:
        """The project path did not resolve: record it (``status``, the failing gauge), alert, fail.

        Nothing is created, pushed or revoked: without the project's id there is nothing to act
        on. The record stays until the path resolves (:meth:`Journal.remember_project` drops it).
        """
        message = str(error.located(target.name, RESOLVE))
        url, project, now = self.spec.gitlab_url, path_ref(target) or str(target.project), self.ctx.clock()
        last = self.ctx.journal.unresolved(url, project)
        self.ctx.journal.record_unresolved(
            UnresolvedProject(
                url,
                project,
                since=last.since if last else now,
                at=now,
                failures=(last.failures if last else 0) + 1,
                status=error.status,
                error=message,
            )
        )
        alert(self.ctx, target, None, "failed", message, step=RESOLVE)
        return TargetReport(target.name, "failed", failed=True, detail=message)

    def _removed_failing(self, removed: Removed) -> str | None:
        journal = self.ctx.journal
        return removed_failing_reason(
            journal.target(removed.key), self.ctx.clock(), journal.tokens(removed.key)
        )

    def _removed_one(self, target: RotationSpec, removed: Removed, options: RunOptions) -> TargetReport:
        """A removed key: revoke what is due, report what is left alone (a warning, not a failure).

        It fails (exit 1) while it holds a live token it has no access to revoke, or a held revoke.
        """
        plan = plan_removed(self.ctx.journal, removed, self.ctx.clock())
        hint = f"; to let it go: `{removed.forget}`"
        left = "; ".join(plan.left)
        failing = self._removed_failing(removed)
        still_failing = f"; still failing: {failing}" if failing else ""
        if options.dry_run:
            work = (
                [f"resume rotation {plan.resume.id} (stopped at {plan.resume.step.value})"]
                if plan.resume
                else []
            )
            work += [f"revoke token {t.token_id}" for t in plan.due]
            work += ["read the connection (daily: is it deleted?)"] if plan.probe else []
            work += ["record expired no-access tokens as abandoned"] if plan.abandon else []
            work += ["re-check tombstoned names"] if plan.recheck else []
            work += [f"left alone: {left}"] if left else []
            detail = "; ".join(work) + still_failing + hint
            return TargetReport(target.name, "planned", failed=failing is not None, detail=detail)
        if plan.idle:
            log.warning("removed.left_alone", target=target.name, key=str(removed.key), left=left)
            detail = f"left alone: {left}{still_failing}{hint}"
            return TargetReport(target.name, "idle", failed=failing is not None, detail=detail)
        holder = f"{self.ctx.actor}:{uuid.uuid4().hex[:8]}"
        taken = self.ctx.journal.acquire_reading(
            removed.key, removed.name, holder, self.ctx.clock(), self.ctx.settings.lease_ttl
        )
        if taken is None:
            return TargetReport(target.name, "busy", failed=False, detail="another worker holds this key")
        lease, records = taken
        keeper = LeaseKeeper(self.ctx, lease, records)
        try:
            with keeper:
                rec = Recorder(keeper, target)
                run = RemovedRun(rec.ctx, rec, target, removed)
                try:
                    run.sweep(plan)
                except TargetFailedError as error:
                    return TargetReport(target.name, "failed", failed=True, detail=error.message + hint)
                except UpstreamError as error:
                    message = upstream_message(replace(error, target=target.name), "revoke")
                    rec.failed("failed", message)
                    return TargetReport(target.name, "failed", failed=True, detail=message + hint)
        finally:
            self._release(keeper)
        still = "; ".join(plan_removed(self.ctx.journal, removed, self.ctx.clock()).left)
        detail = "; ".join(run.scratch.actions) or "nothing to do"
        # A token the manager could not revoke (Retirer._mark_no_access alerts, and does not raise).
        failing = self._removed_failing(removed)
        if failing:
            detail += f"; still failing: {failing}"
        if still:
            log.warning("removed.left_alone", target=target.name, key=str(removed.key), left=still)
            detail += f"; left alone: {still}"
        if still or failing:
            detail += hint
        return TargetReport(target.name, "done", failed=failing is not None, detail=detail)

    def _work(
        self, target: RotationSpec, options: RunOptions, rec: Recorder, work: Work, planned: list[str]
    ) -> TargetReport:
        lease = rec.lease
        journal = rec.ctx.journal  # the lease's read-through view: this run alone writes the key
        run = TargetRun(rec.ctx, rec, target, lease.key.owner, options.trigger, request=options.request_id)
        run.scratch.planned = planned
        run.scratch.take_over, run.scratch.revoke_anyway = options.take_over, options.revoke_anyway
        try:
            roll_forward = False
            verified_by_resume = False
            if work.resume:
                unfinished = journal.unfinished(lease.key)
                if unfinished is not None:
                    roll_forward = run.resume(unfinished)
                    verified_by_resume = unfinished.step is Step.PUSHED
            if not work.rotate and options.request_id is not None and options.force:
                # The request's rotation, resumed just now, rolled back having minted nothing (its
                # replica died after PLANNED): the request has not been carried out; it is, now.
                served = journal.request_rotations(options.request_id)
                work = replace(work, rotate=nothing_minted(served))
            due_now = self.situation(target, lease.key, rec.ctx)[0].due.due
            wanted = roll_forward or (work.rotate and (due_now or (options.force and not verified_by_resume)))
            # An unknown push outcome rolls forward at once, once per run; a second one fails.
            if wanted and run.rotate() and run.rotate():
                raise run.rec.failed(
                    "failed",
                    f"{run.scratch.unknown_push}; a second push failed to land, tokens possibly held",
                )
            # Revoke only when the plan said so (never on a frozen target), or right after a
            # rotation (grace 0 retires and revokes in the same run).
            if work.revoke or wanted:
                run.revoke_pending()
            if work.recheck:
                run.recheck_tombstones()
        except TargetFailedError as error:
            return TargetReport(
                target.name,
                "failed",
                failed=True,
                detail=error.message,
                actions=tuple(run.scratch.actions),
                warnings=self._untracked(target, run, lambda: journal.target(lease.key)),
            )
        except UpstreamError as error:
            message = upstream_message(replace(error, target=target.name), "run")
            rec.failed("failed", message)
            return TargetReport(
                target.name,
                "failed",
                failed=True,
                detail=message,
                actions=tuple(run.scratch.actions),
                warnings=self._untracked(target, run, lambda: journal.target(lease.key)),
            )
        # Read under the lease, through its view: the records as this run left them.
        reading = self.situation(target, lease.key, rec.ctx)
        failing = failing_reason(reading[1], self.ctx.clock(), journal.tokens(lease.key), target.name)
        detail = "; ".join(run.scratch.actions) or "nothing to do"
        if failing:
            detail += f"; still failing: {failing}"
        return TargetReport(
            target.name,
            "done",
            failed=failing is not None,
            detail=detail,
            reading=reading,
            warnings=self._untracked(target, run, lambda: reading[1]),
        )

    def _untracked(
        self, target: RotationSpec, run: TargetRun, left: Callable[[], TargetState | None]
    ) -> tuple[str, ...]:
        """The first rotation's tokens no target tracks, worded and logged once; ``()`` if none.

        ``left`` reads the target's state as the run left it: a verified push means
        ``adopt_token_id`` no longer applies, and the words say so.
        """
        found = run.scratch.first_untracked
        if found is None or not found.worth_saying:
            return ()
        try:
            state = left()
        except Exception:  # noqa: BLE001 - a warning must never change how the run ends
            return ()
        index = self.spec.targets.index(target) if target in self.spec.targets else None
        rotated = state is not None and state.verified_hash is not None
        text = untracked.warning(target, index, shown(target, run.owner), found, rotated=rotated)
        untracked.logged(target, found, text)
        return (text,)


def nothing_minted(rotations: Iterable[RotationRecord]) -> bool:
    """Whether every one of ``rotations`` ended rolled back without a token: none was ever created.

    A rotation rolled back after its create names the token it revoked (``new_token_id``); one
    rolled back at PLANNED (its create never sent, or proved absent by the exact-name search) names
    none. One in progress may still hold a token: it is not "nothing" until its resume says so.
    """
    return all(r.outcome is Outcome.ROLLED_BACK and r.new_token_id is None for r in rotations)


def _coalesced(target: RotationSpec, onto: RotationRecord) -> TargetReport:
    detail = f"coalesced onto forced rotation {onto.id}; nothing started"
    return TargetReport(target.name, "coalesced", failed=False, detail=detail, coalesced_onto=onto.id)


def from_a_fast_clock(name: str, rotation: RotationRecord, now: datetime) -> bool:
    """Whether ``rotation``'s latest time lies beyond :data:`CLOCK_SKEW_MARGIN` past ``now`` (logged)."""
    skew = fast_clock_skew(rotation, now, CLOCK_SKEW_MARGIN)
    if skew is None:
        return False
    log.warning(
        "trigger.clock_skew",
        target=name,
        rotation=rotation.id,
        recorded_at=stamp(now + skew),
        skew_s=int(skew.total_seconds()),
        note="a journal time later than this clock is not recent; check the clocks of the replicas and nodes",
    )
    return True


def require_known(name: str, known: Iterable[str], *, key: str = "--target", listed: str = "known") -> None:
    """A usage error on ``key`` (exit 2) naming the ``listed`` names, unless ``name`` is one of them."""
    names = list(known)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(key, f"no target named {name!r}{guess}; {listed}: {', '.join(names) or 'none'}")


def stand_in_name(found: Removed, taken: set[str]) -> str:
    """``NAME (removed)``; told apart from the names ``taken`` by project, connection, then key.

    The same target re-pointed twice leaves two keys under one name; a third differs only by
    connection (or by ``gitlab.url``), and each key must keep its own stand-in to be swept.
    """
    key = found.key
    for name in (
        f"{found.name}{REMOVED}",
        f"{found.name} (removed {key.project_id})",
        f"{found.name} (removed {key.project_id} {key.connection_id[:8]})",
    ):
        if name not in taken:
            return name
    return f"{found.name} (removed {key})"  # keys are unique


def awaits_revoke(token: TokenRecord) -> bool:
    """A pending revoke, or a never-held candidate whose revoke failed for lack of access."""
    return token.role is Role.PENDING_REVOKE or unrevocable(token)


def failing_reason(
    state: TargetState | None, now: datetime, tokens: Sequence[TokenRecord] = (), name: str | None = None
) -> str | None:
    """Why a target counts as failing (exit 1), else None.

    Frozen, holding a revoke, holding a live token it has no access to revoke, or backing off.
    The hints name the command to run for the target ``name`` (its configured name; by default
    the name the journal recorded), ready to paste.
    """
    if state is None:
        return None
    name = name or state.name
    if state.drift_since is not None:
        return f"frozen by drift since {stamp(state.drift_since)}; run `rotator rotate {name} --take-over`"
    if state.hold_since is not None:
        return f"a revoke is held: the old token is still in use (`rotator rotate {name} --revoke-anyway`)"
    stuck = no_access_reason(now, tokens)
    if stuck is not None:
        return stuck
    if state.failures and state.backoff_until is not None and state.backoff_until > now:
        return f"backing off after a failure until {stamp(state.backoff_until)}: {state.last_error}"
    return None


def unresolved_reason(record: UnresolvedProject | None) -> str | None:
    """Why a target whose project path does not resolve counts as failing, in words; else None."""
    if record is None:
        return None
    times = "once" if record.failures == 1 else f"{record.failures} times in a row"
    return (
        f"cannot resolve project {record.project} (failed {times} since {stamp(record.since)}):"
        f" {record.error}; check the path and that the manager token can read the project"
        " (retried every run)"
    )


def no_access_reason(now: datetime, tokens: Sequence[TokenRecord]) -> str | None:
    """The live tokens the manager had no access to revoke, in words; else None."""
    stuck = [
        t for t in tokens if unrevocable(t) and (t.expires_at is None or now < expiry_instant(t.expires_at))
    ]
    if not stuck:
        return None
    listed = ", ".join(f"{t.token_id} (expires {t.expires_at or 'never'})" for t in stuck)
    return (
        f"no access to revoke token(s) {listed}: the manager lost access to the project;"
        " restore its Maintainer role (retried every run)"
    )


def removed_failing_reason(
    state: TargetState | None, now: datetime, tokens: Sequence[TokenRecord]
) -> str | None:
    """Why a removed key counts as failing (exit 1), else None.

    A revoke held because the token is still in use, or a live token the manager has no access to
    revoke. Not its backoff (a removed key's sweep does not back off, so a past failure's counter
    would outlive its cause) nor a drift freeze recorded while it was configured (the sweep checks
    the connection afresh before each revoke, and fails that run if it changed).
    """
    # A hold counts while a token it may concern is live: `forget --revoke` waives it without a run.
    held = any(
        t.role is Role.PENDING_REVOKE and (t.expires_at is None or now < expiry_instant(t.expires_at))
        for t in tokens
    )
    if state is not None and state.hold_since is not None and held:
        return (
            f"a revoke is held since {stamp(state.hold_since)}: a retired token was used after it was retired"
        )
    return no_access_reason(now, tokens)


def describe(work: Work, situation: Situation, failing: str | None) -> str:
    """One line saying what a run does for a target, and why."""
    parts = []
    if work.resume:
        parts.append("resume the unfinished rotation")
    if work.rotate:
        parts.append(f"rotate ({situation.due.reason})" if situation.due.due else "rotate (forced)")
    if work.revoke:
        parts.append("revoke tokens past their grace")
    if work.recheck:
        parts.append("re-check tombstoned names")
    if failing:
        parts.append(failing)
    if not parts:
        when = situation.due.next_due
        parts.append(f"nothing due; next {situation.due.reason} at {stamp(when)}" if when else "nothing due")
    return "; ".join(parts)
