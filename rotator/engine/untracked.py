"""A first rotation without ``adopt_token_id``: the owner's active tokens no target tracks, and what to do.

The connection's token before rotator (made by hand, or by another tool) is only revoked when the
config names it in ``adopt_token_id``: the first verified push retires the adopted token, and its
grace ends in a revoke. Left out, the first rotation pushes a new token and the previous one stays
active until it expires, while every run exits 0. So until a target's first verified push, and
only while it has no ``adopt_token_id``, ``plan``, ``check`` and the run that rotates list the
owner's active tokens that no target tracks as a live token (:func:`rotator.core.inventory.owners_of`
over the journal) and name the line to add. A warning, never a failure: it changes no exit code.

``adopt_token_id`` is honoured until the first verified push (``TargetRun._first_rotation_checks``)
and ignored after it, so the words differ once a rotation has verified: adding it then changes
nothing, and the only way to end that token is to revoke it by hand in GitLab. A first rotation
left unfinished at PUSHED is as good as verified: the next run re-reads its push and verifies it
without rotating again, so ``adopt_token_id`` is never read (:func:`settles_on_resume`).

A token no target tracks yet named as an unfinished rotation's or a tombstone's is no one to adopt
either: a create whose answer was lost may have made it, and recovery revokes it by that name
(:func:`in_flight`).

Nothing here reads upstream: the callers list the tokens (the look, ``check``, the run, each with
the listing it already has where it has one) and hand the listing, or the failed call, in.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import structlog

from rotator.core.errors import UpstreamError
from rotator.core.inventory import Managed, owners_of
from rotator.core.model import (
    OWNED_ROLES,
    RotationRecord,
    Step,
    TargetKey,
    TargetState,
    TokenInfo,
    same_instance,
)
from rotator.core.ports import Journal
from rotator.core.schedule import named_like_ours
from rotator.core.spec import RotationSpec


log = structlog.get_logger("rotator")
#: The log event of the run that rotates a target for the first time and leaves tokens behind.
EVENT = "target.untracked_tokens"
#: The ``what`` of the look's and ``check``'s line.
WHAT = "untracked tokens"


@dataclass(frozen=True, slots=True)
class Untracked:
    """The owner's active tokens no target tracks, or why they could not be listed."""

    tokens: tuple[TokenInfo, ...] = ()
    #: ``could not list the tokens: ROUTE STATUS`` (value-free); ``None`` when the listing worked.
    error: str | None = None

    @property
    def worth_saying(self) -> bool:
        """Whether there is anything to warn about: a token left behind, or a listing that failed."""
        return bool(self.tokens) or self.error is not None


def concerns(target: RotationSpec, state: TargetState | None) -> bool:
    """Whether ``target``'s next rotation is its first (no verified push) and names no token to adopt."""
    return (
        not target.removed
        and target.adopt_token_id is None
        and (state is None or state.verified_hash is None)
    )


def tracked(journal: Journal, gitlab_url: str, removed: Collection[TargetKey] = ()) -> dict[int, Managed]:
    """Every token the journal tracks as some target's live token on this GitLab, by id.

    ``removed``: the journal keys no configured target maps to (their owners are marked so).
    """
    return owners_of(
        (
            (state.name, record)
            for state in journal.targets()
            if same_instance(state.key.gitlab_url, gitlab_url)
            for record in journal.tokens(state.key)
        ),
        removed,
    )


def owned(journal: Journal, gitlab_url: str, listed: Iterable[TokenInfo]) -> frozenset[int]:
    """The ids of ``listed``'s active tokens that some target on this GitLab tracks in a live role.

    One indexed read per active token (:meth:`Journal.owners`), not a walk of every target's
    tokens: a first run of a thousand new targets would read the whole journal once per target.
    """
    return frozenset(
        t.id
        for t in listed
        if t.active and any(o.role in OWNED_ROLES for o in journal.owners(gitlab_url, t.id))
    )


def unsettled(
    journal: Journal, gitlab_url: str, listed: Iterable[TokenInfo], owners: Collection[int]
) -> frozenset[str]:
    """:func:`in_flight`, read only when an active token no target owns is named as rotator names its own.

    A lost create's name is always one rotator made (:func:`rotator.core.schedule.token_name`), so
    without such a token there is nothing :func:`in_flight` could leave out, and the journal's
    unfinished rotations and tombstones need not be read.
    """
    if any(t.active and t.id not in owners and named_like_ours(t.name) for t in listed):
        return in_flight(journal, gitlab_url)
    return frozenset()


def settles_on_resume(unfinished: RotationRecord | None) -> bool:
    """Whether the next run verifies the first push by re-reading it, without a rotation to adopt in."""
    return unfinished is not None and unfinished.step is Step.PUSHED


