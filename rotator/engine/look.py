"""A look upstream that changes nothing: what ``plan``, ``run-once --dry-run`` and ``status --live`` show.

The journal says what rotator did; only GitLab and Infisical say what holds now. Per target, with
reads alone (``GET``s, and Infisical's login, which writes nothing a run depends on):

* the manager token works and may do rotator's work: it is active with the ``api`` scope (asked
  once, ``GET /personal_access_tokens/self``), and its role where the target's tokens live is
  enough (a project's Maintainer, a group's Owner, an admin for an instance service account: the
  same judgements as ``check``, :mod:`rotator.engine.checks`); the owner's paths are resolved
  upstream while the journal has not cached them, and the journal is not told;
* the connection as Infisical holds it now: its shape (rule 5), and its ``credentialsHash``
  judged by the rule the next run that reads it applies (rule 1, :mod:`rotator.engine.foresee`): resuming
  a rotation stopped at PUSHED, our PATCH's hash (the pre-PATCH one lags, any other is drift);
  before a push, the last verified push (another hash is **drift**, unless a push whose outcome
  was lost may explain it); before revokes alone, the last verified push and nothing else. A
  frozen target is drift until ``--take-over``, even once the connection holds our push again;
* the current token is still active on GitLab, and so is each possibly-held or candidate token;
* each pending revoke's ``last_used_at``, and whether rule 2 would hold its revoke;
* before a first rotation without ``adopt_token_id``, the owner's active tokens no target tracks
  (one list call; :mod:`rotator.engine.untracked`), as a ``warn``.

No create, no PATCH, no DELETE is ever sent from here, and the journal is only read. Each finding
is a :class:`Finding` whose level is one of ``check``'s words (``ok``, ``info``, ``warn``,
``PROBLEM``, ``skip``) or ``DRIFT``; a failed call keeps its :class:`UpstreamError` so the door
that prints it can say which variable or config key to fix. Once an upstream refused rotator's
credential or did not answer, its later items are skipped with one line pointing back, as in
``check`` (and a refused Universal Auth login is never sent again: three lock the identity).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from rotator.core import rules
from rotator.core.durations import in_days, stamp
from rotator.core.errors import ConnectionNotFoundError, UpstreamError
from rotator.core.inventory import Managed
from rotator.core.model import (
    Connection,
    Kind,
    Owner,
    Role,
    RotationRecord,
    TargetKey,
    TargetState,
    TokenInfo,
    TokenRecord,
    short_hash,
)
from rotator.core.schedule import Situation, expiry_instant
from rotator.core.spec import RotationSpec
from rotator.engine import untracked
from rotator.engine.checks import access_problem, check_connection, manager_problem
from rotator.engine.context import Context
from rotator.engine.foresee import A_ROTATION, PUSHES, Check, Foreseen, next_check
from rotator.engine.owners import owner_of, role_held, shown


OK, INFO, WARN, PROBLEM, DRIFT, SKIP = "ok", "info", "warn", "PROBLEM", "DRIFT", "skip"
#: The levels that make a target fail (exit 1).
FAILING = frozenset({PROBLEM, DRIFT})
T = TypeVar("T")
#: The roles of tokens the connection may hold, or never held, that no push has settled yet.
_UNSETTLED = frozenset({Role.POSSIBLY_HELD, Role.CANDIDATE})


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of a look: its level, what was asked, what was found (quoting no token value)."""

    level: str
    what: str
    text: str
    #: The failed call, for the door to word (which variable or config key to fix); else ``None``.
    error: UpstreamError | None = None
    #: The config key the item reads (``targets[N].connection_id: ID``), for that wording.
    key: str | None = None

    @property
    def failing(self) -> bool:
        """Whether this finding makes its target fail (a problem, or drift)."""
        return self.level in FAILING


@dataclass(frozen=True, slots=True)
class TargetLook:
    """What the look found for one configured target."""

    target: str
    findings: tuple[Finding, ...]

    @property
    def failing(self) -> bool:
        """Whether any finding makes the target fail."""
        return any(f.failing for f in self.findings)


