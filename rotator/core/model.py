"""The values rotator reasons about: tokens, connections, journal records. Core: standard library only.

Everything here is a frozen, slotted dataclass or a string enum, so records can be compared,
copied with :func:`dataclasses.replace` and stored without surprises. No field ever holds a token
value except :attr:`NewToken.value`, a :class:`~rotator.core.secret.Secret`, which never reaches the
journal.
"""

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from urllib.parse import urlsplit

from rotator.core.secret import Secret


#: Hash prefixes shown in logs, status and history (architecture §5).
HASH_PREFIX = 12


def short_hash(value: str | None) -> str | None:
    """The 12-character prefix of a ``credentialsHash``, or ``None``."""
    return value[:HASH_PREFIX] if value else None


class Step(StrEnum):
    """The last step a rotation recorded; see ``architecture.md`` §1."""

    PLANNED = "PLANNED"
    CREATED = "CREATED"
    PUSHING = "PUSHING"
    PUSHED = "PUSHED"
    VERIFIED = "VERIFIED"


class Outcome(StrEnum):
    """How a rotation ended; also the metric label values."""

    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    DRIFT = "drift"


class Role(StrEnum):
    """What a token we track is to its target."""

    CANDIDATE = "candidate"  # created by a running rotation, not yet pushed
    POSSIBLY_HELD = "possibly_held"  # pushed with an unknown outcome
    CURRENT = "current"  # held by the connection, as far as the journal knows
    PENDING_REVOKE = "pending_revoke"  # retired; revoked once its grace has passed
    REVOKED = "revoked"
    ABANDONED = "abandoned"  # never revoked: it expired while the manager had no access to its project


#: Roles in which a token is someone's live responsibility: never adopted or revoked by another target.
OWNED_ROLES = frozenset({Role.CANDIDATE, Role.POSSIBLY_HELD, Role.CURRENT, Role.PENDING_REVOKE})


