"""Architecture §1's rules as pure functions of recorded facts and upstream answers. Core: stdlib only.

Theory of operation
-------------------
The engine asks; these functions answer. Each takes what the journal recorded and what an
upstream said (an answer, or the :class:`~rotator.core.errors.UpstreamError` the adapter mapped
it to) and returns the evidence or the verdict; none reads a clock, a file or the network. So
"what does a PATCH answer prove", "is this drift", "may this token be revoked yet" each have one
home, are tested without a server, and the engine's job is reduced to making the calls and
recording what these say.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from rotator.core import evidence as ev
from rotator.core.errors import InfisicalError, UpstreamError
from rotator.core.model import (
    OWNED_ROLES,
    Role,
    RotationRecord,
    TargetKey,
    TokenInfo,
    TokenOwner,
    TokenRecord,
)
from rotator.core.schedule import clamped_expiry, expiry_limit


#: Answers to a DELETE that are re-checked by reading the token, never taken as proof either way.
RECHECK_STATUSES = frozenset({400, 403, 404})
#: Answers by which GitLab says the manager may not act on the project's tokens (any more).
NO_RIGHTS = frozenset({401, 403})
NOT_FOUND = 404
#: The evidence of a plain successful revoke.
DELETED = "DELETE 204"
#: How GitLab refuses a create whose ``expires_at`` is past its limit: 400 for a project or group
#: token, 422 for a personal access token (a service account's: ``render_api_error!`` with the
#: token service's message, ``reference/gitlab-2.md`` §1.3). Either way nothing was created.
_EXPIRY_REFUSALS = frozenset({400, 422})
_REDIRECTS = range(300, 400)


def described(error: UpstreamError, target: str, step: str) -> str:
    """An upstream error as its one line, naming the target and (unless it names one) the step."""
    return str(error.located(target, step if error.step is None else None))


# -- the create -----------------------------------------------------------------------------------
def create_proves(
    error: UpstreamError, *, retried: bool, at: datetime, target: str
) -> ev.ExpiryCapped | ev.CreateRefused | ev.CreateUnknown:
    """What a failed create proves (rule 3: never retried blind; rule 6: one retry on an expiry limit).

    The one retry needs proof that nothing was created: a refusal (``not_applied``) naming the limit.
    """
    refused = error.not_applied and error.status in _EXPIRY_REFUSALS
    limit = expiry_limit(error.message) if refused else None
    if limit is not None and not retried:
        return ev.ExpiryCapped(clamped_expiry(limit), at)  # nothing was created: ask for the allowed day
    line = described(error, target, "create")
    if error.not_applied:
        return ev.CreateRefused(at, line)
    return ev.CreateUnknown(at, line)  # it may exist, or appear later: find it by exact name


def self_check_problem(answer: TokenInfo | UpstreamError, expected_id: int, target: str) -> str | None:
    """Why the new token's read of itself does not prove it works; ``None`` when it does."""
    if isinstance(answer, UpstreamError):
        return described(answer, target, "self-check")
    if answer.id == expected_id and answer.active:
        return None
    return f"token {answer.id} active={answer.active}, expected {expected_id} active"


def self_check_hopeless(answer: TokenInfo | UpstreamError) -> bool:
    """Whether waiting out the self-check window cannot help: a refused redirect is no replica lag."""
    return isinstance(answer, UpstreamError) and answer.status is not None and answer.status in _REDIRECTS


# -- the PATCH ------------------------------------------------------------------------------------
def not_landed_line(method: str, step: str, problem: str, target: str) -> str:
    """The failure line for an Infisical answer of 200 that does not hold our push."""
    return str(
        InfisicalError(
            "infisical",
            f"{method} /api/v1/app-connections/gitlab/:connectionId",
            200,
            problem,
            not_applied=False,
            target=target,
            step=step,
        )
    )


def patch_proves(
    answer: str | UpstreamError, *, pre_hash: str | None, at: datetime, target: str
) -> ev.PatchStored | ev.PatchRefused | ev.PatchUnknown | ev.PatchNotLanded:
    """What a PATCH answer proves: a new hash is stored; a definite refusal is not; all else is unknown.

    The adapter decides ``not_applied`` from the status (4xx before the handler ran; never once an
    earlier attempt's outcome was unknown). A 200 carrying the pre-PATCH hash is not proof of our
    push: it is superseded like an unknown one.
    """
    if isinstance(answer, UpstreamError):
        line = described(answer, target, "push")
        if answer.not_applied:
            return ev.PatchRefused(at, line)
        return ev.PatchUnknown(at, line)
    if answer == pre_hash:
        problem = "the PATCH returned the pre-PATCH credentialsHash"
        return ev.PatchNotLanded(at, not_landed_line("PATCH", "push", problem, target))
    return ev.PatchStored(answer, at)


def reread_proves(
    observed: str, rotation: RotationRecord, *, take_over: bool, at: datetime, target: str
) -> ev.RereadSame | ev.RereadLagging | ev.RereadOther | ev.RereadOverwritten:
    """What a re-read after a stored PATCH proves: verified, a lagging replica, or someone else's write."""
    if observed == rotation.patch_hash:
        return ev.RereadSame(observed, at)
    if observed == rotation.pre_hash:
        return ev.RereadLagging(observed, at)
    if take_over:
        # The operator accepts the connection as it is: our push was overwritten, not drifted from.
        problem = "the re-read shows another credentialsHash: our push was overwritten"
        return ev.RereadOverwritten(observed, at, not_landed_line("GET", "verify", problem, target))
    return ev.RereadOther(observed, at, "re-read shows another hash")


