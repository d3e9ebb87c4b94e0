"""One rotation of one target: PLANNED → CREATED → PUSHING → PUSHED → VERIFIED, and its recovery.

Each step is recorded before the side effect that follows it (architecture §1), so a crash
anywhere leaves the journal saying exactly what may have happened:

- PLANNED: the create may have happened; recovery lists the project's tokens by exact name,
  revokes any match and keeps the name as a tombstone.
- CREATED: the PATCH was never sent; recovery revokes the new token.
- PUSHING: unknown; the value is gone, so recovery rolls forward with a fresh rotation, and the
  token stays "possibly held" until a later push is verified.
- PUSHED: recovery re-reads the connection: our hash means VERIFIED, another one means drift.

A 200 from the PATCH means stored: from then on this rotation never revokes the new token.

The forward path is one loop (:meth:`TargetRun._drive`): :meth:`TargetRun.perform` turns the
action the core licensed into upstream calls and returns what they prove (each answer goes through
a rule of :mod:`rotator.core.rules`, which names the evidence); :func:`rotator.core.machine.advance`
says where the evidence leads and which action follows; ``_record`` journals the new step before
that action runs; a closed outcome ends the loop (``_ended``). This module makes the calls and
records; it decides nothing about what an answer proves.
"""

import uuid

from contextlib import ExitStack
from dataclasses import dataclass, replace

import structlog

from rotator.core import evidence, rules
from rotator.core.description import token_description
from rotator.core.errors import GitLabError, InfisicalError, ProtocolViolation, UpstreamError
from rotator.core.machine import Action, advance
from rotator.core.model import (
    Change,
    NewToken,
    Origin,
    Outcome,
    Owner,
    Role,
    RotationRecord,
    Step,
    TokenInfo,
    TokenRecord,
    TokenRequest,
    short_hash,
)
from rotator.core.protocol import RULES
from rotator.core.redact import watch
from rotator.core.rules import Gate
from rotator.core.schedule import (
    is_our_name,
    requested_expiry,
    token_name,
)
from rotator.core.spec import RotationSpec
from rotator.engine import untracked
from rotator.engine.alerts import tell
from rotator.engine.checks import check_connection
from rotator.engine.context import Context, Scratch
from rotator.engine.recorder import STEP_OF, Recorder
from rotator.engine.retire import Retirer


log = structlog.get_logger("rotator")

_CREATE_ASKS = 2  # the first create, and one more only after a definite expiry-limit 400


