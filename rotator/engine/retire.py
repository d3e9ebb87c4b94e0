"""Retiring tokens: idempotent revokes, pending revokes after grace, tombstones, and the drift freeze.

A revoke counts as done only on GitLab's word for that token in its project: 204, or a re-read
showing it revoked or inactive, or a 404 for that token from a project the manager can still
read. A 400, 403 or 404 on DELETE is re-checked, never assumed: a manager removed from a private
project gets ``404 Project Not Found`` on every project route, which proves nothing about the
token (architecture §6). When the project cannot be read, or the manager has no rights left, the
token is marked "no access" (``TokenRecord.no_access_since``): it stays tracked, is retried on
every run, and the target fails until it is revoked or its own ``expires_at`` has passed, when it
is recorded as expired (``abandoned``), never as revoked.

A pending token is revoked only when the connection still holds our latest verified push (rule 1)
and, unless the target opts out, when GitLab has not seen the token used since it was retired
(rule 2). A candidate that was never pushed needs neither check. No token the journal tracks as
live for another target is ever revoked here, whatever path asks (architecture §6).

What each answer proves is a rule of :mod:`rotator.core.rules`; every role change goes through
:func:`rotator.core.machine.advance`.
"""

from dataclasses import replace
from datetime import date, datetime

import structlog

from rotator.core import evidence as ev
from rotator.core import rules
from rotator.core.durations import stamp
from rotator.core.errors import GitLabError, TargetFailedError, UpstreamError
from rotator.core.machine import advance
from rotator.core.model import (
    Change,
    Connection,
    Kind,
    Origin,
    Owner,
    Role,
    TokenInfo,
    TokenRecord,
    Tombstone,
    short_hash,
)
from rotator.core.schedule import expiry_instant
from rotator.core.spec import RotationSpec
from rotator.engine.checks import owned_elsewhere
from rotator.engine.context import Context, Scratch
from rotator.engine.owners import role_needed
from rotator.engine.recorder import Recorder, upstream_message


log = structlog.get_logger("rotator")


def describe_untracked(untracked: tuple[tuple[int, str, str | None], ...]) -> str:
    """``12 by-hand (expires 2026-12-31), 13 other (never expires)``."""
    return ", ".join(
        f"{token_id} {name} ({f'expires {expires}' if expires else 'never expires'})"
        for token_id, name, expires in untracked
    )


