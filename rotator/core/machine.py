"""The rotation protocol's state machine: two tables of transitions, and the one function that walks them.

Theory of operation
-------------------
A rotation's state is its recorded step while its outcome is ``in_progress``; once it has any
other outcome it is closed and nothing moves it again. A token's state is its role. Every change
of either is a lookup in a table keyed by (state, kind of evidence), in the manner of h11's
``_SWITCH``/``EVENT_TRIGGERED_TRANSITIONS``: :func:`advance` is the only code that sets a step,
an outcome or a role, and evidence the table has no entry for raises :class:`ProtocolViolation`
instead of writing a state no one designed. The tables are also what ``docs/rotation.md``'s
diagrams are generated from (:mod:`rotator.core.protocol`), so the document cannot miss an edge
the engine can take.

Each entry names the :class:`Action` the new state licenses: the upstream call to make next, or
the recovery to run. The engine turns actions into I/O; it decides nothing a table or a rule in
:mod:`rotator.core.rules` decides. Core: standard library only.
"""

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import overload

from rotator.core import evidence as ev
from rotator.core.errors import ProtocolViolation
from rotator.core.model import Outcome, Role, RotationRecord, Step, TokenRecord


class Action(StrEnum):
    """What a transition licenses next."""

    CREATE = "create the token (again, once)"
    SELF_CHECK = "self-check the new token"
    PUSH = "PATCH the connection"
    REREAD = "re-read the connection"
    RETIRE_OLD = "make the new token current, retire the others"
    REVOKE_NEW = "revoke the never-pushed token"
    RECHECK_NAME = "list by exact name, revoke a match, tombstone the name"
    ROLL_FORWARD = "a fresh rotation; the token stays possibly held"
    FREEZE = "freeze the target (drift)"
    STOP = "fail the run"
    RETRY_NEXT_RUN = "stay; the next run retries"
    KEEP = "nothing; the removed-target rules decide"
    WAIT_GRACE = "revoke once revoke_after has passed (drift, in-use checks)"
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class Transition:
    """Where a rotation goes on one kind of evidence, and what follows."""

    to: Step
    outcome: Outcome
    action: Action
    says: str  # the edge's label in the generated diagram


@dataclass(frozen=True, slots=True)
class RoleTransition:
    """Which role a token takes on one kind of evidence, and what follows."""

    to: Role
    action: Action
    says: str


_P, _C, _G, _D, _V = Step.PLANNED, Step.CREATED, Step.PUSHING, Step.PUSHED, Step.VERIFIED
_RUN = Outcome.IN_PROGRESS

