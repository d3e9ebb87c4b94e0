"""What the engine is told to do: a frozen spec per target, and the engine-wide settings.

The engine never sees the configuration file's model (pydantic, defaults merged, validated, with
every error naming its key): :mod:`rotator.doors.config` builds these values from it, once, and the
engine reads only them. A target the config no longer names, but whose journal key still holds
something, is run as a :class:`RotationSpec` with ``removed=True`` (built from the journal's record
by :mod:`rotator.engine.removed`): revoke-only, never due, never created for. The engine tells it
by that flag, never by its name.
"""

from dataclasses import dataclass
from datetime import timedelta

from rotator.core.model import Kind


@dataclass(frozen=True, slots=True)
class TokenShape:
    """What each new token looks like (``token:`` of a target)."""

    scopes: tuple[str, ...]
    access_level: int
    lifetime: timedelta


@dataclass(frozen=True, slots=True)
class RotationSpec:
    """One target as the engine needs it."""

    #: The name in reports, alerts, logs and the journal (``NAME (removed)`` for a removed one).
    name: str
    #: The owner's numeric id, or its path resolved (and cached) at the first run: a project
    #: (``group/project``) or a group (``group/sub``) by ``kind``; a service account's user id.
    project: int | str
    #: The Infisical app connection's id, as text (the journal key's form).
    connection_id: str
    token: TokenShape
    #: The base of each new token's name (``token.name``, else the target's name).
    token_base_name: str
    #: ``rotate_before``, its default (a third of the lifetime) already applied.
    renew_before: timedelta
    grace: timedelta
    rotate_every: timedelta | None = None
    #: A 5-field cron expression in UTC, already checked.
    schedule: str | None = None
    adopt_token_id: int | None = None
    hold_revoke_if_used: bool = True
    #: A journal key the config no longer names: revoke-only, run from the journal's record.
    removed: bool = False
    #: Whose tokens: ``project`` names a project, a group or a service account user by this.
    kind: Kind = Kind.PROJECT
    #: A service account's group or project (id or path); ``None``: an instance service account.
    via: tuple[Kind, int | str] | None = None


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """The engine-wide settings, and the configured targets in the config's order."""

    gitlab_url: str
    targets: tuple[RotationSpec, ...]
    max_concurrent_rotations: int = 4