class Retirer:
    """The revoke side of a target's run; :class:`rotator.engine.rotation.TargetRun` adds the rotation."""

    def __init__(
        self, ctx: Context, rec: Recorder, target: RotationSpec, owner: Owner, scratch: Scratch
    ) -> None:
        """Act on ``target`` (``owner``'s tokens) under the recorder's lease."""
        self.ctx, self.rec, self.target, self.owner, self.scratch = ctx, rec, target, owner, scratch

    def read_connection(self, *, fresh: bool = False) -> Connection:
        """The connection, read once per run (reads are shared) unless ``fresh``."""
        if fresh or self.scratch.connection is None:
            self.scratch.connection = self.ctx.infisical.get_connection(self.rec.key.connection_id)
        return self.scratch.connection

    def list_tokens(self, *, fresh: bool = False) -> list[TokenInfo]:
        """The project's tokens, listed once per run unless ``fresh``."""
        if fresh or self.scratch.tokens_listed is None:
            self.scratch.tokens_listed = self.ctx.gitlab.list_tokens(self.owner)
        return self.scratch.tokens_listed

    def tokens(self, role: Role) -> list[TokenRecord]:
        """The journal's tokens of this target in ``role``."""
        return [t for t in self.ctx.journal.tokens(self.rec.key) if t.role is role]

    def freeze(self, observed: str) -> TargetFailedError:
        """Drift: someone else wrote the connection. Freeze the target and raise."""
        now = self.ctx.clock()
        state = self.rec.state()
        self.rec.write(
            Change(
                target=replace(
                    state, drift_since=state.drift_since or now, observed_hash=observed, observed_at=now
                )
            )
        )
        message = (
            f"{self.target.name}: drift: the connection holds {short_hash(observed)}, not our verified push"
            f" {short_hash(state.verified_hash)}; nothing is created or revoked until"
            f" `rotator rotate {self.target.name} --take-over`"
        )
        raise self.rec.failed("drift", message, backoff=False)

    # -- ownership ---------------------------------------------------------------------------
    def owned_elsewhere(self, token_id: int) -> str | None:
        """Which other target owns ``token_id`` as a live token, in words; else ``None``."""
        return owned_elsewhere(self.ctx.journal, self.rec.key, token_id)

    def record_untracked(self) -> None:
        """On ``--take-over``: record, and report, the project's active tokens no target tracks.

        The token a person wrote into the connection stays live after a take-over, and the
        connection's opaque ``credentialsHash`` cannot say which it is, so every untracked active
        token is listed (the manager token's own id excepted). ``status`` shows the list "as of"
        now; rotator never touches these tokens. The listing never changes the run's outcome.
        """
        if self.scratch.untracked_listed:
            return
        self.scratch.untracked_listed = True
        url = self.rec.key.gitlab_url
        try:
            found = [t for t in self.list_tokens() if t.active and not self.ctx.journal.owners(url, t.id)]
            manager = self.ctx.gitlab.manager_self().id if found else None
        except UpstreamError as error:
            log.warning("token.untracked_unknown", target=self.target.name, error=str(error))
            return
        untracked = tuple(
            (t.id, t.name, t.expires_at.isoformat() if t.expires_at else None)
            for t in found
            if t.id != manager
        )
        now = self.ctx.clock()
        self.rec.write(Change(target=replace(self.rec.state(), untracked=untracked, untracked_as_of=now)))
        if untracked:
            log.warning("token.untracked", target=self.target.name, token_ids=[u[0] for u in untracked])
            self.scratch.actions.append(
                "the project holds active tokens no target tracks (the one written into the connection"
                " before this take-over is among them; rotator leaves them alone):"
                f" {describe_untracked(untracked)}"
            )

    # -- revoking ---------------------------------------------------------------------------
    def _refuse_revoke(self, problem: str) -> TargetFailedError:
        """A revoke that would hit another target's token: fail (exit 1, alert), keep it tracked."""
        return self.rec.failed(
            "failed",
            f"{self.target.name}: revoke refused: {problem}; it stays tracked here and is left alive",
            backoff=False,
        )

    def _revoke(self, token_id: int, *, checked: bool = False) -> str | GitLabError:
        """Revoke idempotently; the evidence GitLab gave, or the answer showing the manager lost access.

        ``checked``: the caller read the journal's owners of the token and found none elsewhere,
        with no upstream request since, so the read is not made again.
        """
        if not checked and (owned := self.owned_elsewhere(token_id)) is not None:
            raise self._refuse_revoke(owned)
        self.rec.ensure_lease()
        try:
            self.ctx.gitlab.delete_token(self.owner, token_id)
        except GitLabError as error:
            if not rules.delete_rechecked(error.status):
                raise
            # The 404 may be the project's: only a project the manager can read makes it the token's.
            if rules.denied(error.status) or not self._project_readable():
                return error
            try:
                info = self.ctx.gitlab.get_token(self.owner, token_id)
            except GitLabError as read_error:
                if rules.denied(read_error.status):
                    return read_error  # readable, but no rights left on its tokens (demoted)
                raise
            proof = rules.revoke_read_proves(error.status, info)
            if proof is None:
                raise  # the token is alive: the DELETE proved nothing
            return proof
        return rules.DELETED

    def _project_readable(self) -> bool:
        """Whether the manager can still read where the owner's tokens live (a 404 there is the token's).

        A project or group: its read answers 200. An instance service account's tokens live in no
        project, and ``GET /user`` always answers: only an admin (a level, not ``None``) may read
        them, so a manager who lost admin makes a 404 prove nothing (architecture §6). The adapter
        reads ``is_admin`` afresh for this level, so a demotion during a daemon's life counts.
        """
        try:
            level = self.ctx.gitlab.manager_access_level(self.owner)
        except GitLabError as error:
            if rules.project_unreadable(error.status):
                return False
            raise
        instance = self.owner.kind is Kind.SERVICE_ACCOUNT and self.owner.via is None
        return level is not None or not instance

    def _retire(self, token_id: int, name: str, expires_at: date | None, *, checked: bool = False) -> None:
        """Revoke a token and record the evidence; without access, keep it tracked as "no access".

        ``checked``: as for :meth:`_revoke`.
        """
        evidence = self._revoke(token_id, checked=checked)
        if isinstance(evidence, GitLabError):
            self._mark_no_access(token_id, name, expires_at, evidence)
        else:
            self._record_revoked(token_id, name, evidence)

    def _record_revoked(self, token_id: int, name: str, evidence: str) -> None:
        known = {t.token_id: t for t in self.ctx.journal.tokens(self.rec.key)}
        # A token found by exact name (a create whose answer was lost) enters the journal here.
        record = known.get(token_id) or TokenRecord(
            self.rec.key, token_id, name, Origin.CREATED, Role.CANDIDATE, None
        )
        done, _ = advance(record, ev.RevokeProven(self.ctx.clock(), evidence))
        self.rec.write(Change(tokens=(done,)), "REVOKED")
        log.info("token.revoked", target=self.target.name, token_id=token_id, evidence=evidence)
        self.scratch.actions.append(f"revoked token {token_id}")

    def _mark_no_access(self, token_id: int, name: str, expires_at: date | None, cause: GitLabError) -> None:
        """The token may be live and GitLab will not let us revoke it: keep it, retry, fail loudly."""
        now = self.ctx.clock()
        known = {t.token_id: t for t in self.ctx.journal.tokens(self.rec.key)}
        record = known.get(token_id) or TokenRecord(
            self.rec.key, token_id, name, Origin.CREATED, Role.CANDIDATE, expires_at
        )
        # A pending revoke stays one; anything else was never held (a rolled-back candidate, a
        # late create found by name) and stays a candidate, retried without the drift rule.
        marked, _ = advance(record, ev.NoAccess(now))
        self.rec.write(Change(tokens=(marked,)))
        until = marked.expires_at.isoformat() if marked.expires_at else "never (no expiry)"
        line = upstream_message(replace(cause, target=self.target.name), "revoke")
        message = (
            f"{line}; token {token_id} cannot be revoked: the manager has no access to"
            f" {self.owner.describe()} any more (not readable, or no rights on its tokens); it stays live"
            f" until it expires ({until}) and is retried on every run; restore the manager's"
            f" {role_needed(self.owner)} role"
        )
        self.scratch.actions.append(f"token {token_id} not revoked, no access: {line}")
        # Not raised: the other tokens still get their turn. The target counts as failing
        # (engine.failing_reason) while this token is live.
        self.rec.failed("no_access", message, backoff=False)

    def abandon_expired(self) -> None:
        """Record as expired (never revoked) each no-access token whose own expiry has passed."""
        now = self.ctx.clock()
        for token in self.ctx.journal.tokens(self.rec.key):
            if not (unrevocable(token) and token.expires_at and now >= expiry_instant(token.expires_at)):
                continue
            since = stamp(token.no_access_since) if token.no_access_since else "?"
            evidence = (
                f"expired {stamp(expiry_instant(token.expires_at))}, not revoked: the manager had no"
                f" access to the project since {since}"
            )
            abandoned, _ = advance(token, ev.ExpiredUnrevoked(evidence))
            self.rec.write(Change(tokens=(abandoned,)))
            log.warning(
                "token.abandoned", target=self.target.name, token_id=token.token_id, evidence=evidence
            )
            self.scratch.actions.append(f"token {token.token_id} expired unrevoked (no access)")

    def revoke_now(self, token_id: int, why: str) -> None:
        """Revoke a token we created and never had held (rollback paths)."""
        log.info("token.revoke", target=self.target.name, token_id=token_id, why=why)
        self._retire(token_id, "", None)

    def recheck_name(self, name: str) -> int:
        """Revoke every active token with exactly this name (``search`` is a substring match)."""
        try:
            # Fresh: a create whose answer was lost happened after any earlier listing.
            listed = self.list_tokens(fresh=True)
        except GitLabError as error:
            if rules.denied(error.status) or (
                error.status == rules.NOT_FOUND and not self._project_readable()
            ):
                line = upstream_message(replace(error, target=self.target.name), "recheck")
                message = (
                    f"{line}; cannot re-check token name {name}: the manager has no access to"
                    f" {self.owner.describe()}; a token created under that name would stay live; restore the"
                    f" manager's {role_needed(self.owner)} role"
                )
                raise self.rec.failed("no_access", message, backoff=False) from None
            raise
        matches = [t for t in listed if t.name == name and t.active]
        for token in matches:
            self._retire(token.id, token.name, token.expires_at)
        return len(matches)

    def tombstone(self, name: str) -> None:
        """Keep re-checking ``name`` for a few days, for a create that completes late."""
        until = self.ctx.clock() + self.ctx.settings.tombstone_life
        self.rec.write(Change(tombstones=(Tombstone(self.rec.key, name, until),)))

    def recheck_tombstones(self) -> None:
        """Re-check each tombstone; drop one only after a successful re-check made at or after its ``until``.

        A create can complete late right up to the end of the window, and a manager without access
        may never have checked the name at all: an expired stone gets its final check before it
        goes. A failed re-check keeps the stone and fails the run naming it.
        """
        for stone in self.ctx.journal.tombstones(self.rec.key):
            now = self.ctx.clock()  # read before the listing: the check is made at or after it
            try:
                found = self.recheck_name(stone.name)
            except GitLabError as error:
                line = upstream_message(replace(error, target=self.target.name), "recheck")
                message = f"{line}; tombstoned name {stone.name} not re-checked: kept, retried next run"
                raise self.rec.failed("failed", message) from None
            if found:
                log.warning("token.late_create_revoked", target=self.target.name, name=stone.name)
            if stone.until <= now:
                self.rec.write(Change(drop_tombstones=(stone.name,)))

    def revoke_pending(self) -> None:
        """Revoke every pending token whose grace has passed, under rules 1 and 2."""
        self.rec.step = "revoke"
        self.abandon_expired()
        # Never pushed (rolled back, then no access): neither drift nor use can concern them.
        for token in [t for t in self.tokens(Role.CANDIDATE) if t.no_access_since is not None]:
            self._retire(token.token_id, token.name, token.expires_at)
        now = self.ctx.clock()
        pending = [t for t in self.tokens(Role.PENDING_REVOKE) if t.revoke_after and t.revoke_after <= now]
        if not pending:
            return
        state = self.rec.state()
        observed = self.read_connection().credentials_hash
        if not rules.holds_our_push(state.verified_hash, observed):
            self.freeze(observed)
        refused = []
        for token in pending:
            # Before the in-use check: a token another target holds is in use by it, not held here.
            owned = self.owned_elsewhere(token.token_id)
            if owned is not None:
                refused.append(owned)  # the others still go; this one fails the run below
                continue
            sent = self.rec.upstream_requests()
            if not self._clear_to_revoke(token, now):
                continue
            self.rec.checkpoint("GRACE-CHECKED")
            # That read stands for the revoke's own when nothing was sent upstream since (the
            # in-use check had nothing to read): only CPU and this run's journal calls came between.
            checked = self.rec.upstream_requests() == sent
            self._retire(token.token_id, token.name, token.expires_at, checked=checked)
        if state.hold_since is not None:
            self.rec.write(Change(target=replace(self.rec.state(), hold_since=None)))
        if refused:
            raise self._refuse_revoke("; ".join(refused))

    def revoke_anyway_hint(self) -> str:
        """The command that waives the still-in-use hold, for the hold's message."""
        return f"`rotator rotate {self.target.name} --revoke-anyway`"

    def _clear_to_revoke(self, token: TokenRecord, now: datetime) -> bool:
        """Rule 2: read the token unless it cannot have been used since it was retired."""
        since = rules.in_use_baseline(token, self.target.grace, self.ctx.settings.in_use_margin)
        if not self.target.hold_revoke_if_used or since is None:
            return True
        if now <= since:
            return True  # GitLab updates last_used_at at most every ~10 minutes: it cannot fire yet
        try:
            info = self.ctx.gitlab.get_token(self.owner, token.token_id)
            if info is None:
                # One 404 is not proof (a proxy can answer it): look again, in a fresh listing, so a
                # live token still gets its in-use check.
                info = next((t for t in self.list_tokens(fresh=True) if t.id == token.token_id), None)
        except GitLabError as error:
            if not rules.denied(error.status) and not (
                error.status == rules.NOT_FOUND and not self._project_readable()
            ):
                raise
            # The manager can no longer read the project's tokens: no DELETE could succeed either.
            self._mark_no_access(token.token_id, token.name, token.expires_at, error)
            return False
        used = rules.still_in_use(info, since, revoke_anyway=self.scratch.revoke_anyway)
        if used is not None:
            state = self.rec.state()
            self.rec.write(Change(target=replace(state, hold_since=state.hold_since or now)))
            message = (
                f"{self.target.name}: token {token.token_id} was used at {stamp(used)},"
                f" after it was retired; revoke held ({self.revoke_anyway_hint()})"
            )
            raise self.rec.failed("in_use", message, backoff=False)
        return True


#: Whether a token waits for a revoke the manager has had no access to make (a rule of the core).
unrevocable = rules.unrevocable