#: Every step a rotation can take. (state, evidence kind) -> transition.
ROTATION_TABLE: dict[tuple[Step, type[ev.RotationEvidence]], Transition] = {
    # PLANNED: the create is the one call never retried blind (architecture §1 rule 3).
    (_P, ev.CreateAnswered): Transition(_C, _RUN, Action.SELF_CHECK, "201 created"),
    (_P, ev.ExpiryCapped): Transition(_P, _RUN, Action.CREATE, "400 expires-at limit, asked once more"),
    (_P, ev.CreateRefused): Transition(_P, Outcome.FAILED, Action.STOP, "refused, nothing created"),
    (_P, ev.CreateUnknown): Transition(
        _P, Outcome.ROLLED_BACK, Action.RECHECK_NAME, "5xx or timeout, found by exact name"
    ),
    (_P, ev.CrashFound): Transition(_P, Outcome.ROLLED_BACK, Action.RECHECK_NAME, "crash, next run"),
    # CREATED: the token exists and was never pushed, so revoking it is always safe.
    (_C, ev.SelfCheckPassed): Transition(_G, _RUN, Action.PUSH, "self-check passed"),
    (_C, ev.SelfCheckFailed): Transition(_C, Outcome.ROLLED_BACK, Action.REVOKE_NEW, "self-check failed"),
    (_C, ev.RefusalUndone): Transition(_C, Outcome.FAILED, Action.STOP, "refused push undone"),
    (_C, ev.CrashFound): Transition(_C, Outcome.ROLLED_BACK, Action.REVOKE_NEW, "crash, next run"),
    # PUSHING: only a 200 or a definite refusal is proof; anything else leaves the token possibly held.
    (_G, ev.PatchStored): Transition(_D, _RUN, Action.REREAD, "PATCH 200, new hash"),
    (_G, ev.PatchRefused): Transition(_C, _RUN, Action.REVOKE_NEW, "PATCH refused before storage"),
    (_G, ev.PatchUnknown): Transition(
        _G, Outcome.SUPERSEDED, Action.ROLL_FORWARD, "PATCH 5xx or timeout, then a fresh rotation"
    ),
    (_G, ev.PatchNotLanded): Transition(
        _G, Outcome.SUPERSEDED, Action.ROLL_FORWARD, "PATCH 200 with the old hash, then a fresh rotation"
    ),
    (_G, ev.CrashFound): Transition(
        _G, Outcome.SUPERSEDED, Action.ROLL_FORWARD, "crash, next run then a fresh rotation"
    ),
    (_G, ev.TargetRemoved): Transition(_G, Outcome.SUPERSEDED, Action.KEEP, "target removed"),
    # PUSHED: stored; from here this rotation never revokes the new token.
    (_D, ev.RereadSame): Transition(_V, Outcome.SUCCEEDED, Action.RETIRE_OLD, "re-read shows our hash"),
    (_D, ev.RereadLagging): Transition(_D, _RUN, Action.REREAD, "re-read lags, read again"),
    (_D, ev.RereadFailed): Transition(_D, _RUN, Action.RETRY_NEXT_RUN, "re-read failed, next run"),
    (_D, ev.RereadOther): Transition(_D, Outcome.DRIFT, Action.FREEZE, "re-read shows another hash"),
    (_D, ev.RereadOverwritten): Transition(
        _D, Outcome.SUPERSEDED, Action.ROLL_FORWARD, "take-over, push overwritten, then a fresh rotation"
    ),
    (_D, ev.CrashFound): Transition(_D, _RUN, Action.REREAD, "crash, next run re-reads"),
    (_D, ev.TargetRemoved): Transition(_D, Outcome.SUPERSEDED, Action.KEEP, "target removed"),
}

_CAND, _HELD, _CUR, _PEND = Role.CANDIDATE, Role.POSSIBLY_HELD, Role.CURRENT, Role.PENDING_REVOKE
_RETIRED = RoleTransition(_PEND, Action.WAIT_GRACE, "retired by a verified push")
_UNREVOKED = RoleTransition(Role.ABANDONED, Action.NOTHING, "expired, no access to revoke")

