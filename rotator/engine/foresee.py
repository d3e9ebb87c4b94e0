"""Which rule the next run that reads a target's connection judges its hash by (rule 1), offline.

The look (:mod:`rotator.engine.look`) shows drift exactly when that run would freeze the target,
so it must know which run that is and what it does first. A run does what
:func:`~rotator.core.schedule.decide` says, in the engine's order (``Engine._work``): it resumes an
unfinished rotation (one stopped at PUSHED re-reads the connection against its PATCH's hash), then
rotates (the before-push rule, lenient while a token is possibly held), then revokes the tokens
past their grace (the before-revoke rule: the verified push and nothing else). Pure: the journal's
records and ``now`` in, the rule out.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from rotator.core import rules
from rotator.core.model import Role, RotationRecord, Step, TokenRecord
from rotator.core.schedule import Situation, decide, expiry_instant


if TYPE_CHECKING:
    from collections.abc import Sequence


class Check(StrEnum):
    """The rule by which the next run that reads the connection judges its hash (rule 1)."""

    #: Resuming a rotation stopped at PUSHED: our PATCH's hash verifies it, the pre-PATCH hash
    #: is a lagging replica, any other freezes (or, under ``--take-over``, is overwritten).
    REREAD = "reread"
    #: A rotation, before its push: another hash freezes unless a possibly-held token (a lost
    #: PATCH may have landed) or ``--take-over`` explains it.
    PUSH = "push"
    #: Revokes alone: anything but the verified push freezes, whatever tokens are possibly held.
    REVOKE = "revoke"


@dataclass(frozen=True, slots=True)
class Foreseen:
    """How the next run that reads the connection judges it: by ``check``, and taking over or not.

    ``check`` is ``None`` when no run will read it (then a rotation, forced or due, is what
    will); ``take_over`` only when that run is the command's own ``--take-over`` run.
    """

    check: Check | None = None
    take_over: bool = False


#: The checks after which a run pushes (and so, verified, may end a freeze).
PUSHES = frozenset({Check.PUSH, Check.REREAD})
#: What a run that rotates foresees, without a take-over.
A_ROTATION = Foreseen(Check.PUSH)


def next_check(  # noqa: PLR0913 - what a run decides from, as the engine's own run decides it
    situation: Situation,
    tokens: "Sequence[TokenRecord]",
    unfinished: RotationRecord | None,
    now: datetime,
    *,
    force: bool = False,
    take_over: bool = False,
) -> Foreseen:
    """Which rule the first run from ``now`` that reads the connection applies (none: no run will).

    The run at ``now`` (with the command's ``force`` and ``take_over``) does what :func:`decide`
    says, in the engine's order: it resumes an unfinished rotation (a PUSHED one re-reads the
    connection), rotates (the pre-push rule), then revokes the tokens past their grace (the strict
    rule, unless a rotation just verified a push). A run that reads nothing (idle, re-checks
    alone) leaves it to the scheduled run at the next instant work falls due: a revoke's grace
    ending, the rotation's due time, the end of a backoff.
    """
    later = [t for t in (*situation.revoke_afters, situation.due.next_due, situation.backoff_until) if t]
    for at in sorted({now, *(t for t in later if t > now)}):
        first = at == now
        due = situation.due
        seen = replace(
            situation, due=replace(due, due=due.due or (due.next_due is not None and at >= due.next_due))
        )
        taking_over = take_over and first
        work = decide(seen, at, force=force and first, take_over=taking_over)
        if work.resume and unfinished is not None and unfinished.step is Step.PUSHED:
            return Foreseen(Check.REREAD, taking_over)
        rolls_forward = work.resume and unfinished is not None and unfinished.step is Step.PUSHING
        if rolls_forward or work.rotate:
            return Foreseen(Check.PUSH, taking_over)
        if work.revoke and any(_revoked_then(t, at) for t in tokens):
            return Foreseen(Check.REVOKE, taking_over)
    return Foreseen()


def _revoked_then(token: TokenRecord, at: datetime) -> bool:
    """Whether a run at ``at`` revokes ``token`` after checking the connection (not one it abandons)."""
    if token.role is not Role.PENDING_REVOKE or token.revoke_after is None or token.revoke_after > at:
        return False
    expired = token.expires_at is not None and at >= expiry_instant(token.expires_at)
    return not (rules.unrevocable(token) and expired)
