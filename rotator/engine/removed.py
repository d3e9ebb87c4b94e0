"""Removed targets: journal keys that no configured target maps to any more (architecture §6).

A key is removed when the config no longer names its (gitlab.url, project id, connection id):
the target was deleted, re-pointed to another project, or ``gitlab.url`` changed. Nothing it
still holds is forgotten:

- its pending revokes are revoked after their grace;
- when a configured target (the *owner*) now uses the same connection under another key, the
  key's current token is retired by the owner's verified push and revoked after the owner's
  grace; until the owner has a verified push, everything is left alone;
- the drift rule compares the connection with the owner's latest verified push (the key's own,
  when no target uses the connection any more);
- a connection Infisical says is gone (its own 404 for that id) holds nothing, so nothing can be
  locked out: every token is revoked after its grace. When nothing else sends a run upstream for
  the key, the connection is probed (one read) at most once a day (:data:`PROBE_EVERY`) while no
  configured target uses it and it may hold a live token: the bounded exception to "an idle run
  makes no upstream call" (architecture §5), without which a deleted connection's token would
  stay live until it expires;
- a token rotator had no access to revoke counts as failing while it is live, and is recorded as
  expired (``abandoned``) once its own ``expires_at`` has passed, as for a configured target;
- an unfinished rotation is resumed like a configured target's (PLANNED: the exact name is
  re-checked and tombstoned; CREATED: the unpushed token is revoked), except that nothing is
  created: a PUSHING or PUSHED one is closed and its token stays possibly held, for the rules above;
- every tombstone is re-checked, an expired one a last time before it is dropped;
- anything else is left alone and reported with the ``rotator forget`` command that lets it go.

Credentials go only to the configured ``gitlab.url``: a key recorded under another URL is acted
on (through the configured GitLab, with the recorded project and token ids) only when both name
the same instance. A configured project path never resolved is not guessed at: no key on its
connection counts as removed until it resolves.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from rotator.core import evidence, rules
from rotator.core.durations import stamp
from rotator.core.errors import ConnectionNotFoundError, GitLabError, TargetFailedError
from rotator.core.machine import advance
from rotator.core.model import (
    OWNED_ROLES,
    Change,
    Kind,
    Role,
    RotationRecord,
    Step,
    TargetKey,
    TargetState,
    TokenRecord,
    same_instance,
    short_hash,
)
from rotator.core.model import (
    Owner as KeyOwner,
)
from rotator.core.ports import Journal
from rotator.core.schedule import expiry_instant
from rotator.core.spec import EngineSpec, RotationSpec, TokenShape
from rotator.engine.context import Context, Scratch
from rotator.engine.owners import PathCache, cache_ref, owner_of
from rotator.engine.recorder import Recorder, upstream_message
from rotator.engine.retire import Retirer, unrevocable
from rotator.engine.rotation import TargetRun


#: How often a removed key's connection is read when only its deletion could let a token go.
PROBE_EVERY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Owner:
    """The configured target that now uses a removed key's connection, under its own key."""

    name: str
    key: TargetKey
    grace: timedelta


@dataclass(frozen=True, slots=True)
class Removed:
    """A journal key no configured target maps to, and what is known about who replaced it."""

    key: TargetKey
    name: str  # the name its target last had
    owner: Owner | None
    same_instance: bool  # its gitlab_url names the configured GitLab
    grace: timedelta  # as its own retirements recorded it

    @property
    def forget(self) -> str:
        """The exact command that lets the key go after revoking what it holds."""
        return f"rotator forget '{self.key}' --revoke"


def live(tokens: list[TokenRecord], now: datetime) -> list[TokenRecord]:
    """The tokens that may still work: in a live role and not past their ``expires_at``."""
    return [
        t
        for t in tokens
        if t.role in OWNED_ROLES and (t.expires_at is None or now < expiry_instant(t.expires_at))
    ]


def expired_unrevocable(tokens: list[TokenRecord], now: datetime) -> list[TokenRecord]:
    """The "no access" tokens whose own expiry has passed: to be recorded as expired (abandoned)."""
    return [t for t in tokens if unrevocable(t) and t.expires_at and now >= expiry_instant(t.expires_at)]


