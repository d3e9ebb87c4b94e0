"""The status and history read model: what ``status``, ``history`` and ``/v1/targets`` show, declared once.

Frozen, slotted values built by :mod:`rotator.doors.report` from the journal. The CLI prints them
as a table or as JSON (:func:`as_json`: field order is declaration order, so it is the JSON's key
order too), and the HTTP API (:mod:`rotator.doors.web`) serves and documents the same classes: its
OpenAPI schemas are derived from them, docstrings included. So a field added here appears in
``status --json``, in ``/v1/targets`` and in ``/openapi.json`` at once.

Every class sets ``__pydantic_config__`` (a plain dict: this module imports no pydantic): when the
HTTP API validates a document against these shapes, a field not declared here is refused.
"""

from collections.abc import Collection
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar, cast

from rotator.core.redact import redact


T = TypeVar("T")
#: pydantic's ``ConfigDict(extra="forbid")``, read only when the HTTP API derives its schemas.
_STRICT = {"extra": "forbid"}


# -- status ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PendingRevoke:
    """A retired token, revoked once its grace has passed."""

    __pydantic_config__ = _STRICT

    token_id: int
    revoke_after: str | None
    #: Since when the manager has had no access to revoke it (it stays live until revoked or expired).
    no_access_since: str | None = None


@dataclass(frozen=True, slots=True)
class Drift:
    """The connection changed outside rotator: the hash prefixes it expected and observed."""

    __pydantic_config__ = _STRICT

    since: str | None
    expected: str | None
    observed: str | None


@dataclass(frozen=True, slots=True)
class UntrackedToken:
    """An active token of the project that no target tracks (listed at a take-over)."""

    __pydantic_config__ = _STRICT

    token_id: int
    name: str
    expires_at: str | None


@dataclass(frozen=True, slots=True)
class UntrackedTokens:
    """The take-over's list of untracked active tokens, as of when it was taken."""

    __pydantic_config__ = _STRICT

    as_of: str | None
    tokens: tuple[UntrackedToken, ...]


@dataclass(frozen=True, slots=True)
class UnresolvedProject:
    """The failure to resolve the target's ``group/project`` path, kept until the path resolves."""

    __pydantic_config__ = _STRICT

    project: str
    since: str | None
    last_failed: str | None
    failures: int
    status: int | None
    error: str


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """One target, as ``rotator status --json`` shows it."""

    __pydantic_config__ = _STRICT

    target: str
    token_id: int | None
    expires_at: str | None
    #: Whole days until the current token dies (00:00 UTC on ``expires_at``), rounded down:
    #: 0 is less than a day, negative is already expired.
    expires_in_days: int | None
    last_rotation: str | None
    last_outcome: str | None
    next_due: str | None
    due_reason: str
    would: str
    pending_revokes: tuple[PendingRevoke, ...]
    possibly_held: tuple[int, ...]
    drift: Drift | None
    holding_revoke_since: str | None
    backoff_until: str | None
    last_error: str | None
    failing: bool
    failing_reason: str | None
    untracked_tokens: UntrackedTokens | None
    unresolved_project: UnresolvedProject | None


@dataclass(frozen=True, slots=True)
class TombstoneStatus:
    """A token name a late create may still use; re-checked until ``until``, then once more."""

    __pydantic_config__ = _STRICT

    name: str
    until: str | None


@dataclass(frozen=True, slots=True)
class UnfinishedRotation:
    """A removed key's rotation that stopped mid-way; the next run resumes it."""

    __pydantic_config__ = _STRICT

    rotation: str
    step: str
    token_name: str


@dataclass(frozen=True, slots=True)
class RemovedStatus:
    """A journal key no configured target maps to any more, what it still holds, and the way out."""

    __pydantic_config__ = _STRICT

    key: str
    target: str
    token_id: int | None
    expires_at: str | None
    pending_revokes: tuple[PendingRevoke, ...]
    possibly_held: tuple[int, ...]
    connection_used_by: str | None
    revoke_next_run: tuple[int, ...]
    left_alone: tuple[str, ...]
    #: Holding a revoke, or a live token the manager has no access to revoke (``status`` exits 1).
    failing: bool
    failing_reason: str | None
    tombstones: tuple[TombstoneStatus, ...]
    unfinished: UnfinishedRotation | None
    forget: str


@dataclass(frozen=True, slots=True)
class Status:
    """Every configured target, as of a time; and the removed keys still tracked."""

    __pydantic_config__ = _STRICT

    as_of: str
    targets: tuple[TargetStatus, ...]
    removed: tuple[RemovedStatus, ...]


# -- the upstream look (status --live) ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the look asked upstream: ``level`` is ok, info, warn, PROBLEM, DRIFT or skip."""

    __pydantic_config__ = _STRICT

    level: str
    what: str
    text: str


@dataclass(frozen=True, slots=True)
class LiveTarget:
    """One configured target as GitLab and Infisical show it now."""

    __pydantic_config__ = _STRICT

    target: str
    #: A PROBLEM or DRIFT finding: ``status --live`` and ``plan`` exit 1.
    failing: bool
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class Live:
    """``status --live``'s ``live``: the credentials, then each target, read upstream as of a time."""

    __pydantic_config__ = _STRICT

    as_of: str
    failing: bool
    credentials: tuple[Finding, ...]
    targets: tuple[LiveTarget, ...]


# -- history --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetiredToken:
    """A token a rotation retired: revoked when, and on what evidence."""

    __pydantic_config__ = _STRICT

    token_id: int
    revoked_at: str | None
    evidence: str | None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One rotation, as ``rotator history --json`` shows it."""

    __pydantic_config__ = _STRICT

    rotation: str
    target: str
    trigger: str
    started: str | None
    finished: str | None
    outcome: str
    step: str
    old_token_id: int | None
    new_token_id: int | None
    expires_at: str | None
    pre_hash: str | None
    patch_hash: str | None
    reread_hash: str | None
    retired: tuple[RetiredToken, ...]
    error: str | None


# -- the two ways out -----------------------------------------------------------------------------
def as_json(value: object) -> Any:  # noqa: ANN401 - a JSON document
    """``value`` as JSON-ready dicts and lists, keys in declaration order (what ``--json`` prints)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [as_json(inner) for inner in value]
    return value


def shown(value: T, keep: Collection[str] = ("target",)) -> T:
    """``value`` with every string through the one redaction, but fields named in ``keep``.

    Upstream messages (``last_error``, ``error``, the reasons quoting them) are redacted whatever
    the journal holds; a target's configured name, which rows are looked up by, stays as it is.
    The same rule as :func:`rotator.core.redact.redact_tree` over the JSON form.
    """
    if isinstance(value, str):
        return cast("T", redact(value))
    if is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: shown(getattr(value, f.name), keep) for f in fields(value) if f.name not in keep}
        return cast("T", replace(value, **changes))
    if isinstance(value, tuple):
        return cast("T", tuple(shown(inner, keep) for inner in value))
    return value
