"""The interfaces the engine talks to; adapters and stores implement them. Core: standard library only.

The engine imports these Protocols, never python-gitlab, httpx or sqlite3, so tests can hand it a
store or an adapter pointed at a loopback fake, and a PostgreSQL store can drop in beside SQLite.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from rotator.core.ledger import Reservation
from rotator.core.model import (
    KEPT_REQUESTS,
    Change,
    Connection,
    Lease,
    NewToken,
    Owner,
    Place,
    RotationRecord,
    TargetKey,
    TargetRecords,
    TargetState,
    TokenInfo,
    TokenOwner,
    TokenRecord,
    TokenRequest,
    Tombstone,
    TriggerRequest,
    UnresolvedProject,
)
from rotator.core.secret import Secret


class GitLabPort(Protocol):
    """GitLab, as the manager token sees it. Errors are :class:`rotator.core.errors.GitLabError`.

    Token calls name the tokens' :class:`Owner` (a project's, a group's, a service account's); a
    bare ``int`` is a project id, the form every caller used before target kinds.
    """

    def project_id(self, project: int | str) -> int:
        """The numeric id of a project given by id or ``group/project`` path."""

    def group_id(self, group: int | str) -> int:
        """The numeric id of a group given by id or ``group/sub`` path."""

    def manager_access_level(self, owner: Owner | int) -> int | None:
        """The manager's role where the owner's tokens live (50 for an admin), ``None`` if no member.

        Raises with GitLab's status when that project or group cannot be read.
        """

    def manager_self(self) -> TokenInfo:
        """The manager token itself (``GET /personal_access_tokens/self``)."""

    def list_tokens(self, owner: Owner | int) -> list[TokenInfo]:
        """Every token of the owner, all pages, revoked ones included."""

    def group_projects(self, group: int, *, include_subgroups: bool) -> list[Place]:
        """The group's own projects (not those shared with it), all pages; its subgroups' too if asked."""

    def descendant_groups(self, group: int) -> list[Place]:
        """Every subgroup of the group, at any depth, that the manager can see; all pages."""

    def group_service_accounts(self, group: int) -> list[int]:
        """The user ids of the service accounts the group provisioned, all pages."""

    def get_token(self, owner: Owner | int, token_id: int) -> TokenInfo | None:
        """One token of that owner, or ``None`` when GitLab does not know it there (404)."""

    def create_token(self, owner: Owner | int, request: TokenRequest) -> NewToken:
        """Create a token; never retried on 5xx or timeout (only 429, which GitLab refused)."""

    def token_self(self, value: Secret) -> TokenInfo:
        """Authenticate with ``value`` and describe it (``GET /personal_access_tokens/self``)."""

    def delete_token(self, owner: Owner | int, token_id: int) -> None:
        """Revoke a token (204); other answers raise with their status for the engine to judge."""


class InfisicalPort(Protocol):
    """Infisical's GitLab app connections. Errors are :class:`rotator.core.errors.InfisicalError`."""

    def get_connection(self, connection_id: str) -> Connection:
        """Read a connection (``GET /api/v1/app-connections/gitlab/{id}``)."""

    def push_token(self, connection: Connection, value: Secret) -> str:
        """PATCH the full credentials with a new token; return the new ``credentialsHash``.

        Raises :class:`rotator.core.errors.InfisicalError` whose ``not_applied`` is true only when
        no attempt had an unknown outcome and the last answer was a refusal before storage.
        """

    def access_token_expiry(self) -> datetime | None:
        """When the Infisical access token in use expires (``None``: never, or unknown)."""


class CallLedger(Protocol):
    """What the replicas sharing a journal count together: upstream calls, and periodic jobs' turns.

    Every store implements it on its own clock (PostgreSQL: the database's; SQLite: the machine's
    wall clock; memory: in-process), deciding with :mod:`rotator.core.ledger`. A store that cannot
    answer raises (:class:`rotator.core.errors.JournalUnavailableError` when its database cannot
    be reached); the caller must then send nothing.
    """

    def take(self, bucket: str, per_minute: int) -> float:
        """Count one call in ``bucket``'s 60 s window if it fits and return 0.0; else wait this long.

        At most ``per_minute`` calls are counted in any 60-second window, by every caller of the
        store together. When the call does not fit, nothing is counted and the answer is the
        seconds until one more would (ask again then: another caller may have taken it): at most
        61, as calls are counted per whole second (:func:`rotator.core.ledger.admit`).
        """

    def reserve(self, bucket: str, per_minute: int, calls: int) -> Reservation:
        """:meth:`take` for up to ``calls`` calls at once: as many as fit are counted, in one take.

        Every call counted must be made before ``left`` seconds have passed (the second it was
        counted in ends), or never: then it still counts (:func:`rotator.core.ledger.reserve`).
        """

    def claim(self, job: str, every: timedelta) -> bool:
        """True for exactly one caller per ``every`` (a fleet-wide periodic job's turn), else False."""