@dataclass
class Look:
    """One look over some targets; it remembers what it read, and which upstream refused us.

    ``blocking(error)`` says why later items on the error's upstream are not asked (a refused
    credential, no answer), or ``None``: the door's wording, so the engine names no variable.
    """

    ctx: Context
    blocking: Callable[[UpstreamError], str | None]
    blocked: dict[str, str] = field(default_factory=dict)
    #: The command's own ``--force`` and ``--take-over``: the run the look foresees is that one.
    force: bool = False
    take_over: bool = False
    #: Connections read so far, by id: the credentials item's read serves its target too.
    _connections: dict[str, Connection | UpstreamError] = field(default_factory=dict)
    _manager: TokenInfo | UpstreamError | None = None
    #: The tokens the journal tracks as live, by id: read once, for every first rotation's warning.
    _tracked: dict[int, Managed] | None = None
    #: The names a lost create may have used (read with ``_tracked``): never tokens to adopt.
    _in_flight: frozenset[str] = frozenset()

    # -- the credentials, once per look ------------------------------------------------------------
    def credentials(self, first_connection: str | None) -> tuple[Finding, ...]:
        """The manager token, and Infisical's login (through the first target's connection read)."""
        found = [self._manager_finding()]
        if first_connection is not None:
            found.append(self._infisical_finding(first_connection))
        return tuple(found)

    def _manager_finding(self) -> Finding:
        what = "gitlab: manager token"
        if self._manager is None:
            self._manager = self._ask(self.ctx.gitlab.manager_self)
        me = self._manager
        if isinstance(me, UpstreamError):
            return self._failed(what, me)
        problem = manager_problem(me)
        if problem is not None:
            return Finding(PROBLEM, what, problem)
        left = "never expires"
        if me.expires_at:
            left = f"expires {me.expires_at} ({in_days(expiry_instant(me.expires_at) - self.ctx.clock())})"
        return Finding(OK, what, f"token {me.id} ({me.name}) is active with the api scope; {left}")

    def _infisical_finding(self, connection_id: str) -> Finding:
        what = "infisical: credentials"
        read = self._connection(connection_id)
        # Infisical's own "not found" came past authentication: the connection's own line says it.
        if isinstance(read, UpstreamError) and not isinstance(read, ConnectionNotFoundError):
            return self._failed(what, read)
        expiry = self.ctx.infisical.access_token_expiry()
        left = f"; the access token expires {in_days(expiry - self.ctx.clock())}" if expiry else ""
        return Finding(OK, what, f"accepted{left}")

    # -- one target ------------------------------------------------------------------------------
    def target(
        self,
        target: RotationSpec,
        key: TargetKey | None,
        index: int,
        state: TargetState | None,
        situation: Situation | None = None,
    ) -> TargetLook:
        """Everything the look asks about ``target`` (``index`` is its place in the config).

        ``situation`` (the engine's, offline) says what the next run does, and so by which rule
        it would judge the connection (:func:`~rotator.engine.foresee.next_check`); without it,
        as a rotation would.
        """
        tokens = self.ctx.journal.tokens(key) if key else []
        unfinished = self.ctx.journal.unfinished(key) if key else None
        foreseen = A_ROTATION
        if situation is not None:
            foreseen = next_check(
                situation, tokens, unfinished, self.ctx.clock(), force=self.force, take_over=self.take_over
            )
        found: list[Finding] = []
        owner = self._owner(target, key, found)
        found.append(self._connection_finding(target, index, state, tokens, (foreseen, unfinished)))
        found += [self._current(target, owner, t) for t in tokens if t.role is Role.CURRENT]
        found += [self._held(target, owner, t) for t in tokens if t.role in _UNSETTLED]
        found += [self._pending(target, owner, t) for t in tokens if t.role is Role.PENDING_REVOKE]
        if untracked.concerns(target, state):
            found += self._untracked(target, owner, index, resumed=untracked.settles_on_resume(unfinished))
        return TargetLook(target.name, tuple(found))

    def _untracked(
        self, target: RotationSpec, owner: Owner | None, index: int, *, resumed: bool
    ) -> list[Finding]:
        """Before a first rotation without ``adopt_token_id``: the owner's tokens no target tracks.

        One list call (the look reads single tokens otherwise); a warning, even when the listing
        fails: the rotation does not depend on it. Nothing is said when none is left behind.
        ``resumed``: the next run verifies the first push on resume (adopt_token_id comes too late).
        """
        if owner is None or "gitlab" in self.blocked:
            return []  # the owner's line says why it was not read
        if self._tracked is None:
            self._tracked = untracked.tracked(self.ctx.journal, self.ctx.gitlab_url)
            self._in_flight = untracked.in_flight(self.ctx.journal, self.ctx.gitlab_url)
        manager = self._manager
        if isinstance(manager, UpstreamError):  # any listed token could be the manager's own
            found = untracked.failed(manager, untracked.MANAGER_UNREAD)
        elif isinstance(listed := self._ask(lambda: self.ctx.gitlab.list_tokens(owner)), UpstreamError):
            found = untracked.failed(listed)
        else:
            found = untracked.untracked(
                listed, self._tracked, manager.id if manager else None, self._in_flight
            )
        if not found.worth_saying:
            return []
        text = untracked.warning(target, index, shown(target, owner), found, rotated=False, resumed=resumed)
        return [Finding(WARN, untracked.WHAT, text)]

    def _owner(self, target: RotationSpec, key: TargetKey | None, found: list[Finding]) -> Owner | None:
        """Whose tokens the target rotates, and the manager's role where they live.

        The owner is the journal key's; before the first run, its paths (a project's, a group's,
        a service account's home group or project) are resolved upstream, and not remembered:
        the journal is only read. A service account's user id is always given.
        """
        owner = key.owner if key else None
        what = shown(target, owner)
        if "gitlab" in self.blocked:
            found.append(self._skipped(what, "gitlab"))
            return owner
        try:
            if owner is None:
                owner = owner_of(target, self._resolve)
                what = shown(target, owner)
            if owner is None:  # pragma: no cover - _resolve answers every path or raises
                return None
            level = self.ctx.gitlab.manager_access_level(owner)
        except UpstreamError as error:
            found.append(self._failed(what, error))
            return None
        problem = access_problem(level, owner)
        text = problem or f"the manager is {role_held(owner, level)} ({level}): may create and revoke tokens"
        found.append(Finding(PROBLEM if problem else OK, what, text))
        return owner

    def _resolve(self, kind: Kind, path: str) -> int:
        """A path's id, asked of GitLab (the look never writes the journal's cache)."""
        return self.ctx.gitlab.group_id(path) if kind is Kind.GROUP else self.ctx.gitlab.project_id(path)

    def _connection_finding(
        self,
        target: RotationSpec,
        index: int,
        state: TargetState | None,
        tokens: list[TokenRecord],
        foreseen: "tuple[Foreseen, RotationRecord | None]",
    ) -> Finding:
        what = f"connection {target.connection_id}"
        config_key = f"targets[{index}].connection_id: {target.connection_id}"
        if "infisical" in self.blocked:
            return self._skipped(what, "infisical")
        read = self._connection(target.connection_id)
        if isinstance(read, UpstreamError):
            return self._failed(what, read, config_key)
        shape = check_connection(read, self.ctx.gitlab_url, target.kind)
        if shape is not None:
            return Finding(PROBLEM, what, shape, key=config_key)
        seen, unfinished = foreseen
        return drift_finding(what, target.name, read, state, tokens, foreseen=seen, unfinished=unfinished)

    def _current(self, target: RotationSpec, owner: Owner | None, token: TokenRecord) -> Finding:
        what = f"current token {token.token_id}"
        info = self._token(what, target, owner, token)
        if isinstance(info, Finding):
            return info
        if info is None or not info.active:
            state = _gone(info)
            return Finding(
                PROBLEM,
                what,
                f"GitLab says {state}: the connection may hold a dead token;"
                f" `rotator rotate {target.name}` replaces it",
            )
        return Finding(OK, what, f"active on GitLab; {_expiry(info, self.ctx.clock())}")

    def _held(self, target: RotationSpec, owner: Owner | None, token: TokenRecord) -> Finding:
        """A token the connection may hold (a lost PATCH), or a candidate never pushed: alive or not."""
        role = "possibly held token" if token.role is Role.POSSIBLY_HELD else "candidate token"
        what = f"{role} {token.token_id}"
        info = self._token(what, target, owner, token)
        if isinstance(info, Finding):
            return info
        if token.role is Role.POSSIBLY_HELD:
            if info is None or not info.active:
                state = _gone(info)
                return Finding(
                    WARN,
                    what,
                    f"GitLab says {state}: if the connection holds it, it holds a dead token until the"
                    " next rotation pushes and verifies",
                )
            return Finding(
                INFO,
                what,
                f"active on GitLab; {_expiry(info, self.ctx.clock())}; a push whose outcome was lost may have"
                " left it in the connection: retired by the next verified push",
            )
        if info is None or not info.active:
            return Finding(INFO, what, "already gone on GitLab; the next revoke records it")
        stuck = (
            f"; no access to revoke it since {stamp(token.no_access_since)}" if token.no_access_since else ""
        )
        return Finding(
            INFO, what, f"active on GitLab; {_expiry(info, self.ctx.clock())}; never pushed{stuck}"
        )

    def _pending(self, target: RotationSpec, owner: Owner | None, token: TokenRecord) -> Finding:
        what = f"pending revoke {token.token_id}"
        info = self._token(what, target, owner, token)
        if isinstance(info, Finding):
            return info
        if info is None or not info.active:
            return Finding(INFO, what, "already gone on GitLab; the next revoke records it")
        used = f"last used {stamp(info.last_used_at)}" if info.last_used_at else "never used"
        after = (
            f"revoked after {stamp(token.revoke_after)}" if token.revoke_after else "revoked after its grace"
        )
        since = rules.in_use_baseline(token, target.grace, self.ctx.settings.in_use_margin)
        if since is None or not target.hold_revoke_if_used:
            return Finding(INFO, what, f"{used}; {after}")
        if rules.still_in_use(info, since, revoke_anyway=False) is not None:
            return Finding(
                WARN,
                what,
                f"{used}, after it was retired: its revoke would be held"
                f" (`rotator rotate {target.name} --revoke-anyway` once nothing needs it)",
            )
        return Finding(
            INFO, what, f"{used}{', not since it was retired' if info.last_used_at else ''}; {after}"
        )

    # -- reads, each once ------------------------------------------------------------------------
    def _token(
        self, what: str, target: RotationSpec, owner: Owner | None, token: TokenRecord
    ) -> TokenInfo | Finding | None:
        """The token as its owner's GitLab route describes it, or the finding that says why not asked."""
        if "gitlab" in self.blocked:
            return self._skipped(what, "gitlab")
        if owner is None:
            return Finding(SKIP, what, f"not checked: {shown(target)} could not be read (above)")
        answer = self._ask(lambda: self.ctx.gitlab.get_token(owner, token.token_id))
        return self._failed(what, answer) if isinstance(answer, UpstreamError) else answer

    def _connection(self, connection_id: str) -> Connection | UpstreamError:
        if connection_id not in self._connections:
            self._connections[connection_id] = self._ask(
                lambda: self.ctx.infisical.get_connection(connection_id)
            )
        return self._connections[connection_id]

    @staticmethod
    def _ask(call: Callable[[], T]) -> T | UpstreamError:
        try:
            return call()
        except UpstreamError as error:
            return error

    def _failed(self, what: str, error: UpstreamError, key: str | None = None) -> Finding:
        reason = self.blocking(error)
        if reason is not None:
            self.blocked.setdefault(error.upstream, reason)
        status = error.status if error.status is not None else "no response"
        return Finding(PROBLEM, what, f"{status}: {error.message}", error=error, key=key)

    def _skipped(self, what: str, upstream: str) -> Finding:
        return Finding(SKIP, what, f"not checked: {self.blocked[upstream]}")