def _recorded_grace(tokens: list[TokenRecord]) -> timedelta:
    graces = [t.revoke_after - t.retired_at for t in tokens if t.revoke_after and t.retired_at]
    return max(timedelta(0), min(graces)) if graces else timedelta(0)


def classify(
    spec: EngineSpec, journal: Journal, paths: PathCache | None = None
) -> tuple[list[Removed], dict[str, str]]:
    """Every journal key no configured target maps to; and, for the others, which target keeps each.

    Offline: a project path resolves through the journal's cache only. A key on the connection of
    a target whose path never resolved is kept (not guessed at): it may be that target's own key.
    """
    url = spec.gitlab_url
    cache = paths or PathCache(journal)
    kept_by: dict[TargetKey, str] = {}
    owners: dict[str, Owner] = {}
    unresolved: dict[str, str] = {}
    for target in spec.targets:
        connection = target.connection_id
        resolved = owner_of(target, lambda kind, path: cache.project_id(url, cache_ref(kind, path)))
        if resolved is None:
            unresolved[connection] = target.name
            continue
        key = TargetKey.of(url, resolved, connection)
        kept_by[key] = target.name
        owners[connection] = Owner(target.name, key, target.grace)
    states = journal.targets()
    removed, kept = [], {}
    for state in states:
        key = state.key
        if key in kept_by:
            kept[str(key)] = f"target {kept_by[key]} maps to it"
        elif key.connection_id in unresolved:
            name = unresolved[key.connection_id]
            kept[str(key)] = (
                f"target {name} uses its connection and its project path is not resolved yet"
                f" (`rotator run-once --target {name}` resolves it)"
            )
        else:
            tokens = journal.tokens(key)
            owner = owners.get(key.connection_id) or _last_pusher(journal, states, key)
            instance = same_instance(key.gitlab_url, url)
            removed.append(Removed(key, state.name, owner, instance, _recorded_grace(tokens)))
    return removed, kept


def _last_pusher(journal: Journal, states: list[TargetState], key: TargetKey) -> Owner | None:
    """Another key that verified a push to the same connection after this one did, if any.

    Used when no configured target uses the connection: that later push retired this key's
    tokens, and its hash is what the drift rule expects the connection to hold.
    """
    mine = next((s.verified_at for s in states if s.key == key), None)
    later = [
        s
        for s in states
        if s.key.connection_id == key.connection_id
        and s.key != key
        and s.verified_hash
        and s.verified_at
        and (mine is None or s.verified_at > mine)
    ]
    if not later:
        return None
    last = max(later, key=lambda s: s.verified_at or datetime.min.replace(tzinfo=UTC))
    return Owner(f"{last.name} (removed)", last.key, _recorded_grace(journal.tokens(last.key)))


def find_removed(
    spec: EngineSpec, journal: Journal, now: datetime, paths: PathCache | None = None
) -> list[Removed]:
    """The removed keys holding a live token, a tombstone, an unfinished rotation or a token to abandon.

    ``paths``: the engine's path cache (its paths are then read from the journal once per process).
    """
    found = []
    for r in classify(spec, journal, paths)[0]:
        tokens = journal.tokens(r.key)
        if (
            live(tokens, now)
            or expired_unrevocable(tokens, now)
            or journal.tombstones(r.key)
            or journal.unfinished(r.key)
        ):
            found.append(r)
    return found


def _via(owner: KeyOwner) -> tuple[Kind, int | str] | None:
    return (owner.via, owner.via_id) if owner.via is not None and owner.via_id is not None else None


def stand_in(removed: Removed, name: str) -> RotationSpec:
    """A revoke-only spec for the key, shown as ``name``: never due, never created for.

    Only what the revoke side reads is real (the key's project and connection, its recorded
    grace); the token's shape is a placeholder, since nothing is ever created for it.
    """
    return RotationSpec(
        name=name,
        project=removed.key.project_id,
        kind=removed.key.owner.kind,
        via=_via(removed.key.owner),
        connection_id=removed.key.connection_id,
        token=TokenShape(("api",), 40, timedelta(days=365)),
        token_base_name=name,
        renew_before=timedelta(days=1),
        grace=removed.grace,
        removed=True,
    )