#: Every role change a token can make. (role, evidence kind) -> transition.
ROLE_TABLE: dict[tuple[Role, type[ev.TokenEvidence]], RoleTransition] = {
    (_CAND, ev.PushSent): RoleTransition(_HELD, Action.PUSH, "PUSHING recorded"),
    (_HELD, ev.PushAnswered): RoleTransition(_HELD, Action.REREAD, "PATCH 200"),
    (_HELD, ev.PushRejected): RoleTransition(_CAND, Action.REVOKE_NEW, "PATCH refused"),
    (_HELD, ev.PushVerified): RoleTransition(_CUR, Action.NOTHING, "push verified"),
    (_CAND, ev.Retired): _RETIRED,
    (_HELD, ev.Retired): _RETIRED,
    (_CUR, ev.Retired): _RETIRED,
    (_CAND, ev.RevokeProven): RoleTransition(Role.REVOKED, Action.NOTHING, "revoked, never pushed"),
    (_PEND, ev.RevokeProven): RoleTransition(Role.REVOKED, Action.NOTHING, "revoked after grace"),
    # A tombstoned name re-checked can list a token recorded as revoked as active again (a lagging
    # listing): GitLab's word is taken again, or, without access, it is tracked as live again.
    (Role.REVOKED, ev.RevokeProven): RoleTransition(
        Role.REVOKED, Action.NOTHING, "listed again, revoked again"
    ),
    (Role.REVOKED, ev.NoAccess): RoleTransition(_CAND, Action.RETRY_NEXT_RUN, "listed again, no access"),
    # Likewise a token recorded abandoned (its expiry passed while the manager had no access) that
    # GitLab still lists active (a skewed clock, a later expiry upstream): it is live, so it is
    # revoked now, or tracked as live again, never left behind as "expired".
    (Role.ABANDONED, ev.RevokeProven): RoleTransition(
        Role.REVOKED, Action.NOTHING, "listed active after its expiry, revoked"
    ),
    (Role.ABANDONED, ev.NoAccess): RoleTransition(
        _CAND, Action.RETRY_NEXT_RUN, "listed active after its expiry, no access"
    ),
    (_CAND, ev.NoAccess): RoleTransition(_CAND, Action.RETRY_NEXT_RUN, "no access, retried"),
    (_PEND, ev.NoAccess): RoleTransition(_PEND, Action.RETRY_NEXT_RUN, "no access, retried"),
    (_CAND, ev.ExpiredUnrevoked): _UNREVOKED,
    (_PEND, ev.ExpiredUnrevoked): _UNREVOKED,
}

#: How a token enters the journal (not a transition: the record is born in that role).
TOKEN_ORIGINS: tuple[tuple[Role, str], ...] = (
    (_CAND, "created (or found by exact name)"),
    (_CUR, "adopted (adopt_token_id)"),
)


@overload
def advance(record: RotationRecord, evidence: ev.RotationEvidence) -> tuple[RotationRecord, Action]: ...
@overload
def advance(record: TokenRecord, evidence: ev.TokenEvidence) -> tuple[TokenRecord, Action]: ...
def advance(
    record: RotationRecord | TokenRecord, evidence: ev.RotationEvidence | ev.TokenEvidence
) -> tuple[RotationRecord | TokenRecord, Action]:
    """The record after ``evidence``, and the action its new state licenses; the only state change.

    Raises :class:`ProtocolViolation` when the table has no entry for (state, evidence kind), or
    when a closed rotation is offered evidence at all.
    """
    if isinstance(record, RotationRecord):
        return _advance_rotation(record, evidence)
    return _advance_token(record, evidence)


def _advance_rotation(
    record: RotationRecord, evidence: ev.RotationEvidence | ev.TokenEvidence
) -> tuple[RotationRecord, Action]:
    kind = type(evidence)
    if record.outcome is not Outcome.IN_PROGRESS:
        closed = f"{record.step.value} ({record.outcome.value})"
        raise ProtocolViolation(closed, kind.__name__)
    entry = ROTATION_TABLE.get((record.step, kind))  # type: ignore[arg-type]  # a token kind finds no entry
    if entry is None or isinstance(evidence, ev.TokenEvidence):
        raise ProtocolViolation(record.step.value, kind.__name__)
    moved = replace(evidence.apply(record), step=entry.to, outcome=entry.outcome)
    if entry.outcome is not Outcome.IN_PROGRESS:
        note = getattr(evidence, "note", None)
        moved = replace(moved, finished_at=evidence.at, error=note or record.error)
    return moved, entry.action


def _advance_token(
    record: TokenRecord, evidence: ev.RotationEvidence | ev.TokenEvidence
) -> tuple[TokenRecord, Action]:
    kind = type(evidence)
    entry = ROLE_TABLE.get((record.role, kind))  # type: ignore[arg-type]  # a rotation kind finds no entry
    if entry is None or not isinstance(evidence, ev.TokenEvidence):
        raise ProtocolViolation(record.role.value, kind.__name__)
    return replace(evidence.apply(record), role=entry.to), entry.action