def drift_finding(  # noqa: PLR0913 - the connection, and what the journal says a run would judge it by
    what: str,
    name: str,
    conn: Connection,
    state: TargetState | None,
    tokens: Sequence[TokenRecord],
    *,
    foreseen: Foreseen = A_ROTATION,
    unfinished: RotationRecord | None = None,
) -> Finding:
    """The connection's hash judged as the next run that reads it would judge it (rule 1).

    ``foreseen`` is :func:`~rotator.engine.foresee.next_check`'s answer (by default: a
    rotation's); no check (no run will read it) is judged as a rotation would be: the next one,
    forced or due, reads it.
    """
    check, take_over = foreseen.check, foreseen.take_over
    hint = f"`rotator rotate {name} --take-over`"
    # A freeze ends only with a verified push: a take-over run that rotates (or resumes a push)
    # may end it; one that only revokes, or does nothing, leaves the target frozen.
    if state is not None and state.drift_since is not None and not (take_over and check in PUSHES):
        return _frozen_finding(what, conn.credentials_hash, state, hint)
    if check is Check.REREAD and unfinished is not None:
        return _pushed_finding(what, conn.credentials_hash, unfinished, hint, take_over=take_over)
    verified = state.verified_hash if state else None
    if check is Check.REVOKE:
        return _revoke_finding(what, conn.credentials_hash, verified, hint)
    if verified is None:
        observed = short_hash(conn.credentials_hash)
        return Finding(INFO, what, f"holds {observed}; no push verified yet (the first rotation replaces it)")
    possibly_held = any(t.role is Role.POSSIBLY_HELD for t in tokens)
    gate = rules.before_push(
        verified, conn.credentials_hash, possibly_held=possibly_held, take_over=take_over
    )
    return _push_finding(what, gate, conn.credentials_hash, verified, hint)


