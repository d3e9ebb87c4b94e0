"""A look upstream that changes nothing: what ``plan``, ``run-once --dry-run`` and ``status --live`` show.

The journal says what rotator did; only GitLab and Infisical say what holds now. Per target, with
reads alone (``GET``s, and Infisical's login, which writes nothing a run depends on):

* the manager token works and may do rotator's work: it is active with the ``api`` scope (asked
  once, ``GET /personal_access_tokens/self``), and its role on the target's project is Maintainer
  or above (the same judgements as ``check``: :mod:`rotator.engine.checks`);
* the connection as Infisical holds it now: its shape (rule 5), and its ``credentialsHash``
  against the journal's last verified push, judged as a run would before a push (rule 1):
  another hash is **drift**, unless a push whose outcome was lost may explain it;
* the current token is still active on GitLab;
* each pending revoke's ``last_used_at``, and whether rule 2 would hold its revoke.

No create, no PATCH, no DELETE is ever sent from here, and the journal is only read. Each finding
is a :class:`Finding` whose level is one of ``check``'s words (``ok``, ``info``, ``warn``,
``PROBLEM``, ``skip``) or ``DRIFT``; a failed call keeps its :class:`UpstreamError` so the door
that prints it can say which variable or config key to fix. Once an upstream refused rotator's
credential or did not answer, its later items are skipped with one line pointing back, as in
``check`` (and a refused Universal Auth login is never sent again: three lock the identity).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from rotator.core import rules
from rotator.core.durations import in_days, stamp
from rotator.core.errors import ConnectionNotFoundError, UpstreamError
from rotator.core.model import Connection, Role, TargetKey, TargetState, TokenInfo, TokenRecord, short_hash
from rotator.core.schedule import expiry_instant
from rotator.core.spec import RotationSpec
from rotator.engine.checks import access_problem, check_connection, manager_problem
from rotator.engine.context import Context


OK, INFO, WARN, PROBLEM, DRIFT, SKIP = "ok", "info", "warn", "PROBLEM", "DRIFT", "skip"
#: The levels that make a target fail (exit 1).
FAILING = frozenset({PROBLEM, DRIFT})
T = TypeVar("T")
#: GitLab's names for the roles that may manage access tokens.
_ROLES = {40: "maintainer", 50: "owner"}


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


# -- the one place that says what a target's tokens belong to ------------------------------------
def owner_words(target: RotationSpec, project_id: int | None) -> str:
    """What the target's tokens belong to, as the look names it: ``project acme/app (42)``."""
    if project_id is None or project_id == target.project:
        return f"project {target.project}"
    return f"project {target.project} ({project_id})"