class TargetRun(Retirer):
    """The rotation steps for one target under one lease (the revoke side is :class:`Retirer`)."""

    def __init__(  # noqa: PLR0913 - the run's lease, target and why it runs
        self,
        ctx: Context,
        rec: Recorder,
        target: RotationSpec,
        owner: Owner,
        trigger: str,
        *,
        request: str | None = None,
    ) -> None:
        """Prepare to act on ``target`` (``owner``'s tokens) for a run started by ``trigger``.

        ``request``: the HTTP trigger request the run carries out, recorded with PLANNED.
        """
        super().__init__(ctx, rec, target, owner, Scratch())
        self.trigger, self.request = trigger, request

    # -- connection -------------------------------------------------------------------------
    def connection_checked(self, *, fresh: bool = False) -> str:
        """Read (once per run unless ``fresh``) and vet the connection; return its hash."""
        conn = self.read_connection(fresh=fresh)
        problem = check_connection(conn, self.ctx.gitlab_url, self.target.kind)
        if problem:
            raise self.rec.failed("connection", f"{self.target.name}: connection_id: {problem}")
        return conn.credentials_hash

    # -- resume -----------------------------------------------------------------------------
    def resume(self, rotation: RotationRecord) -> bool:
        """Carry an unfinished rotation forward; return True when a fresh rotation must follow now."""
        log.info("rotation.resume", target=self.target.name, rotation=rotation.id, step=rotation.step.value)
        found = evidence.CrashFound(self.ctx.clock(), RULES[rotation.step].resume)
        _, action = advance(rotation, found)  # what the table licenses; recorded once it is done
        if action is Action.RECHECK_NAME:
            self.recheck_name(rotation.token_name)
            self.tombstone(rotation.token_name)
        elif action is Action.REVOKE_NEW and rotation.new_token_id is not None:
            self.revoke_now(rotation.new_token_id, "resumed at CREATED: never pushed")
        if action is Action.REREAD:
            first = untracked.concerns(self.target, self.rec.state())
            again = self.verify(rotation)
            if first:  # a first push verified here, and no rotation of this run lists the tokens it left
                self.list_untracked()
            return again
        self.close(rotation, replace(found, at=self.ctx.clock()))
        return action is Action.ROLL_FORWARD

    def close(self, rotation: RotationRecord, ended: evidence.RotationEvidence) -> None:
        """Close a rotation on ``ended`` (the table says how) and log its one ``rotation.finished`` line."""
        done, _ = advance(rotation, ended)
        self.rec.write(Change(rotation=done))
        self._finished_line(done)

    def _finished_line(self, r: RotationRecord) -> None:
        ended = r.finished_at or self.ctx.clock()
        seconds = (ended - r.planned_at).total_seconds()
        tell(
            self.ctx, lambda observer: observer.rotation_finished(self.target.name, r.outcome.value, seconds)
        )
        log.info(
            "rotation.finished",
            target=self.target.name,
            rotation=r.id,
            trigger=r.trigger,
            outcome=r.outcome.value,
            step=r.step.value,
            old_token_id=r.old_token_id,
            new_token_id=r.new_token_id,
            expires_at=r.expires_at.isoformat() if r.expires_at else None,
            pre_hash=short_hash(r.pre_hash),
            patch_hash=short_hash(r.patch_hash),
            reread_hash=short_hash(r.reread_hash),
            duration_s=round(seconds, 3),
            error=r.error,
        )

    # -- a fresh rotation -------------------------------------------------------------------
    def rotate(self) -> bool:
        """One full rotation; True if the push's outcome was unknown and a fresh rotation must follow.

        Raises TargetFailedError when the target must stop for this run.
        """
        pre_hash = self.connection_checked()
        self._drift_before_push(pre_hash)
        self._first_rotation_checks()
        if self.scratch.take_over:
            # Before the create, so the list holds what the project had, not our new token.
            self.record_untracked()
        now = self.ctx.clock()
        rotation_id = str(uuid.uuid4())
        current = self.tokens(Role.CURRENT)
        rotation = RotationRecord(
            id=rotation_id,
            key=self.rec.key,
            target=self.target.name,
            trigger=self.trigger,
            actor=self.ctx.actor,
            step=Step.PLANNED,
            outcome=Outcome.IN_PROGRESS,
            token_name=token_name(self.target.token_base_name, now, rotation_id),
            requested_expiry=requested_expiry(now, self.target.token.lifetime),
            planned_at=now,
            old_token_id=current[-1].token_id if current else None,
            pre_hash=pre_hash,
            request=self.request,
        )
        # The create follows at once (no upstream call in between): this write carries the
        # renewal that proves the target is still ours before it (Recorder.write's ``renew``).
        self.rec.write(Change(rotation=rotation), "PLANNED", renew=True)
        self.scratch.planned.append(rotation_id)
        return self._drive(rotation, Action.CREATE)

    def _drift_before_push(self, observed: str) -> None:
        state = self.rec.state()
        held = bool(self.tokens(Role.POSSIBLY_HELD))
        gate = rules.before_push(
            state.verified_hash, observed, possibly_held=held, take_over=self.scratch.take_over
        )
        if gate is Gate.CHANGED:
            # A lost PATCH may have landed (or the operator took over): not drift; the push follows.
            log.info("connection.changed", target=self.target.name, observed=short_hash(observed))
        elif gate is Gate.DRIFT:
            self.freeze(observed)

    def _first_rotation_checks(self) -> None:
        """Until a push is verified: apply ``adopt_token_id``, or stop if the journal looks lost.

        Adoption is applied once, but "once" means "until the first verified push", not "on the
        first attempt": a first push that was refused leaves a revoked candidate in the journal, and
        the ``adopt_token_id`` the operator sets afterwards must still be honoured.
        """
        if self.rec.state().verified_hash is not None:
            return
        known = self.ctx.journal.tokens(self.rec.key)
        adopt = self.target.adopt_token_id
        if adopt is None:
            if not known:
                self._journal_lost_check()
            self.list_untracked()
            return
        if any(t.token_id == adopt for t in known):
            return  # adopted (or created) under this key already
        self._adopt(adopt)

    def _journal_lost_check(self) -> None:
        # A token another journal key tracks (the same target before a re-point or a gitlab.url
        # change) is owned, not lost: that key's removed-target rules retire it.
        # Ids are per instance, and only a live role says someone owns it.
        named = [
            t for t in self.list_tokens() if t.active and is_our_name(self.target.token_base_name, t.name)
        ]
        tracked = untracked.owned(self.ctx.journal, self.rec.key.gitlab_url, named)
        ours = [t for t in named if t.id not in tracked]
        if ours:
            ids = ", ".join(str(t.id) for t in ours)
            raise self.rec.failed(
                "journal_lost",
                f"{self.target.name}: journal lost? project holds active tokens named like ours ({ids})"
                " but the journal has no history; set adopt_token_id to the one the connection holds",
                backoff=False,
            )

    def list_untracked(self) -> None:
        """No ``adopt_token_id``: the owner's active tokens no target tracks, as they were before the create.

        Kept for the run's report and log line (:mod:`rotator.engine.untracked`); once per run (a
        second rotation after an unknown push lists nothing more). The journal-lost check's listing
        serves when it made one. A failed listing is reported, never raised: it is a warning.
        The listing may predate this run's recovery revokes (a lost create found by name): the
        names a lost create may have used are left out, whatever the listing says of them.
        """
        if self.scratch.first_untracked is not None:
            return
        try:
            listed = self.list_tokens()
        except UpstreamError as error:
            self.scratch.first_untracked = untracked.failed(error)
            return
        journal, url = self.ctx.journal, self.rec.key.gitlab_url
        owners = untracked.owned(journal, url, listed)
        found = untracked.untracked(listed, owners, None, untracked.unsettled(journal, url, listed, owners))
        if found.tokens:  # the manager's own token is never one to adopt
            try:
                found = untracked.untracked(found.tokens, owners, self.ctx.gitlab.manager_self().id)
            except UpstreamError as error:
                found = untracked.failed(error, untracked.MANAGER_UNREAD)
        self.scratch.first_untracked = found

    def _adopt(self, adopt: int) -> None:
        self.rec.step = "adopt"
        owned = self.owned_elsewhere(adopt)
        if owned is not None:
            # Adopting it would rotate it away and revoke it under the target that owns it.
            raise self.rec.failed(
                "failed",
                f"{self.target.name}: adopt_token_id: {owned}; a token has one owner: set adopt_token_id"
                " to the token this target's connection holds, or remove it",
                backoff=False,
            )
        info = self.ctx.gitlab.get_token(self.owner, adopt)
        if info is None or not info.active:
            # Named like any upstream failure (target, step, route, status), so alerts can parse it.
            refusal = GitLabError(
                "gitlab",
                "GET /projects/:id/access_tokens/:token_id",
                404 if info is None else 200,
                f"adopt_token_id: token {adopt} is "
                + ("not a token of this project" if info is None else "revoked or expired"),
                not_applied=True,
                target=self.target.name,
                step="adopt",
            )
            raise self.rec.failed("failed", str(refusal), backoff=False)
        record = TokenRecord(self.rec.key, info.id, info.name, Origin.ADOPTED, Role.CURRENT, info.expires_at)
        self.rec.write(Change(tokens=(record,)))
        self.rec.step = "prepare"

    # -- the forward path: one loop over the core's actions -----------------------------------
    def verify(self, rotation: RotationRecord) -> bool:
        """Re-read until our hash shows (replica lag: up to a minute), then record VERIFIED.

        Returns True when a fresh rotation must follow: under ``--take-over``, a re-read showing
        someone else's write means our push was overwritten, not that the target drifted.
        """
        return self._drive(rotation, Action.REREAD)

    def _drive(self, rotation: RotationRecord, action: Action) -> bool:
        """Perform ``action``, feed its evidence to the core, record; repeat until the core says stop.

        True when a fresh rotation must follow. Raises TargetFailedError when the target stops.
        """
        with ExitStack() as stack:  # the new token's value is watched from its create to the end
            flight = _Flight(stack)
            found: evidence.RotationEvidence | None = None
            while True:
                found = self.perform(action, rotation, flight, found)
                if found is None:  # pragma: no cover - only a closed rotation's clean-up answers nothing
                    raise ProtocolViolation(rotation.step.value, f"{action.name} without evidence")
                moved, action = advance(rotation, found)
                if moved.outcome is not Outcome.IN_PROGRESS:
                    return self._ended(rotation, found, action, flight)
                rotation = self._record(moved, found, flight)

    def perform(
        self,
        action: Action,
        rotation: RotationRecord,
        flight: "_Flight",
        cause: evidence.RotationEvidence | None = None,
    ) -> evidence.RotationEvidence | None:
        """Turn one action into its upstream calls; what they prove (None for a closed rotation's clean-up).

        The only place the forward path does I/O beyond the journal. ``cause`` is the evidence
        that licensed a clean-up (REVOKE_NEW, RECHECK_NAME).
        """
        # The step alerts, the webhook and the failures metric name: the same word the upstream
        # error lines use (rules.described), so a failure names one step wherever it is read.
        failed_at = self.rec.step
        self.rec.step = STEP_OF.get(action, self.rec.step)
        if action is Action.CREATE:
            return self._create(rotation, flight)
        if action is Action.SELF_CHECK:
            return self._self_check(flight.live())
        if action is Action.PUSH:
            return self._push(rotation, flight.live())
        if action is Action.REREAD:
            return self._reread(rotation, flight)
        found = self._clean_up(action, rotation, cause)
        # A clean-up that worked is not where the rotation failed: the step that caused it is.
        self.rec.step = failed_at
        return found

    def _clean_up(
        self, action: Action, rotation: RotationRecord, cause: evidence.RotationEvidence | None
    ) -> evidence.RotationEvidence | None:
        """Undo what a create or a refused push may have left: a name to find, a token to revoke."""
        if action is Action.RECHECK_NAME:
            # The create may have happened (or may still): find it by exact name, now and later.
            self.tombstone(rotation.token_name)
            self.recheck_name(rotation.token_name)
            return None
        if action is Action.REVOKE_NEW and rotation.new_token_id is not None:
            if isinstance(cause, evidence.PatchRefused):
                self.revoke_now(rotation.new_token_id, "the push was refused")
                return evidence.RefusalUndone(self.ctx.clock(), cause.note)
            self.revoke_now(rotation.new_token_id, "failed its self-check")
            return None
        raise ProtocolViolation(rotation.step.value, action.name)  # no action of the forward path

    def _record(
        self, rotation: RotationRecord, found: evidence.RotationEvidence, flight: "_Flight"
    ) -> RotationRecord:
        """Journal the step ``found`` moved to, before the side effect the step licenses."""
        if isinstance(found, evidence.ExpiryCapped):
            # Nothing was created; ask again for the last day GitLab allows.
            self.rec.write(Change(rotation=rotation))
            log.warning(
                "token.expiry_clamped", target=self.target.name, expires_at=str(rotation.requested_expiry)
            )
        elif isinstance(found, evidence.CreateAnswered):
            info = flight.live().info
            flight.token = TokenRecord(
                self.rec.key, info.id, info.name, Origin.CREATED, Role.CANDIDATE, info.expires_at, rotation.id
            )
            self.rec.write(Change(rotation=rotation, tokens=(flight.token,)), "CREATED")
        elif isinstance(found, evidence.SelfCheckPassed):
            flight.token, _ = advance(flight.recorded(), evidence.PushSent())
            # The push follows (its connection read, if any, passes the lease check as every
            # request does): this write carries the renewal before it, as for the create.
            self.rec.write(Change(rotation=rotation, tokens=(flight.token,)), "PUSHING", renew=True)
        elif isinstance(found, evidence.PatchStored):
            flight.token, _ = advance(flight.recorded(), evidence.PushAnswered(found.hash))
            self.rec.write(Change(rotation=rotation, tokens=(flight.token,)), "PUSHED")
        elif isinstance(found, evidence.PatchRefused):
            # Refused before storage: back to CREATED (a crash now means "revoke it"); the revoke follows.
            flight.token, _ = advance(flight.recorded(), evidence.PushRejected())
            self.rec.write(Change(rotation=rotation, tokens=(flight.token,)))
        elif isinstance(found, evidence.RereadFailed):
            # The table keeps it at PUSHED: nothing to write; the next run re-reads.
            raise self.rec.failed("failed", found.note) from None
        return rotation  # a lagging re-read records nothing

    def _ended(
        self, rotation: RotationRecord, found: evidence.RotationEvidence, action: Action, flight: "_Flight"
    ) -> bool:
        """The core closed the rotation on ``found``: clean up as ``action`` says, record the close, stop.

        True when a fresh rotation must follow; otherwise raises TargetFailedError (or returns
        False once VERIFIED is recorded).
        """
        if isinstance(found, evidence.RereadSame):
            self._verified(rotation, found.hash)
            return False
        if isinstance(found, evidence.PatchUnknown | evidence.PatchNotLanded | evidence.RereadOverwritten):
            # Infisical may hold our token: never revoke it on this evidence; a fresh push decides.
            # The line is kept for the run's failure should the next push not land either.
            self.scratch.unknown_push = found.line
            self.close(rotation, found)
            return True
        if isinstance(found, evidence.RereadOther):
            self.close(rotation, found)
            raise self.freeze(found.hash)
        if not isinstance(
            found,
            evidence.CreateRefused
            | evidence.CreateUnknown
            | evidence.SelfCheckFailed
            | evidence.RefusalUndone,
        ):  # pragma: no cover - the table closes the forward path on no other evidence
            raise ProtocolViolation(rotation.step.value, type(found).__name__)
        if action in (Action.RECHECK_NAME, Action.REVOKE_NEW):
            self.perform(action, rotation, flight, found)  # the clean-up comes before the close is recorded
        self.close(rotation, replace(found, at=self.ctx.clock()))
        if isinstance(found, evidence.SelfCheckFailed):
            raise self.rec.failed("failed", f"{self.target.name}: the new token failed its {found.note}")
        raise self.rec.failed("failed", found.note)

    def _create(self, rotation: RotationRecord, flight: "_Flight") -> evidence.RotationEvidence:
        """Ask GitLab for the token; never twice blind (the second ask follows a definite 400 only)."""
        if (
            flight.creates >= _CREATE_ASKS
        ):  # pragma: no cover - the rules give ExpiryCapped to a first ask only
            raise ProtocolViolation(rotation.step.value, "a third create")
        flight.creates += 1
        spec = self.target.token
        target = self.target
        description = token_description(target.name, target.kind.value, target.project, target.connection_id)
        request = TokenRequest(
            rotation.token_name, spec.scopes, spec.access_level, rotation.requested_expiry, description
        )
        try:
            new = self.ctx.gitlab.create_token(self.owner, request)
        except GitLabError as error:
            retried = flight.creates > 1
            return rules.create_proves(error, retried=retried, at=self.ctx.clock(), target=self.target.name)
        flight.hold(new)
        return evidence.CreateAnswered(new.info.id, new.info.expires_at, rotation.planned_at)

    def _self_check(self, new: NewToken) -> evidence.SelfCheckPassed | evidence.SelfCheckFailed:
        deadline = self.ctx.monotonic() + self.ctx.settings.self_check_window.total_seconds()
        while True:
            answer: TokenInfo | GitLabError
            try:
                answer = self.ctx.gitlab.token_self(new.value)
            except GitLabError as error:
                answer = error
            problem = rules.self_check_problem(answer, new.info.id, self.target.name)
            if problem is None:
                return evidence.SelfCheckPassed(self.ctx.clock())
            # A refused redirect is no replica lag: waiting out the window changes nothing.
            if rules.self_check_hopeless(answer) or self.ctx.monotonic() >= deadline:
                return evidence.SelfCheckFailed(self.ctx.clock(), f"self-check: {problem}")
            # A fresh token can lag on GitLab's read replicas.
            self.ctx.sleep(min(1.0, self.ctx.settings.poll_interval))

    def _push(self, rotation: RotationRecord, new: NewToken) -> evidence.RotationEvidence:
        """PATCH the new token into the connection; what the answer proves."""
        conn = self.read_connection()
        answer: str | InfisicalError
        try:
            answer = self.ctx.infisical.push_token(conn, new.value)
        except InfisicalError as error:
            answer = error
        finally:
            # Whatever happened, the connection may have changed: later steps must read it afresh.
            self.scratch.connection = None
        return rules.patch_proves(
            answer, pre_hash=rotation.pre_hash, at=self.ctx.clock(), target=self.target.name
        )

    def _reread(self, rotation: RotationRecord, flight: "_Flight") -> evidence.RotationEvidence:
        """One re-read of the connection; after a lagging one, first wait (or give up past the window)."""
        if flight.reread_deadline is None:
            flight.reread_deadline = self.ctx.monotonic() + self.ctx.settings.reread_window.total_seconds()
        elif self.ctx.monotonic() >= flight.reread_deadline:
            message = (
                f"{self.target.name}: verify: the re-read still shows the pre-PATCH hash; stays at PUSHED"
            )
            return evidence.RereadFailed(self.ctx.clock(), message)
        else:
            self.ctx.sleep(self.ctx.settings.poll_interval)
        try:
            observed = self.connection_checked(fresh=True)
        except InfisicalError as error:
            line = rules.described(error, self.target.name, "verify")
            return evidence.RereadFailed(self.ctx.clock(), f"{line}; the rotation stays at PUSHED")
        # Under --take-over, a third hash means our push was overwritten: our token was held for a
        # while, so it stays possibly held (retired after grace and settle); a fresh push follows.
        return rules.reread_proves(
            observed, rotation, take_over=self.scratch.take_over, at=self.ctx.clock(), target=self.target.name
        )

    def _verified(self, rotation: RotationRecord, observed: str) -> None:
        now = self.ctx.clock()
        settle = self.ctx.settings.possibly_held_settle
        retiring = [
            advance(
                t,
                evidence.Retired(
                    now, rules.revoke_after(t.role, now, self.target.grace, settle), rotation.id
                ),
            )[0]
            for t in self.ctx.journal.tokens(self.rec.key)
            if rules.retired_by_push(t, rotation.new_token_id)
        ]
        new = next(t for t in self.ctx.journal.tokens(self.rec.key) if t.token_id == rotation.new_token_id)
        state = replace(
            self.rec.state(),
            verified_hash=observed,
            verified_at=now,
            verified_start=rotation.planned_at,
            observed_hash=observed,
            observed_at=now,
            drift_since=None,
            failures=0,
            backoff_until=None,
            last_error=None,
        )
        done, _ = advance(rotation, evidence.RereadSame(observed, now))
        current, _ = advance(new, evidence.PushVerified(rotation.patch_hash))
        # A revoke of the token this push retired may follow with no upstream call in between
        # (grace 0): this write carries the renewal before it, which stands until a request is
        # sent (Recorder.ensure_lease).
        self.rec.write(
            Change(rotation=done, tokens=(current, *retiring), target=state), "VERIFIED", renew=True
        )
        self.scratch.actions.append(f"rotated: token {rotation.new_token_id} expires {rotation.expires_at}")
        self._finished_line(done)


@dataclass(slots=True)
class _Flight:
    """What one pass of :meth:`TargetRun._drive` holds between actions; in memory only, never recorded."""

    stack: ExitStack
    new: NewToken | None = None  # the live value, watched by the scrubber from its create on
    token: TokenRecord | None = None  # the new token's record as last written
    creates: int = 0
    reread_deadline: float | None = None

    def hold(self, new: NewToken) -> None:
        """Keep the created token for the self-check and the push; the scrubber knows its value now."""
        self.new = new
        self.stack.enter_context(watch(new.value))

    def live(self) -> NewToken:
        """The created token (an action that needs it before the create is a protocol violation)."""
        if self.new is None:
            raise ProtocolViolation("PLANNED", "a token action before the create")
        return self.new

    def recorded(self) -> TokenRecord:
        """The new token's record as last written."""
        if self.token is None:
            raise ProtocolViolation("PLANNED", "a token role change before the create")
        return self.token