class Requests(Protocol):
    """HTTP trigger requests, kept so that any replica answers for one and one replica carries it out.

    A request is claimed by one replica at a time, until its claim lapses; the claim's time is
    judged like a lease's (the caller's ``now``, or the database's clock for a shared journal).
    Writes are not fenced by a target's lease: a request is not a target's record, and a replica
    records a request's progress only while its claim (replica and claim number) is current.
    """

    def add_request(
        self, request: TriggerRequest, now: datetime, ttl: timedelta, keep: int = KEPT_REQUESTS
    ) -> TriggerRequest:
        """Record a new request, as kept: if open, claimed by ``request.replica`` until ``now + ttl``.

        Its claim number starts at 1 (0, with no replica, for one recorded already ended). An id
        already recorded is left as it is, and returned. Ended requests beyond the newest ``keep``
        (by request time) are pruned; an open one never is.
        """

    def request(self, request_id: str) -> TriggerRequest | None:
        """A request by id, or ``None`` (unknown, or pruned)."""

    def update_request(self, request: TriggerRequest) -> bool:
        """Record ``request``'s progress if its claim (replica, claim number) is still current.

        The claim columns are not changed. False, having changed nothing, if another replica has
        claimed it since or it has ended.
        """

    def renew_claims(self, replica: str, now: datetime, ttl: timedelta) -> int:
        """Extend every open request ``replica`` claims to ``now + ttl``; how many."""

    def lapsed_requests(self, now: datetime, limit: int) -> list[TriggerRequest]:
        """Open requests whose claim has lapsed (or that none holds), oldest first."""

    def claim_request(
        self, request_id: str, replica: str, now: datetime, ttl: timedelta
    ) -> TriggerRequest | None:
        """Claim an open request whose claim has lapsed; ``None`` if it is live, ended, or unknown.

        One conditional update: of replicas racing for one request, exactly one wins.
        """

    def request_rotations(self, request_id: str) -> list[RotationRecord]:
        """The rotations recorded as planned by the request, oldest first."""