def in_flight(journal: Journal, gitlab_url: str) -> frozenset[str]:
    """The names a create may have used without its token's id reaching the journal, on this GitLab.

    An unfinished rotation's (the create may have happened before the crash) and every tombstone's
    (a create whose answer was lost): recovery and the tombstone re-checks revoke an active token so
    named, so it is never one to adopt, even while GitLab still lists it active.
    """
    names: set[str] = set()
    for state in journal.targets():
        if not same_instance(state.key.gitlab_url, gitlab_url):
            continue
        unfinished = journal.unfinished(state.key)
        names.update(t.name for t in journal.tombstones(state.key))
        names.update([unfinished.token_name] if unfinished is not None else [])
    return frozenset(names)


def untracked(
    listed: Iterable[TokenInfo],
    owners: Collection[int],
    manager_id: int | None,
    unsettled: Collection[str] = frozenset(),
) -> Untracked:
    """The active tokens of ``listed`` that no target owns, oldest first.

    The manager token is never among them, should it be one of the owner's tokens: adopting it
    would have rotator revoke its own credential after grace. Nor is a token named as one of the
    ``unsettled`` names (:func:`in_flight`): rotator made it, and revokes it.
    """
    found = sorted(
        (
            t
            for t in listed
            if t.active and t.id not in owners and t.id != manager_id and t.name not in unsettled
        ),
        key=lambda t: t.id,
    )
    return Untracked(tuple(found))


def failed(error: UpstreamError, doing: str = "list the tokens") -> Untracked:
    """A read that failed, in the words the warning uses: what, route and status, nothing quoted.

    The listing's, or the manager token's own: without its id, any of the owner's tokens could
    be rotator's own credential, which must never be offered for adoption.
    """
    status = error.status if error.status is not None else "no response"
    return Untracked(error=f"could not {doing}: {error.route} {status}")


#: What :func:`failed` says when the manager token's own read failed.
MANAGER_UNREAD = "read the manager token (never one to adopt)"


def warning(  # noqa: PLR0913 - the target, where it is, whose tokens, what was found, and how far it got
    target: RotationSpec,
    index: int | None,
    holder: str,
    found: Untracked,
    *,
    rotated: bool,
    resumed: bool = False,
) -> str:
    """The warning's text: the tokens left behind, and what to do about them.

    ``holder`` names the owner (``project acme/app``); ``index`` is the target's place in the
    config (``None`` where it is not known); ``rotated``: the first push has verified, so
    ``adopt_token_id`` no longer applies; ``resumed``: the next run verifies it on resume
    (:func:`settles_on_resume`), so it no longer applies either.
    """
    tokens = found.tokens
    if found.error is not None:
        said, left = found.error, f"the connection's previous token, if it is one of {holder}'s, stays"
    else:
        count = "1 active token" if len(tokens) == 1 else f"{len(tokens)} active tokens"
        said = f"{holder} holds {count} no target tracks: {', '.join(_described(t) for t in tokens)}"
        left = (
            "if the connection held it before this first rotation, it stays"
            if len(tokens) == 1
            else "the connection held at most one of them before this first rotation, and that one stays"
        )
    if rotated or resumed:
        # Unfinished at PUSHED: no rotation is left to adopt in, only the re-read.
        why = "" if rotated else "the next run verifies this first rotation's push by re-reading it, and "
        return (
            f"{said}; {left} active until it expires: {why}adopt_token_id applies only until a target's"
            " first verified rotation, so adding it now changes nothing; revoke that token by hand in"
            " GitLab once nothing uses it"
        )
    where = f"under targets[{index}] ({target.name})" if index is not None else f"under target {target.name}"
    if len(tokens) == 1:
        return (
            f"{said}; if the connection holds it, add `adopt_token_id: {tokens[0].id}` {where} to have it"
            " revoked after grace; without it, the first rotation leaves it active until it expires"
        )
    held = "the connection holds at most one of them" if tokens else "without adopt_token_id"
    return (
        f"{said}; {held}: add `adopt_token_id: ID` {where} with the id of the token the connection"
        " holds to have it revoked after grace; without it, the first rotation leaves that token active"
        " until it expires"
    )


def logged(target: RotationSpec, found: Untracked, text: str) -> None:
    """The run's one log line for it (ids and names only: GitLab never lists a token's value)."""
    log.warning(
        EVENT,
        target=target.name,
        token_ids=[t.id for t in found.tokens],
        token_names=[t.name for t in found.tokens],
        error=found.error,
        hint=text,
    )


def _described(token: TokenInfo) -> str:
    """``12 deploy (expires 2026-12-31)``: id, name and expiry, as ``status`` lists untracked tokens."""
    expires = f"expires {token.expires_at}" if token.expires_at else "never expires"
    return f"{token.id} {token.name} ({expires})"