class Origin(StrEnum):
    """Where a tracked token came from."""

    CREATED = "created"
    ADOPTED = "adopted"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A project access token as GitLab describes it (never its value)."""

    id: int
    name: str
    active: bool
    revoked: bool
    expires_at: date | None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    access_level: int | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """A project or a group as GitLab lists it: its id and full path (``acme/app``, ``acme/sub``)."""

    id: int
    path: str


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: its description and, in memory only, its value."""

    info: TokenInfo
    value: Secret


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What to ask GitLab for when creating a token."""

    name: str
    scopes: tuple[str, ...]
    access_level: int
    expires_at: date
    #: Who manages the token (:func:`rotator.core.description.token_description`); ``None``: none sent.
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    """An Infisical GitLab app connection as read (the response never carries the token)."""

    id: str
    name: str
    app: str
    method: str
    instance_url: str | None  # exactly as stored; None means https://gitlab.com
    access_token_type: str | None
    credentials_hash: str


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_instance(recorded: str, configured: str) -> bool:
    """Whether two GitLab URLs name one instance: scheme, host, port and path, trailing slash ignored.

    Token ids are unique per instance, so this decides whether two journal keys can name the same
    token (host case and a default port written out do not make another instance).
    """
    return _where(recorded) == _where(configured)


def _where(url: str) -> tuple[str, str | None, int | None, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or _DEFAULT_PORTS.get(scheme), parts.path.rstrip("/")


class Kind(StrEnum):
    """Whose tokens a target rotates (architecture §9): a config key of its own each."""

    PROJECT = "project"  # project access tokens
    GROUP = "group"  # group access tokens
    SERVICE_ACCOUNT = "service_account"  # a service account's personal access tokens


@dataclass(frozen=True, slots=True)
class Owner:
    """The owner of the tokens a target rotates, by numeric ids: where GitLab lists them.

    A service account's tokens are reached through the group or project that provisioned it
    (``via``), or, for an instance service account (``via`` ``None``), through the personal access
    token API, which needs an admin.
    """

    kind: Kind
    id: int  # the project's, the group's, or the service account user's id
    via: Kind | None = None
    via_id: int | None = None

    def __str__(self) -> str:
        """The journal key's middle part: ``42`` (a project, as before kinds), ``group:7``, ...

        A service account's names its user and where it lives: ``service_account:9@group:7``,
        ``service_account:9@project:42``, or ``service_account:9`` (an instance one).
        """
        if self.kind is Kind.PROJECT:
            return str(self.id)
        text = f"{self.kind.value}:{self.id}"
        return text if self.via is None else f"{text}@{self.via.value}:{self.via_id}"

    def describe(self) -> str:
        """In words, for messages: ``project 42``, ``group 7``, ``service account 9 (of group 7)``."""
        if self.kind is not Kind.SERVICE_ACCOUNT:
            return f"{self.kind.value} {self.id}"
        where = f"of {self.via.value} {self.via_id}" if self.via is not None else "of the instance"
        return f"service account {self.id} ({where})"


def as_owner(owner: "Owner | int") -> Owner:
    """``owner``, where a bare int is a project id (the form every caller used before kinds)."""
    return owner if isinstance(owner, Owner) else Owner(Kind.PROJECT, owner)


@dataclass(frozen=True, slots=True)
class TargetKey:
    """What identifies a target in the journal: nothing a rename can change.

    ``project_id`` is the owner's id (kept under its first name: a project key's records and its
    string form are exactly what they were before kinds, so an existing journal needs no rewrite);
    ``kind`` and ``via`` (``"group:7"``, ``"project:42"``, or empty) say whose id it is.
    """

    gitlab_url: str
    project_id: int
    connection_id: str
    kind: str = Kind.PROJECT.value
    via: str = ""

    @property
    def owner(self) -> Owner:
        """The owner this key names."""
        via_kind, _, via_id = self.via.partition(":")
        return Owner(
            Kind(self.kind),
            self.project_id,
            Kind(via_kind) if via_kind else None,
            int(via_id) if via_id else None,
        )

    @classmethod
    def of(cls, gitlab_url: str, owner: Owner, connection_id: str) -> "TargetKey":
        """The key of ``owner``'s target on ``connection_id``."""
        via = f"{owner.via.value}:{owner.via_id}" if owner.via is not None else ""
        return cls(gitlab_url, owner.id, connection_id, owner.kind.value, via)

    def __str__(self) -> str:
        """``url|owner|connection``, the journal's primary key (``url|42|connection`` for a project)."""
        return f"{self.gitlab_url}|{self.owner}|{self.connection_id}"


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to act on one target, until ``expires``; ``fence`` grows with every acquisition."""

    key: TargetKey
    holder: str
    fence: int
    expires: datetime


@dataclass(frozen=True, slots=True)
class RotationRecord:
    """One rotation, as the journal holds it (architecture §4)."""

    id: str
    key: TargetKey
    target: str
    trigger: str
    actor: str
    step: Step
    outcome: Outcome
    token_name: str
    requested_expiry: date
    planned_at: datetime
    old_token_id: int | None = None
    new_token_id: int | None = None
    expires_at: date | None = None
    created_at: datetime | None = None
    pre_hash: str | None = None
    pushing_at: datetime | None = None
    patch_hash: str | None = None
    pushed_at: datetime | None = None
    reread_hash: str | None = None
    verified_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 1
    error: str | None = None
    #: The HTTP trigger request (:class:`TriggerRequest` id) that planned it, written with PLANNED
    #: under the lease: what keeps a request carried out once when another replica takes it over.
    request: str | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token the journal tracks for a target."""

    key: TargetKey
    token_id: int
    name: str
    origin: Origin
    role: Role
    expires_at: date | None
    rotation_id: str | None = None  # the rotation that created it
    retired_by: str | None = None  # the rotation whose verified push retired it
    retired_at: datetime | None = None  # when that push was verified (the still-in-use baseline)
    push_hash: str | None = None
    revoke_after: datetime | None = None
    revoked_at: datetime | None = None
    evidence: str | None = None
    #: Since when a revoke keeps failing because the manager lost access to the project (no
    #: evidence for the token): it stays tracked, retried every run, until revoked or expired.
    no_access_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """A target the journal tracks a token for (architecture §6: one token, one owner)."""

    key: TargetKey
    target: str  # the target's name as the journal last saw it
    role: Role