@dataclass(frozen=True, slots=True)
class RemovedPlan:
    """What a run does for a removed key: tokens to revoke now, and why the others wait.

    ``probe``: read the connection, though nothing is due, to learn whether it was deleted.
    ``abandon``: "no access" tokens past their expiry, recorded as expired (no upstream call).
    """

    due: tuple[TokenRecord, ...]
    left: tuple[str, ...]
    recheck: bool
    probe: bool = False
    abandon: tuple[TokenRecord, ...] = ()
    resume: RotationRecord | None = None  # an unfinished rotation, carried forward first

    @property
    def idle(self) -> bool:
        """Nothing to do: no upstream call, no journal write."""
        return not (self.due or self.recheck or self.probe or self.abandon or self.resume)


def owner_state(journal: Journal, removed: Removed) -> TargetState | None:
    """The owner's bookkeeping, when it has a verified push on the connection."""
    if removed.owner is None:
        return None
    state = journal.target(removed.owner.key)
    return state if state is not None and state.verified_hash and state.verified_at else None


def revoke_after(removed: Removed, token: TokenRecord, owner: TargetState | None) -> datetime | None:
    """When the token may be revoked by a run; ``None``: not by a run (the connection may hold it)."""
    if token.role is Role.PENDING_REVOKE:
        return token.revoke_after
    if token.role is Role.CURRENT and owner is not None and owner.verified_at and removed.owner:
        return owner.verified_at + removed.owner.grace
    return None


def _probe_due(journal: Journal, removed: Removed, now: datetime) -> bool:
    """Whether the connection was last seen a day ago or more (or never), so a run may read it."""
    state = journal.target(removed.key)
    seen = state.observed_at if state is not None else None
    return seen is None or now >= seen + PROBE_EVERY


def plan_removed(journal: Journal, removed: Removed, now: datetime) -> RemovedPlan:
    """The work for a removed key, from the journal alone."""
    recorded = journal.tokens(removed.key)
    tokens = live(recorded, now)
    abandon = tuple(expired_unrevocable(recorded, now))
    stones = journal.tombstones(removed.key)
    unfinished = journal.unfinished(removed.key)
    if not removed.same_instance:
        why = f"recorded for {removed.key.gitlab_url}, not the configured gitlab.url: nothing is sent there"
        elsewhere = [f"token {t.token_id} ({t.role.value}): {why}" for t in tokens]
        elsewhere += [f"tombstoned name {s.name}: {why}" for s in stones]
        if unfinished is not None:
            elsewhere.append(f"rotation {unfinished.id} stopped at {unfinished.step.value}: {why}")
        return RemovedPlan((), tuple(elsewhere), recheck=False, abandon=abandon)
    recheck = bool(stones)  # an expired stone too: it gets its final re-check
    owner = owner_state(journal, removed)
    if removed.owner is not None and owner is None:
        connection = removed.key.connection_id
        why = f"waiting for {removed.owner.name}'s first verified push on connection {connection}"
        waiting = tuple(f"token {t.token_id} ({t.role.value}): {why}" for t in tokens)
        return RemovedPlan((), waiting, recheck, abandon=abandon, resume=unfinished)
    due, left, held = [], [], False
    for token in tokens:
        after = revoke_after(removed, token, owner)
        if after is not None and after <= now:
            due.append(token)
        elif after is not None:
            left.append(f"token {token.token_id} ({token.role.value}): revoke after {stamp(after)}")
        elif removed.owner is not None:
            left.append(
                f"token {token.token_id} ({token.role.value}): from a rotation that never finished;"
                " forget --revoke revokes it"
            )
        else:
            held = True
            left.append(
                f"token {token.token_id} ({token.role.value}): connection {removed.key.connection_id} may"
                " still hold it and no configured target uses it, so revoking could lock it out (a daily"
                " read of the connection revokes it once the connection is deleted; forget alone leaves"
                " it live, untracked)"
            )
    probe = held and _probe_due(journal, removed, now)
    return RemovedPlan(tuple(due), tuple(left), recheck, probe=probe, abandon=abandon, resume=unfinished)


