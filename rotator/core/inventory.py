"""The inventory's vocabulary: every active token in a scope, and who owns it. Core: standard library only.

rotator manages the tokens its targets own; the inventory also shows the ones nobody does: a
connection's hand-made token left out of ``adopt_token_id``, a hundred project tokens expiring on
the same day. This module holds what the reading code (``rotator.engine.inventory``), the
``rotator inventory`` command and the daemon's expiry watch share: the rows, the ownership rule,
the days left, and which tokens an ``unmanaged_expiring`` digest names. It reads nothing itself.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from rotator.core.model import OWNED_ROLES, Kind, Origin, Role, TargetKey, TokenInfo, TokenRecord
from rotator.core.schedule import expiry_instant


#: The owner a token no target manages is reported as (the metrics' ``owner`` label): no target may
#: be named so, or its tokens would read as nobody's and raise the unmanaged-expiry alert.
UNMANAGED = "unmanaged"


class TokenKind(StrEnum):
    """Which GitLab API a token lives under."""

    PROJECT = "project_access_token"
    GROUP = "group_access_token"
    PERSONAL = "personal_access_token"  # a service account's


@dataclass(frozen=True, slots=True)
class Scope:
    """One configured scope the inventory lists: a target's owner, or a ``watch:`` group or project.

    ``label`` is how reports name it, the config's value as written (id or path):
    ``project:acme/app``, ``group:acme``, ``service_account:9@group:acme``, ``service_account:9``
    (an instance service account). ``kind`` and ``ref`` say whose tokens (a project's or group's
    id or path, a service account's user id), ``via`` a service account's group or project.
    """

    label: str
    kind: Kind
    ref: int | str
    via: tuple[Kind, int | str] | None = None
    #: A watched group: besides its own group access tokens, its service accounts' tokens and its
    #: projects' tokens; with ``include_subgroups`` its subgroups' (at any depth) too.
    whole_group: bool = False
    include_subgroups: bool = True


def scope_label(kind: Kind, ref: int | str, via: tuple[Kind, int | str] | None = None) -> str:
    """``project:acme/app``, ``group:7``, ``service_account:9@group:acme``: a scope's label."""
    label = f"{kind.value}:{ref}"
    return label if via is None else f"{label}@{via[0].value}:{via[1]}"


@dataclass(frozen=True, slots=True)
class Managed:
    """The target that owns a token (architecture §6: one token, one owner), and in which role."""

    target: str
    role: Role
    adopted: bool  # it came from the target's ``adopt_token_id``, not from a rotation
    #: The target is no longer configured (a removed key, as ``rotator status`` lists it).
    removed: bool = False

    @property
    def unattended(self) -> bool:
        """Nobody will rotate or revoke it: a removed target's token the connection may hold.

        The removed-target sweep revokes a removed key's pending revokes and unpushed candidates,
        but leaves the token its connection may hold (current, possibly held) until a configured
        target pushes over it: for the expiry watch, such a token is as unmanaged as a hand-made one.
        """
        return self.removed and self.role in {Role.CURRENT, Role.POSSIBLY_HELD}


@dataclass(frozen=True, slots=True)
class Listed:
    """One active token as the inventory lists it (never its value: GitLab does not list it)."""

    scope: str  # the configured scope that listed it: ``project:acme/app``, ``group:acme``, ...
    kind: TokenKind
    holder: str  # where GitLab keeps it, in words: ``project acme/app``, ``service account 9 (of group 7)``
    info: TokenInfo
    managed: Managed | None  # ``None``: no target owns it

    @property
    def unmanaged(self) -> bool:
        """No configured target manages it: no owner, or a removed target's :attr:`Managed.unattended` one."""
        return self.managed is None or self.managed.unattended

    def days_left(self, now: datetime) -> int | None:
        """Whole days until it dies, as ``rotator status`` counts them (:func:`days_left`)."""
        return days_left(self.info.expires_at, now)


@dataclass(frozen=True, slots=True)
class ScopeReport:
    """What one configured scope lists: its active tokens, or the one-line reason it could not."""

    scope: str
    tokens: tuple[Listed, ...] = ()
    #: Why listing failed (target-free, value-free: route and status), ``None`` when it did not.
    #: A scope that fails part-way keeps what it listed: the owners it could read.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every scope's report, in the configured order (targets' scopes first, then ``watch:``)."""

    at: datetime
    scopes: tuple[ScopeReport, ...]

    @property
    def failed(self) -> tuple[ScopeReport, ...]:
        """The scopes that could not be listed whole (``rotator inventory`` then exits 1)."""
        return tuple(s for s in self.scopes if s.error is not None)

    def tokens(self) -> list[Listed]:
        """Every listed token, scope by scope."""
        return [t for s in self.scopes for t in s.tokens]


def days_left(expires_at: date | None, now: datetime) -> int | None:
    """Whole days until 00:00 UTC on ``expires_at``, rounded down: 0 is less than a day, negative is past."""
    return None if expires_at is None else (expiry_instant(expires_at) - now).days


def owners_of(
    records: Iterable[tuple[str, TokenRecord]], removed: Collection[TargetKey] = ()
) -> dict[int, Managed]:
    """Token id to its owning target, from the journal's (target name, record) pairs.

    Only the roles in which a token is a target's live responsibility count: a token the
    journal recorded as revoked or abandoned but that GitLab still lists active is nobody's.
    A record under one of the ``removed`` keys (no configured target maps to it) is marked so.
    """
    return {
        record.token_id: Managed(
            name, record.role, adopted=record.origin is Origin.ADOPTED, removed=record.key in removed
        )
        for name, record in records
        if record.role in OWNED_ROLES
    }


def expiring_unmanaged(report: ScopeReport, now: datetime, warn_before: timedelta) -> list[Listed]:
    """The scope's unmanaged tokens that die within ``warn_before`` (already past included), soonest first.

    A token without an expiry never expires, so it never warns.
    """
    soon = [
        t
        for t in report.tokens
        if t.unmanaged
        and t.info.expires_at is not None
        and expiry_instant(t.info.expires_at) - now <= warn_before
    ]
    return sorted(soon, key=lambda t: (t.info.expires_at, t.info.id))