# -- drift (rule 1) -------------------------------------------------------------------------------
class Gate(StrEnum):
    """What the connection's hash says before a push."""

    CLEAR = "clear"  # ours, or no push verified yet
    CHANGED = "changed"  # changed, but a lost PATCH may have landed (or the operator took over)
    DRIFT = "drift"  # someone else wrote it: freeze


def before_push(verified: str | None, observed: str, *, possibly_held: bool, take_over: bool) -> Gate:
    """Rule 1 before a push: a changed hash is drift, unless a lost PATCH or a take-over explain it."""
    if verified is None or observed == verified:
        return Gate.CLEAR
    if possibly_held or take_over:
        return Gate.CHANGED
    return Gate.DRIFT


def holds_our_push(reference: str | None, observed: str) -> bool:
    """Rule 1 before a revoke: the connection still holds the verified push we compare with."""
    return reference is not None and observed == reference


# -- retiring, settle time, still in use (rule 2) --------------------------------------------------
def unrevocable(token: TokenRecord) -> bool:
    """Whether ``token`` is tracked as waiting for a revoke the manager has had no access to make."""
    return token.no_access_since is not None and token.role in (Role.PENDING_REVOKE, Role.CANDIDATE)


def retired_by_push(token: TokenRecord, new_token_id: int | None) -> bool:
    """Whether a verified push of ``new_token_id`` retires ``token``.

    Every token the connection held or may hold goes; a never-pushed candidate left by a revoke
    without access needs no grace: it is retried as it is, right after this rotation.
    """
    return (
        token.role in (Role.CURRENT, Role.POSSIBLY_HELD, Role.CANDIDATE)
        and token.token_id != new_token_id
        and not (token.role is Role.CANDIDATE and unrevocable(token))
    )


def revoke_after(role: Role, verified_at: datetime, grace: timedelta, settle: timedelta) -> datetime:
    """When a token retired at ``verified_at`` may be revoked.

    A possibly-held token's PATCH may still be committing inside Infisical: it gets time to land
    (and show up as drift) before it can be revoked, whatever the grace.
    """
    after = verified_at + grace
    return max(after, verified_at + settle) if role is Role.POSSIBLY_HELD else after


def settling(
    token: TokenRecord, verified_at: datetime | None, now: datetime, settle: timedelta
) -> str | None:
    """Why a late push may still land on ``token`` so it must not be revoked yet; ``None``: it may."""
    if token.role is Role.POSSIBLY_HELD and verified_at is not None and now < verified_at + settle:
        return "possibly held by a push that may still land; retry in 15 minutes"
    if token.role is Role.PENDING_REVOKE and token.retired_at and now < token.retired_at + settle:
        return f"retired at {token.retired_at:%H:%M}Z: a late push may still land; retry after 15 minutes"
    return None


def in_use_baseline(token: TokenRecord, grace: timedelta, margin: timedelta) -> datetime | None:
    """The instant after which a use of ``token`` means someone still uses it; ``None``: no baseline."""
    if token.revoke_after is None:
        return None
    retired_at = token.retired_at or token.revoke_after - grace
    return retired_at + margin


def still_in_use(info: TokenInfo | None, since: datetime, *, revoke_anyway: bool) -> datetime | None:
    """Rule 2: when GitLab saw the token used after ``since`` (unless the hold is waived); else ``None``."""
    if info is None or not info.active:
        return None  # gone already; the idempotent DELETE that follows proves it either way
    used = info.last_used_at
    return used if used is not None and used > since and not revoke_anyway else None


# -- what a revoke answer proves ------------------------------------------------------------------
def denied(status: int | None) -> bool:
    """Whether GitLab said the manager may not act on the project's tokens."""
    return status in NO_RIGHTS


def delete_rechecked(status: int | None) -> bool:
    """Whether a refused DELETE is re-checked (400/403/404) rather than raised as unproven."""
    return status in RECHECK_STATUSES


def project_unreadable(status: int | None) -> bool | None:
    """What an error reading the project says: unreadable (True), or nothing (``None``: raise it)."""
    return True if status in NO_RIGHTS or status == NOT_FOUND else None


def revoke_read_proves(delete_status: int | None, info: TokenInfo | None) -> str | None:
    """After a refused DELETE, what a read of the token from a readable project proves; ``None``: alive."""
    if info is None:
        return f"DELETE {delete_status}, then 404 on read from a readable project"
    if info.revoked or not info.active:
        return f"DELETE {delete_status}, then read revoked={info.revoked} active={info.active}"
    return None


# -- ownership (architecture §6) ------------------------------------------------------------------
def owned_elsewhere(owners: list[TokenOwner], key: TargetKey, token_id: int) -> str | None:
    """Which other target owns ``token_id`` as a live token, in words; else ``None``.

    One token, one owner: a token another target holds, pends or may have pushed is never adopted
    or revoked on this target's behalf.
    """
    others = [o for o in owners if o.key != key and o.role in OWNED_ROLES]
    if not others:
        return None
    return f"token {token_id} is " + " and ".join(
        f"the {o.role.value.replace('_', ' ')} token of target {o.target}" for o in others
    )