def _push_finding(what: str, gate: rules.Gate, observed: str, verified: str, hint: str) -> Finding:
    """Before a push: another hash is drift, unless a lost PATCH (or a take-over) explains it."""
    seen, ours = short_hash(observed), short_hash(verified)
    if gate is rules.Gate.CLEAR:
        return Finding(OK, what, f"holds our verified push {seen}")
    if gate is rules.Gate.CHANGED:
        return Finding(
            WARN,
            what,
            f"holds {seen}, not our verified push {ours}: a push whose outcome was lost may have landed;"
            " the next rotation pushes and verifies",
        )
    return Finding(
        DRIFT,
        what,
        f"drift: holds {seen}, not our verified push {ours}: someone else wrote it; a run would"
        f" freeze the target (nothing created or revoked) until {hint}",
    )


def _revoke_finding(what: str, observed: str, verified: str | None, hint: str) -> Finding:
    """Before revokes alone: only the verified push lets them go (``retire.revoke_pending``)."""
    seen, ours = short_hash(observed), short_hash(verified)
    if rules.holds_our_push(verified, observed):
        return Finding(OK, what, f"holds our verified push {seen}")
    return Finding(
        DRIFT,
        what,
        f"drift: holds {seen}, not our verified push {ours}: someone else wrote it (the next run's"
        " revokes accept only our verified push, whatever push was lost); a run would freeze the"
        f" target (nothing created or revoked) until {hint}",
    )