@dataclass
class Look:
    """One look over some targets; it remembers what it read, and which upstream refused us.

    ``blocking(error)`` says why later items on the error's upstream are not asked (a refused
    credential, no answer), or ``None``: the door's wording, so the engine names no variable.
    """

    ctx: Context
    blocking: Callable[[UpstreamError], str | None]
    blocked: dict[str, str] = field(default_factory=dict)
    #: Connections read so far, by id: the credentials item's read serves its target too.
    _connections: dict[str, Connection | UpstreamError] = field(default_factory=dict)
    _manager: TokenInfo | UpstreamError | None = None

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
        self, target: RotationSpec, key: TargetKey | None, index: int, state: TargetState | None
    ) -> TargetLook:
        """Everything the look asks about ``target`` (``index`` is its place in the config)."""
        tokens = self.ctx.journal.tokens(key) if key else []
        found: list[Finding] = []
        project_id = self._project(target, key, found)
        found.append(self._connection_finding(target, index, state, tokens))
        found += [self._current(target, project_id, t) for t in tokens if t.role is Role.CURRENT]
        found += [self._pending(target, project_id, t) for t in tokens if t.role is Role.PENDING_REVOKE]
        return TargetLook(target.name, tuple(found))

    def _project(self, target: RotationSpec, key: TargetKey | None, found: list[Finding]) -> int | None:
        """The project's id (resolved, not remembered: the journal is only read) and the manager's role."""
        project_id = key.project_id if key else None
        what = owner_words(target, project_id)
        if "gitlab" in self.blocked:
            found.append(self._skipped(what, "gitlab"))
            return project_id
        try:
            if project_id is None:
                project_id = self.ctx.gitlab.project_id(target.project)
                what = owner_words(target, project_id)
            level = self.ctx.gitlab.manager_access_level(project_id)
        except UpstreamError as error:
            found.append(self._failed(what, error))
            return None
        problem = access_problem(level)
        text = (
            problem
            or f"the manager is {_ROLES.get(level or 0, level)} ({level}): may create and revoke tokens"
        )
        found.append(Finding(PROBLEM if problem else OK, what, text))
        return project_id

    def _connection_finding(
        self, target: RotationSpec, index: int, state: TargetState | None, tokens: list[TokenRecord]
    ) -> Finding:
        what = f"connection {target.connection_id}"
        config_key = f"targets[{index}].connection_id: {target.connection_id}"
        if "infisical" in self.blocked:
            return self._skipped(what, "infisical")
        read = self._connection(target.connection_id)
        if isinstance(read, UpstreamError):
            return self._failed(what, read, config_key)
        shape = check_connection(read, self.ctx.gitlab_url)
        if shape is not None:
            return Finding(PROBLEM, what, shape, key=config_key)
        return drift_finding(what, target.name, read, state, tokens)

    def _current(self, target: RotationSpec, project_id: int | None, token: TokenRecord) -> Finding:
        what = f"current token {token.token_id}"
        info = self._token(what, project_id, token)
        if isinstance(info, Finding):
            return info
        if info is None or not info.active:
            state = "not found" if info is None else f"revoked={info.revoked} active={info.active}"
            return Finding(
                PROBLEM,
                what,
                f"GitLab says {state}: the connection may hold a dead token;"
                f" `rotator rotate {target.name}` replaces it",
            )
        return Finding(OK, what, f"active on GitLab; {_expiry(info, self.ctx.clock())}")

    def _pending(self, target: RotationSpec, project_id: int | None, token: TokenRecord) -> Finding:
        what = f"pending revoke {token.token_id}"
        info = self._token(what, project_id, token)
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
    def _token(self, what: str, project_id: int | None, token: TokenRecord) -> TokenInfo | Finding | None:
        """The token as GitLab describes it, or the finding that says why it was not asked."""
        if "gitlab" in self.blocked:
            return self._skipped(what, "gitlab")
        if project_id is None:
            return Finding(SKIP, what, "not checked: the project could not be read (above)")
        answer = self._ask(lambda: self.ctx.gitlab.get_token(project_id, token.token_id))
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


def drift_finding(
    what: str, name: str, conn: Connection, state: TargetState | None, tokens: list[TokenRecord]
) -> Finding:
    """The connection's hash against the journal's last verified push, judged as a run would (rule 1)."""
    observed = short_hash(conn.credentials_hash)
    verified = state.verified_hash if state else None
    take_over = f"`rotator rotate {name} --take-over`"
    if state is not None and state.drift_since is not None and conn.credentials_hash != verified:
        return Finding(
            DRIFT,
            what,
            f"drift: holds {observed}, not our verified push {short_hash(verified)} (frozen since"
            f" {stamp(state.drift_since)}); nothing is created or revoked until {take_over}",
        )
    possibly_held = any(t.role is Role.POSSIBLY_HELD for t in tokens)
    gate = rules.before_push(verified, conn.credentials_hash, possibly_held=possibly_held, take_over=False)
    if verified is None:
        return Finding(INFO, what, f"holds {observed}; no push verified yet (the first rotation replaces it)")
    if gate is rules.Gate.CLEAR:
        return Finding(OK, what, f"holds our verified push {observed}")
    if gate is rules.Gate.CHANGED:
        return Finding(
            WARN,
            what,
            f"holds {observed}, not our verified push {short_hash(verified)}: a push whose outcome was"
            " lost may have landed; the next rotation pushes and verifies",
        )
    return Finding(
        DRIFT,
        what,
        f"drift: holds {observed}, not our verified push {short_hash(verified)}: someone else wrote it;"
        f" a run would freeze the target (nothing created or revoked) until {take_over}",
    )


def _expiry(info: TokenInfo, now: datetime) -> str:
    if info.expires_at is None:
        return "never expires"
    return f"expires {info.expires_at} ({in_days(expiry_instant(info.expires_at) - now)})"