@dataclass(frozen=True, slots=True)
class TargetState:
    """Per-target bookkeeping: the latest verified push, drift, backoff, holds."""

    key: TargetKey
    name: str
    verified_hash: str | None = None
    verified_at: datetime | None = None
    verified_start: datetime | None = None
    observed_hash: str | None = None
    observed_at: datetime | None = None
    drift_since: datetime | None = None
    failures: int = 0
    backoff_until: datetime | None = None
    last_error: str | None = None
    hold_since: datetime | None = None
    last_run_at: datetime | None = None
    #: The project's active tokens no target tracked, listed at the last ``--take-over`` (the token a
    #: person wrote into the connection is among them): ``(id, name, expires_at ISO date or None)``.
    untracked: tuple[tuple[int, str, str | None], ...] = ()
    untracked_as_of: datetime | None = None


@dataclass(frozen=True, slots=True)
class UnresolvedProject:
    """A ``group/project`` path GitLab would not resolve to an id, so its targets have no key yet.

    A wrong or expired manager token (401/403), a renamed or deleted project (404), GitLab down:
    the target cannot even start, and without a key there is no :class:`TargetState` to record it
    on. So the failure is kept by path, beside the resolved paths, until the path resolves.
    """

    gitlab_url: str
    project: str
    since: datetime  # the first failure since the path last resolved (or ever)
    at: datetime  # the latest failure
    failures: int  # failures in a row
    status: int | None  # GitLab's HTTP status; None: no response
    error: str  # the one-line message, naming target, step, route and status


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The exact name of a create whose outcome was unknown; re-checked until ``until``."""

    key: TargetKey
    name: str
    until: datetime


@dataclass(frozen=True, slots=True)
class TargetRecords:
    """One target's own records, read together: what its four reads would answer, from one read."""

    target: TargetState | None
    tokens: tuple[TokenRecord, ...]
    unfinished: RotationRecord | None
    tombstones: tuple[Tombstone, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """Everything one journal write records, atomically and under one lease."""

    rotation: RotationRecord | None = None
    tokens: tuple[TokenRecord, ...] = ()
    target: TargetState | None = None
    tombstones: tuple[Tombstone, ...] = ()
    drop_tombstones: tuple[str, ...] = ()


class RequestStatus(StrEnum):
    """Where an HTTP trigger request is (``GET /v1/rotations/{id}`` shows it)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


#: Statuses of a request still to be carried out: its claim is renewed, or taken over once it lapses.
OPEN_REQUESTS = frozenset({RequestStatus.QUEUED, RequestStatus.RUNNING})
#: How many ended (finished or cancelled) requests the journal keeps, newest first; an open one is
#: never pruned.
KEPT_REQUESTS = 1000


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """One ``POST /v1/targets/{name}/rotate``, kept in the journal so any replica answers and finishes it.

    ``replica`` claims it until ``claim_until`` (on the database's clock for a shared journal),
    renewed while it waits and runs; ``claim`` grows with every claim, so a replica whose claim was
    taken over can no longer record its progress. ``rotations`` are the journal rotations that
    served it, as ``(id, outcome, step, new token id)`` when it ended.
    """

    id: str
    target: str
    requested_at: datetime
    status: RequestStatus = RequestStatus.QUEUED
    #: The trigger's arrival on the accepting replica's engine clock: ``min_trigger_interval``'s instant.
    arrived_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None  # done | failed | busy | idle, as the engine reports
    failed: bool | None = None
    detail: str | None = None
    rotations: tuple[tuple[str, str, str, int | None], ...] = ()
    #: Answered with an earlier forced rotation instead of starting one (daemon.min_trigger_interval).
    coalesced: bool = False
    #: For a coalesced answer: from when a trigger of this target starts a rotation again.
    next_trigger_at: datetime | None = None
    replica: str | None = None
    claim: int = 0
    claim_until: datetime | None = None


def claim_lapsed(request: TriggerRequest, now: datetime) -> bool:
    """Whether ``request``'s claim has lapsed by ``now``: a claim is held while ``now < claim_until``."""
    return request.claim_until is None or request.claim_until <= now