def _frozen_finding(what: str, observed: str, state: TargetState, hint: str) -> Finding:
    """A frozen target stays drift until a take-over, whatever the connection holds now."""
    since = stamp(state.drift_since) if state.drift_since else "?"
    if observed == state.verified_hash:
        return Finding(
            DRIFT,
            what,
            f"drift: frozen since {since}; the connection holds our push {short_hash(observed)} again;"
            f" nothing is created or revoked until {hint} resumes it",
        )
    return Finding(
        DRIFT,
        what,
        f"drift: holds {short_hash(observed)}, not our verified push {short_hash(state.verified_hash)}"
        f" (frozen since {since}); nothing is created or revoked until {hint}",
    )


def _pushed_finding(
    what: str, observed: str, rotation: RotationRecord, take_over_hint: str, *, take_over: bool
) -> Finding:
    """A rotation stopped at PUSHED: the next run resumes it by re-reading (``rules.reread_proves``)."""
    ours, pre, seen = short_hash(rotation.patch_hash), short_hash(rotation.pre_hash), short_hash(observed)
    if observed == rotation.patch_hash:
        return Finding(
            OK, what, f"holds our PATCH {ours} (a rotation stopped at PUSHED): the next run verifies it"
        )
    if observed == rotation.pre_hash:
        return Finding(
            WARN,
            what,
            f"holds the pre-PATCH hash {pre}, not our PATCH {ours} (a rotation stopped at PUSHED):"
            " a lagging replica, or the PATCH was undone; the next run re-reads it, and fails (without"
            " freezing) if it still shows",
        )
    if take_over:
        return Finding(
            WARN,
            what,
            f"holds {seen}, neither our PATCH {ours} nor the pre-PATCH hash {pre}: taken over, our push"
            " counts as overwritten; a fresh rotation pushes and verifies",
        )
    return Finding(
        DRIFT,
        what,
        f"drift: holds {seen}, neither our PATCH {ours} nor the pre-PATCH hash {pre} (a rotation stopped"
        " at PUSHED): someone else wrote it; the next run re-reads it and would freeze the target"
        f" (nothing created or revoked) until {take_over_hint}",
    )


def _gone(info: TokenInfo | None) -> str:
    """How GitLab shows a token that is not active: not found, or its revoked and active flags."""
    return "not found" if info is None else f"revoked={info.revoked} active={info.active}"


def _expiry(info: TokenInfo, now: datetime) -> str:
    if info.expires_at is None:
        return "never expires"
    return f"expires {info.expires_at} ({in_days(expiry_instant(info.expires_at) - now)})"