class Journal(CallLedger, Requests, Protocol):
    """The durable record of rotations, tokens and targets; every write is fenced by a lease."""

    def acquire(self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """Take the target's lease if it is free or expired; ``None`` if someone else holds it."""

    def acquire_reading(
        self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta
    ) -> tuple[Lease, TargetRecords] | None:
        """:meth:`acquire`, and if taken, the target's :meth:`records` as they stand once it is.

        The read sees every write committed before the lease was taken (a lapsed holder's last
        one included): it is made after the acquisition, never from a snapshot taken before it.
        One round trip on a database where the two would be two.
        """

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        """Extend a lease still held; raise :class:`rotator.core.errors.LeaseLostError` otherwise."""

    def release(self, lease: Lease) -> None:
        """Give the lease up (no-op if already lost)."""

    def write(self, lease: Lease, change: Change) -> Change:
        """Record ``change`` atomically, if ``lease`` is still the current one; else LeaseLostError.

        Answers ``change`` as stored: each record as a later read gives it back (free text
        redacted, times as the store decodes them), so a caller may keep it instead of reading.
        """

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        """:meth:`write` and :meth:`renew` at once, atomically: recorded and renewed, or neither.

        The lease check is the write's (holder and fence, as both do); the new expiry is the
        store's lease clock (the database's, for a shared journal) plus ``ttl``, as :meth:`renew`
        answers it. One round trip on a database where the two would be two.
        """

    def target(self, key: TargetKey) -> TargetState | None:
        """A target's bookkeeping, or ``None`` if the journal has never seen it."""

    def targets(self) -> list[TargetState]:
        """Every target the journal knows, including ones removed from the config."""

    def tokens(self, key: TargetKey) -> list[TokenRecord]:
        """The tokens tracked for a target, oldest first."""

    def owners(self, gitlab_url: str, token_id: int) -> list[TokenOwner]:
        """Every target (any key on that GitLab) that tracks ``token_id``, in any role.

        Token ids are per GitLab instance, so only keys of ``gitlab_url`` count.
        """

    def rotations(self, key: TargetKey | None = None, limit: int = 20) -> list[RotationRecord]:
        """Rotations, newest first, of one target or all."""

    def rotations_of(self, recorded: Collection[tuple[TargetKey, str]], limit: int) -> list[RotationRecord]:
        """Rotations recorded under any of the (key, target name) pairs, newest first, at most ``limit``."""

    def recorded_names(self) -> list[tuple[TargetKey, str]]:
        """Every (key, target name) pair a rotation was recorded under: a removed target's too."""

    def unfinished(self, key: TargetKey) -> RotationRecord | None:
        """The target's rotation still ``in_progress``, if any."""

    def last_rotation(self, key: TargetKey, triggers: Collection[str]) -> RotationRecord | None:
        """The target's newest rotation (by planned time) whose ``trigger`` is one of ``triggers``."""

    def tombstones(self, key: TargetKey) -> list[Tombstone]:
        """Names still to re-check for a late create."""

    def records(self, key: TargetKey) -> TargetRecords:
        """The target, its tokens, its unfinished rotation and its tombstones, in one read.

        The same answers as :meth:`target`, :meth:`tokens`, :meth:`unfinished` and
        :meth:`tombstones` (one round trip on a database, one consistent view of the four).
        """

    def forget(self, lease: Lease, note: str) -> None:
        """Drop the lease's key: its target state, tokens and tombstones (``rotator forget``).

        Its rotations stay, as the audit trail; one still ``in_progress`` is closed as ``failed``
        with ``note``, so a target later configured on the same key does not resume it.
        LeaseLostError if the lease is no longer the key's current one.
        """

    def project_id(self, gitlab_url: str, project: str) -> int | None:
        """A project path's numeric id as resolved before, so idle runs need no upstream call."""

    def project_ids(self, gitlab_url: str) -> dict[str, int]:
        """Every path of that GitLab resolved before, with its id: a process's cache filled in one read."""

    def remember_project(self, gitlab_url: str, project: str, project_id: int) -> None:
        """Record a resolved project path, and drop the path's :meth:`unresolved` record (it resolves now)."""

    def unresolved(self, gitlab_url: str, project: str) -> UnresolvedProject | None:
        """The failure to resolve a project path, recorded since it last resolved; else ``None``."""

    def record_unresolved(self, record: UnresolvedProject) -> None:
        """Record a failure to resolve ``record.project`` (no lease: a target without a key has none)."""

    def writable(self) -> bool:
        """Whether the store would accept a write now, asked without writing (the daemon's probe).

        Raises as a read does when the store cannot be reached or is damaged.
        """

    def close(self) -> None:
        """Release the store."""


def holders(records: Sequence[TokenRecord], *roles: str) -> list[TokenRecord]:
    """The records whose role is one of ``roles``."""
    return [r for r in records if r.role in roles]


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator must hear about: a failed rotation, drift, a token running out.

    ``reason`` is one of :data:`rotator.engine.alerts.ALERT_REASONS`; ``message`` is one line already free
    of token values (it names target, step, upstream, route and status where there is one).
    """

    target: str
    reason: str
    message: str
    at: datetime
    step: str = "prepare"
    expires_at: date | None = None  # the current token's expiry, when it is inside rotate_before


class Observer(Protocol):
    """What the engine reports as it goes: metrics and notifications listen here.

    Implementations must be quick and must never raise: the engine calls them from its worker
    threads, in the middle of a rotation.
    """

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """A rotation closed with ``outcome`` (an :class:`rotator.core.model.Outcome` value)."""

    def alert(self, alert: Alert) -> None:
        """An alert was raised."""

    def recorded(self, target: str, change: Change) -> None:
        """A journal write for ``target`` succeeded (a step reached, a token's role changed)."""


class NoObserver:
    """The observer of a run nobody watches."""

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """Ignore it."""

    def alert(self, alert: Alert) -> None:
        """Ignore it."""

    def recorded(self, target: str, change: Change) -> None:
        """Ignore it."""


@dataclass(frozen=True, slots=True)
class Observers:
    """Several observers as one (metrics and the webhook, in the daemon)."""

    members: tuple[Observer, ...]

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """Tell every member."""
        for member in self.members:
            member.rotation_finished(target, outcome, seconds)

    def alert(self, alert: Alert) -> None:
        """Tell every member."""
        for member in self.members:
            member.alert(alert)

    def recorded(self, target: str, change: Change) -> None:
        """Tell every member."""
        for member in self.members:
            member.recorded(target, change)