class RemovedRun(Retirer):
    """The revokes of a removed key under its lease: by a run, or by ``rotator forget --revoke``."""

    def __init__(self, ctx: Context, rec: Recorder, target: RotationSpec, removed: Removed) -> None:
        """Act on ``removed`` through the configured GitLab, as ``target`` (its stand-in)."""
        super().__init__(ctx, rec, target, removed.key.owner, Scratch())
        self.removed = removed

    def _observe(self) -> str | None:
        """The connection's hash, or ``None`` when Infisical says it is gone.

        Seeing it is recorded (``observed_at``, a fenced write): the daily probe counts from it.
        A deleted connection is not, so a key whose tokens are not yet past their grace is probed
        again on the next run.
        """
        try:
            observed = self.read_connection().credentials_hash
        except ConnectionNotFoundError:
            return None
        state = self.rec.state()
        self.rec.write(Change(target=replace(state, observed_hash=observed, observed_at=self.ctx.clock())))
        return observed

    def revoke_anyway_hint(self) -> str:
        """A stand-in cannot be rotated: ``forget --revoke`` is what revokes a held token anyway."""
        return f"`{self.removed.forget}` revokes it anyway"

    def _reference(self) -> tuple[str | None, str]:
        """The verified push the connection must still hold, and whose it is."""
        owner = owner_state(self.ctx.journal, self.removed)
        if owner is not None and self.removed.owner is not None:
            return owner.verified_hash, f"{self.removed.owner.name}'s verified push"
        return self.rec.state().verified_hash, "the removed target's last verified push"

    def resume(self, rotation: RotationRecord) -> None:
        """Carry the key's unfinished rotation forward as a configured target's would be; never create.

        PLANNED and CREATED go through :meth:`TargetRun.resume` (re-check and tombstone the name, or
        revoke the unpushed token). A PUSHING or PUSHED token may be what the connection holds: it
        stays possibly held, for the removed-target rules to decide; the rotation is closed.
        """
        self.rec.step = "resume"
        run = TargetRun(self.ctx, self.rec, self.target, self.owner, "removed")
        run.scratch = self.scratch
        if rotation.step in (Step.PLANNED, Step.CREATED):
            run.resume(rotation)
        else:
            note = "the target was removed: push outcome not verified; its token stays possibly held"
            run.close(rotation, evidence.TargetRemoved(self.ctx.clock(), note))
        self.scratch.actions.append(f"closed rotation {rotation.id} (stopped at {rotation.step.value})")

    def sweep(self, plan: RemovedPlan) -> None:
        """Resume; record expired "no access" tokens; revoke due ones (drift rule); re-check tombstones."""
        if plan.resume is not None:
            self.resume(plan.resume)  # a name it tombstones was just checked: not again below
        self.rec.step = "revoke"
        now = self.ctx.clock()
        if plan.abandon:
            self.abandon_expired()
        due = self._check_connection(plan, now)
        owner = owner_state(self.ctx.journal, self.removed)
        refused = []
        for token in due:
            owned = self.owned_elsewhere(token.token_id)
            if owned is not None:
                refused.append(owned)  # never revoked on this key's behalf; fails the run below
                continue
            retiring = self._to_pending(token, owner, now)
            if not self._clear_to_revoke(retiring, now):
                continue
            self.rec.checkpoint("GRACE-CHECKED")
            self._retire(token.token_id, token.name, token.expires_at)
        state = self.rec.state()
        if state.hold_since is not None:  # every due token passed its still-in-use check
            self.rec.write(Change(target=replace(state, hold_since=None)))
        if plan.recheck:
            self.recheck_tombstones()
        if refused:
            raise self._refuse_revoke("; ".join(refused))

    def _check_connection(self, plan: RemovedPlan, now: datetime) -> list[TokenRecord]:
        """The tokens to revoke, once the connection is read: the plan's, or all when it is gone.

        Raises on drift. No read when nothing is due and no probe is wanted: re-checking
        tombstones and recording abandoned tokens need none.
        """
        due = list(plan.due)
        if not (due or plan.probe):
            return due
        observed = self._observe()
        if observed is None:
            return self._gone(now)
        if not due:
            connection = self.rec.key.connection_id
            self.scratch.actions.append(f"connection {connection} still exists (read at most once a day)")
            return due
        reference, whose = self._reference()
        if not rules.holds_our_push(reference, observed):
            raise self.rec.failed(
                "drift",
                f"{self.target.name}: drift: connection {self.rec.key.connection_id} holds"
                f" {short_hash(observed)}, not {whose} {short_hash(reference)}; nothing of"
                f" the removed key {self.rec.key} is revoked",
                backoff=False,
            )
        return due

    def _gone(self, now: datetime) -> list[TokenRecord]:
        """The connection is deleted: every live token is due once its grace has passed."""
        state = self.rec.state()
        due = []
        for token in live(self.ctx.journal.tokens(self.rec.key), now):
            after = token.revoke_after
            if token.role is not Role.PENDING_REVOKE:
                # It was held until the connection went; its grace runs from its last push.
                after = (state.verified_at or now) + self.removed.grace
            if after is not None and after <= now:
                due.append(token)
        self.scratch.actions.append(f"connection {self.rec.key.connection_id} is gone (404 NotFound)")
        return due

    def _to_pending(self, token: TokenRecord, owner: TargetState | None, now: datetime) -> TokenRecord:
        """Record a current (or held) token as a pending revoke before it is revoked."""
        if token.role is Role.PENDING_REVOKE:
            return token
        retired_at = owner.verified_at if owner is not None and owner.verified_at else now
        retired, _ = advance(token, evidence.Retired(retired_at, now))
        self.rec.write(Change(tokens=(retired,)))
        return retired

    def revoke_all(self) -> list[str]:
        """``forget --revoke``: revoke every live token it is safe to revoke now; the refusals.

        Grace and the still-in-use check are the operator's to waive; the drift rule, a token the
        connection may still hold, and a token another target tracks are not.
        """
        self.rec.step = "forget"
        now = self.ctx.clock()
        stones = self.ctx.journal.tombstones(self.rec.key)
        if not (stones or live(self.ctx.journal.tokens(self.rec.key), now)):
            return []
        if not self.removed.same_instance:
            return [f"{self.rec.key} was recorded for another GitLab instance: nothing is sent there"]
        for stone in stones:  # first: a late create found by name is revoked before the entry goes
            problem = self._recheck_for_forget(stone.name)
            if problem is not None:
                return [f"tombstoned name {stone.name}: not re-checked: {problem}"]
        tokens = live(self.ctx.journal.tokens(self.rec.key), now)
        if not tokens:
            return []
        observed = self._observe()
        reference, whose = self._reference()
        owner = owner_state(self.ctx.journal, self.removed)
        refusals = []
        for token in tokens:
            why = self._refusal(token, observed, reference, whose, now)
            if why is None:
                why = self.owned_elsewhere(token.token_id)
            if why is not None:
                refusals.append(f"token {token.token_id} ({token.role.value}): {why}")
                continue
            self._to_pending(token, owner, now)
            self._retire(token.token_id, token.name, token.expires_at)
            if all(t.token_id != token.token_id for t in self.tokens(Role.REVOKED)):
                refusals.append(f"token {token.token_id} ({token.role.value}): not revoked (no access)")
        return refusals

    def _recheck_for_forget(self, name: str) -> str | None:
        """Re-check one tombstoned name (revoking a match); why it could not be, or ``None``."""
        try:
            self.recheck_name(name)
        except TargetFailedError as error:
            return error.message
        except GitLabError as error:
            return upstream_message(replace(error, target=self.target.name), "forget")
        return None

    def _refusal(
        self, token: TokenRecord, observed: str | None, reference: str | None, whose: str, now: datetime
    ) -> str | None:
        """Why ``forget --revoke`` must not revoke this token now, or ``None``."""
        if observed is None:
            return None  # the connection is gone: it holds nothing
        connection = self.rec.key.connection_id
        if not rules.holds_our_push(reference, observed):
            return (
                f"connection {connection} holds {short_hash(observed)}, not {whose}"
                f" {short_hash(reference)}: which token it holds cannot be told"
            )
        settle = self.ctx.settings.possibly_held_settle
        owner = owner_state(self.ctx.journal, self.removed)
        if owner is None and token.role in (Role.CURRENT, Role.POSSIBLY_HELD):
            return (
                f"connection {connection} may still hold it: revoking would lock it out; delete the"
                " connection or configure a target for it first, or forget without --revoke"
            )
        verified = owner.verified_at if owner is not None else None
        return rules.settling(token, verified, now, settle)
