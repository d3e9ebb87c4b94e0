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
"""

import uuid

from dataclasses import replace

import structlog

from rotator.core.errors import GitLabError, InfisicalError
from rotator.core.model import (
    OWNED_ROLES,
    Change,
    NewToken,
    Origin,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TokenRecord,
    TokenRequest,
    same_instance,
    short_hash,
)
from rotator.core.protocol import RULES
from rotator.core.redact import watch
from rotator.core.schedule import (
    clamped_expiry,
    expiry_limit,
    is_our_name,
    requested_expiry,
    token_name,
)
from rotator.core.secret import Secret
from rotator.doors.config import Target
from rotator.engine.context import Context, Recorder, Scratch, check_connection, tell, upstream_message
from rotator.engine.retire import Retirer, unrevocable


log = structlog.get_logger("rotator")


class TargetRun(Retirer):
    """The rotation steps for one target under one lease (the revoke side is :class:`Retirer`)."""

    def __init__(self, ctx: Context, rec: Recorder, target: Target, project_id: int, trigger: str) -> None:
        """Prepare to act on ``target`` (project ``project_id``) for a run started by ``trigger``."""
        super().__init__(ctx, rec, target, project_id, Scratch())
        self.trigger = trigger

    # -- connection -------------------------------------------------------------------------
    def connection_checked(self, *, fresh: bool = False) -> str:
        """Read (once per run unless ``fresh``) and vet the connection; return its hash."""
        conn = self.read_connection(fresh=fresh)
        problem = check_connection(conn, self.ctx.gitlab_url)
        if problem:
            raise self.rec.failed("connection", f"{self.target.name}: connection_id: {problem}")
        return conn.credentials_hash

    # -- resume -----------------------------------------------------------------------------
    def resume(self, rotation: RotationRecord) -> bool:
        """Carry an unfinished rotation forward; return True when a fresh rotation must follow now."""
        log.info("rotation.resume", target=self.target.name, rotation=rotation.id, step=rotation.step.value)
        rule = RULES[rotation.step]
        if rotation.step is Step.PLANNED:
            self.recheck_name(rotation.token_name)
            self.tombstone(rotation.token_name)
        elif rotation.step is Step.CREATED and rotation.new_token_id is not None:
            self.revoke_now(rotation.new_token_id, "resumed at CREATED: never pushed")
        if rule.resume_outcome is not None:
            self.finish(rotation, rule.resume_outcome, rule.resume)
            return rule.rolls_forward
        if rotation.step is Step.PUSHED:
            return self.verify(rotation)
        return False

    def finish(self, rotation: RotationRecord, outcome: Outcome, error: str | None = None) -> None:
        """Close a rotation with ``outcome`` and log its one ``rotation.finished`` line."""
        now = self.ctx.clock()
        done = replace(rotation, outcome=outcome, finished_at=now, error=error or rotation.error)
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
        )
        self.rec.write(Change(rotation=rotation), "PLANNED")
        self.scratch.planned.append(rotation_id)
        self.rec.ensure_lease()
        new, rotation = self._create(rotation)
        with watch(new.value):  # the scrubber knows this exact value while it is in memory
            return self._push_new(rotation, new)

    def _push_new(self, rotation: RotationRecord, new: NewToken) -> bool:
        now = rotation.planned_at
        rotation = replace(
            rotation,
            step=Step.CREATED,
            new_token_id=new.info.id,
            expires_at=new.info.expires_at,
            created_at=now,
        )
        candidate = TokenRecord(
            self.rec.key,
            new.info.id,
            new.info.name,
            Origin.CREATED,
            Role.CANDIDATE,
            new.info.expires_at,
            rotation.id,
        )
        self.rec.write(Change(rotation=rotation, tokens=(candidate,)), "CREATED")
        self._self_check(rotation, new)
        rotation = replace(rotation, step=Step.PUSHING, pushing_at=self.ctx.clock())
        held = replace(candidate, role=Role.POSSIBLY_HELD)
        self.rec.write(Change(rotation=rotation, tokens=(held,)), "PUSHING")
        self.rec.ensure_lease()
        patch_hash = self._push(rotation, new.value, candidate)
        if patch_hash is None:
            return True
        rotation = replace(rotation, step=Step.PUSHED, patch_hash=patch_hash, pushed_at=self.ctx.clock())
        self.rec.write(Change(rotation=rotation, tokens=(replace(held, push_hash=patch_hash),)), "PUSHED")
        return self.verify(rotation)

    def _drift_before_push(self, observed: str) -> None:
        state = self.rec.state()
        if state.verified_hash is None or observed == state.verified_hash:
            return
        if self.tokens(Role.POSSIBLY_HELD) or self.scratch.take_over:
            # A lost PATCH may have landed (or the operator took over): not drift; the push follows.
            log.info("connection.changed", target=self.target.name, observed=short_hash(observed))
            return
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
            return
        if any(t.token_id == adopt for t in known):
            return  # adopted (or created) under this key already
        self._adopt(adopt)

    def _journal_lost_check(self) -> None:
        # A token another journal key tracks (the same target before a re-point or a gitlab.url
        # change) is owned, not lost: that key's removed-target rules retire it.
        # Ids are per instance, and only a live role says someone owns it.
        tracked = {
            t.token_id
            for s in self.ctx.journal.targets()
            if same_instance(s.key.gitlab_url, self.rec.key.gitlab_url)
            for t in self.ctx.journal.tokens(s.key)
            if t.role in OWNED_ROLES
        }
        ours = [
            t
            for t in self.list_tokens()
            if t.active and is_our_name(self.target.token_base_name, t.name) and t.id not in tracked
        ]
        if ours:
            ids = ", ".join(str(t.id) for t in ours)
            raise self.rec.failed(
                "journal_lost",
                f"{self.target.name}: journal lost? project holds active tokens named like ours ({ids})"
                " but the journal has no history; set adopt_token_id to the one the connection holds",
                backoff=False,
            )

    def _adopt(self, adopt: int) -> None:
        owned = self.owned_elsewhere(adopt)
        if owned is not None:
            # Adopting it would rotate it away and revoke it under the target that owns it.
            raise self.rec.failed(
                "failed",
                f"{self.target.name}: adopt_token_id: {owned}; a token has one owner: set adopt_token_id"
                " to the token this target's connection holds, or remove it",
                backoff=False,
            )
        info = self.ctx.gitlab.get_token(self.project_id, adopt)
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

    def _create(self, rotation: RotationRecord) -> tuple[NewToken, RotationRecord]:
        spec = self.target.token
        for attempt in range(2):
            request = TokenRequest(
                rotation.token_name, spec.scopes, spec.access_level, rotation.requested_expiry
            )
            try:
                return self.ctx.gitlab.create_token(self.project_id, request), rotation
            except GitLabError as error:
                limit = expiry_limit(error.message) if error.status == 400 else None  # noqa: PLR2004
                if limit is not None and attempt == 0:
                    # Nothing was created; ask again for the last day GitLab allows.
                    rotation = replace(rotation, requested_expiry=clamped_expiry(limit))
                    self.rec.write(Change(rotation=rotation))
                    log.warning(
                        "token.expiry_clamped",
                        target=self.target.name,
                        expires_at=str(rotation.requested_expiry),
                    )
                    continue
                message = upstream_message(replace(error, target=self.target.name), "create")
                if error.not_applied:
                    self.finish(rotation, Outcome.FAILED, message)
                else:
                    # The create may have happened (or may still): find it by exact name, now and later.
                    self.tombstone(rotation.token_name)
                    self.recheck_name(rotation.token_name)
                    self.finish(rotation, Outcome.ROLLED_BACK, message)
                raise self.rec.failed("failed", message) from None
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _self_check(self, rotation: RotationRecord, new: NewToken) -> None:
        deadline = self.ctx.monotonic() + self.ctx.settings.self_check_window.total_seconds()
        while True:
            try:
                info = self.ctx.gitlab.token_self(new.value)
                if info.id == new.info.id and info.active:
                    return
                problem = f"token {info.id} active={info.active}, expected {new.info.id} active"
            except GitLabError as error:
                problem = upstream_message(replace(error, target=self.target.name), "self-check")
                if error.status is not None and 300 <= error.status < 400:  # noqa: PLR2004
                    break  # a refused redirect is no replica lag: waiting out the window changes nothing
            if self.ctx.monotonic() >= deadline:
                break
            # A fresh token can lag on GitLab's read replicas.
            self.ctx.sleep(min(1.0, self.ctx.settings.poll_interval))
        self.revoke_now(rotation.new_token_id or new.info.id, "failed its self-check")
        self.finish(rotation, Outcome.ROLLED_BACK, f"self-check: {problem}")
        raise self.rec.failed("failed", f"{self.target.name}: the new token failed its self-check: {problem}")

    def _push(self, rotation: RotationRecord, value: Secret, candidate: TokenRecord) -> str | None:
        """PATCH the new token; its hash, or None when the outcome is unknown (roll forward)."""
        conn = self.read_connection()
        try:
            patch_hash = self.ctx.infisical.push_token(conn, value)
        except InfisicalError as error:
            message = upstream_message(replace(error, target=self.target.name), "push")
            if error.not_applied:
                # Refused before storage: back to CREATED (a crash now means "revoke it"), then revoke.
                created = replace(rotation, step=Step.CREATED)
                self.rec.write(Change(rotation=created, tokens=(candidate,)))
                self.revoke_now(candidate.token_id, "the push was refused")
                self.finish(created, Outcome.FAILED, message)
                raise self.rec.failed("failed", message) from None
            # Infisical may have stored it: never revoke it on this evidence; a fresh push decides.
            self.scratch.unknown_push = message
            self.finish(rotation, Outcome.SUPERSEDED, f"{message} (outcome unknown; token possibly held)")
            return None
        finally:
            # Whatever happened, the connection may have changed: later steps must read it afresh.
            self.scratch.connection = None
        if patch_hash == rotation.pre_hash:
            self._not_landed(rotation, "PATCH", "push", "the PATCH returned the pre-PATCH credentialsHash")
            return None
        return patch_hash

    def _not_landed(self, rotation: RotationRecord, method: str, step: str, problem: str) -> None:
        """Infisical answered 200, yet our push is not what it holds: supersede the rotation.

        The line is kept for the run's failure should the next push not land either.
        """
        line = str(
            InfisicalError(
                "infisical",
                f"{method} /api/v1/app-connections/gitlab/:connectionId",
                200,
                problem,
                not_applied=False,
                target=self.target.name,
                step=step,
            )
        )
        self.scratch.unknown_push = line
        self.finish(rotation, Outcome.SUPERSEDED, line)

    def verify(self, rotation: RotationRecord) -> bool:
        """Re-read until our hash shows (replica lag: up to a minute), then record VERIFIED.

        Returns True when a fresh rotation must follow: under ``--take-over``, a re-read showing
        someone else's write means our push was overwritten, not that the target drifted.
        """
        deadline = self.ctx.monotonic() + self.ctx.settings.reread_window.total_seconds()
        while True:
            try:
                observed = self.connection_checked(fresh=True)
            except InfisicalError as error:
                message = upstream_message(replace(error, target=self.target.name), "verify")
                raise self.rec.failed("failed", f"{message}; the rotation stays at PUSHED") from None
            if observed == rotation.patch_hash:
                break
            if observed != rotation.pre_hash:
                if self.scratch.take_over:
                    # The operator accepts the connection as it is. Our token was held for a while,
                    # so it stays possibly held (retired after grace and settle); a fresh push follows.
                    self._not_landed(
                        replace(rotation, reread_hash=observed),
                        "GET",
                        "verify",
                        "the re-read shows another credentialsHash: our push was overwritten",
                    )
                    return True
                self.finish(
                    replace(rotation, reread_hash=observed), Outcome.DRIFT, "re-read shows another hash"
                )
                self.freeze(observed)
            if self.ctx.monotonic() >= deadline:
                message = (
                    f"{self.target.name}: verify: the re-read still shows the pre-PATCH hash; stays at PUSHED"
                )
                raise self.rec.failed("failed", message)
            self.ctx.sleep(self.ctx.settings.poll_interval)
        self._verified(rotation, observed)
        return False

    def _verified(self, rotation: RotationRecord, observed: str) -> None:
        now = self.ctx.clock()
        after = now + self.target.grace
        # A possibly-held token's PATCH may still be committing inside Infisical: give it time to
        # land (and show up as drift) before it can be revoked, whatever the grace.
        settle = now + self.ctx.settings.possibly_held_settle
        retiring = [
            replace(
                t,
                role=Role.PENDING_REVOKE,
                revoke_after=max(after, settle) if t.role is Role.POSSIBLY_HELD else after,
                retired_by=rotation.id,
                retired_at=now,
            )
            for t in self.ctx.journal.tokens(self.rec.key)
            if t.role in (Role.CURRENT, Role.POSSIBLY_HELD, Role.CANDIDATE)
            and t.token_id != rotation.new_token_id
            # A never-pushed candidate left by a revoke without access needs no grace: it is
            # retried as it is, right after this rotation.
            and not (t.role is Role.CANDIDATE and unrevocable(t))
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
        done = replace(
            rotation,
            step=Step.VERIFIED,
            outcome=Outcome.SUCCEEDED,
            reread_hash=observed,
            verified_at=now,
            finished_at=now,
        )
        current = replace(new, role=Role.CURRENT, push_hash=rotation.patch_hash)
        self.rec.write(Change(rotation=done, tokens=(current, *retiring), target=state), "VERIFIED")
        self.scratch.actions.append(f"rotated: token {rotation.new_token_id} expires {rotation.expires_at}")
        self._finished_line(done)
