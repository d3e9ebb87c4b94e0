"""Architecture §1's rules as pure functions: their properties over every input Hypothesis finds."""

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.core import evidence as ev
from rotator.core import rules
from rotator.core.errors import GitLabError, InfisicalError, UpstreamError
from rotator.core.model import (
    OWNED_ROLES,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TokenInfo,
    TokenOwner,
    TokenRecord,
)
from tests.core.samples import KEY, OTHER, PURE, T0, durations, hashes, instants, rotations, tokens


statuses = st.none() | st.integers(min_value=100, max_value=599)


def infisical_errors() -> st.SearchStrategy[UpstreamError]:
    """Any Infisical failure of the PATCH route."""
    return st.builds(
        InfisicalError,
        st.just("infisical"),
        st.just("PATCH /api/v1/app-connections/gitlab/:connectionId"),
        statuses,
        st.text(max_size=30),
        not_applied=st.booleans(),
    )


def gitlab_errors(status: st.SearchStrategy[int | None] = statuses) -> st.SearchStrategy[UpstreamError]:
    """Any GitLab failure."""
    return st.builds(
        GitLabError,
        st.just("gitlab"),
        st.just("POST /x"),
        status,
        st.text(max_size=30),
        not_applied=st.booleans(),
    )


infos = st.builds(
    TokenInfo,
    id=st.integers(1, 10**6),
    name=st.just("n"),
    active=st.booleans(),
    revoked=st.booleans(),
    expires_at=st.none() | st.just(date(2027, 1, 1)),
    last_used_at=st.none() | instants,
)


@settings(PURE)
@given(st.one_of(hashes, infisical_errors()), st.none() | hashes, instants)
def test_what_a_patch_answer_proves(answer: str | UpstreamError, pre_hash: str | None, at: datetime) -> None:
    """A refusal is not-applied, any other failure unknown, 200 with the old hash not landed, else stored."""
    proof = rules.patch_proves(answer, pre_hash=pre_hash, at=at, target="t")
    if isinstance(answer, UpstreamError):
        expected = ev.PatchRefused if answer.not_applied else ev.PatchUnknown
        assert type(proof) is expected
        assert "target=t" in proof.note
    elif answer == pre_hash:
        assert isinstance(proof, ev.PatchNotLanded)
    else:
        assert proof == ev.PatchStored(answer, at)


@settings(PURE)
@given(gitlab_errors(), st.booleans(), instants)
def test_what_a_failed_create_proves(error: UpstreamError, retried: bool, at: datetime) -> None:
    """Never retried blind: only a first 400 naming an expiry limit asks again; else refused or unknown."""
    proof = rules.create_proves(error, retried=retried, at=at, target="t")
    if isinstance(proof, ev.ExpiryCapped):
        assert error.status in {400, 422}
        assert error.not_applied
        assert not retried
    else:
        assert type(proof) is (ev.CreateRefused if error.not_applied else ev.CreateUnknown)


def test_a_first_expiry_limit_is_asked_again_for_the_day_before() -> None:
    """A 400 "Expires at must be before 2027-01-10" asks once more for 2027-01-09."""
    error = GitLabError("gitlab", "POST /x", 400, "Expires at must be before 2027-01-10", not_applied=True)
    proof = rules.create_proves(error, retried=False, at=T0, target="t")
    assert proof == ev.ExpiryCapped(date(2027, 1, 9), T0)
    assert isinstance(rules.create_proves(error, retried=True, at=T0, target="t"), ev.CreateRefused)


def test_a_service_accounts_422_expiry_limit_is_asked_again_once() -> None:
    """A personal access token's 422 "Expires at must be before D" (nothing created) asks once more."""
    error = GitLabError("gitlab", "POST /x", 422, "Expires at must be before 2027-01-10", not_applied=True)
    proof = rules.create_proves(error, retried=False, at=T0, target="t")
    assert proof == ev.ExpiryCapped(date(2027, 1, 9), T0)
    assert isinstance(rules.create_proves(error, retried=True, at=T0, target="t"), ev.CreateRefused)


def test_an_expiry_message_without_proof_of_refusal_is_never_a_second_create() -> None:
    """The same words with an unknown outcome (a 5xx, say) may hide a created token: no second create."""
    error = GitLabError("gitlab", "POST /x", 500, "Expires at must be before 2027-01-10", not_applied=False)
    assert isinstance(rules.create_proves(error, retried=False, at=T0, target="t"), ev.CreateUnknown)


@settings(PURE)
@given(rotations(Step.PUSHED, Outcome.IN_PROGRESS), hashes, st.booleans(), instants)
def test_what_a_reread_proves(rotation: RotationRecord, observed: str, take_over: bool, at: datetime) -> None:
    """Our hash verifies, the old hash lags, a third is drift (overwritten under --take-over)."""
    seen = rules.reread_proves(observed, rotation, take_over=take_over, at=at, target="t")
    if observed == rotation.patch_hash:
        assert isinstance(seen, ev.RereadSame)
    elif observed == rotation.pre_hash:
        assert isinstance(seen, ev.RereadLagging)
    else:
        assert type(seen) is (ev.RereadOverwritten if take_over else ev.RereadOther)
        assert seen.hash == observed


@settings(PURE)
@given(st.none() | hashes, hashes, st.booleans(), st.booleans())
def test_drift_before_a_push(verified: str | None, observed: str, held: bool, take_over: bool) -> None:
    """Drift is a changed hash after a verified push that neither a lost PATCH nor a take-over explains."""
    gate = rules.before_push(verified, observed, possibly_held=held, take_over=take_over)
    changed = verified is not None and observed != verified
    assert (gate is rules.Gate.DRIFT) == (changed and not held and not take_over)
    assert (gate is rules.Gate.CLEAR) == (not changed)


@settings(PURE)
@given(st.none() | hashes, hashes)
def test_a_revoke_needs_the_connection_to_hold_our_verified_push(
    reference: str | None, observed: str
) -> None:
    """Rule 1: no reference (never verified) or another hash forbids every revoke."""
    assert rules.holds_our_push(reference, observed) == (reference == observed)


@settings(PURE)
@given(st.sampled_from(list(Role)), instants, durations, durations)
def test_settle_time_for_possibly_held_tokens(
    role: Role, at: datetime, grace: timedelta, settle: timedelta
) -> None:
    """Every retired token waits its grace; a possibly-held one also waits for a late PATCH to land."""
    after = rules.revoke_after(role, at, grace, settle)
    assert after >= at + grace
    if role is Role.POSSIBLY_HELD:
        assert after >= at + settle
    else:
        assert after == at + grace


@settings(PURE)
@given(tokens(), st.integers(1, 10**6))
def test_a_verified_push_never_retires_its_own_token(token: TokenRecord, new_id: int) -> None:
    """The new token is never retired; a never-pushed candidate without access is retried as it is."""
    retired = rules.retired_by_push(token, new_id)
    if token.token_id == new_id or token.role not in (Role.CURRENT, Role.POSSIBLY_HELD, Role.CANDIDATE):
        assert not retired
    if token.role is Role.CANDIDATE and token.no_access_since is not None:
        assert not retired


@settings(PURE)
@given(st.none() | infos, instants, st.booleans())
def test_still_in_use(info: TokenInfo | None, since: datetime, anyway: bool) -> None:
    """Held only for a live token used after the baseline, and never when the operator waived the hold."""
    used = rules.still_in_use(info, since, revoke_anyway=anyway)
    if used is not None:
        assert info is not None
        assert info.active
        assert not anyway
        assert used == info.last_used_at
        assert used > since


@settings(PURE)
@given(tokens(), durations, durations)
def test_the_in_use_baseline_is_retirement_plus_margin(
    token: TokenRecord, grace: timedelta, margin: timedelta
) -> None:
    """The baseline is the retirement (else revoke_after minus grace) plus the margin."""
    baseline = rules.in_use_baseline(token, grace, margin)
    if token.revoke_after is None:
        assert baseline is None
    else:
        assert baseline == (token.retired_at or token.revoke_after - grace) + margin


@settings(PURE)
@given(statuses, st.none() | infos)
def test_what_a_read_after_a_refused_delete_proves(status: int | None, info: TokenInfo | None) -> None:
    """Revoked only on GitLab's word (404 from a readable project, revoked, inactive); alive: nothing."""
    proof = rules.revoke_read_proves(status, info)
    alive = info is not None and info.active and not info.revoked
    assert (proof is None) == alive
    if proof is not None:
        assert proof.startswith(f"DELETE {status}, then ")


@settings(PURE)
@given(statuses)
def test_which_delete_answers_are_rechecked(status: int | None) -> None:
    """400, 403, 404 are re-checked; 401/403 mean no rights; 404 or no rights: the project is unreadable."""
    assert rules.delete_rechecked(status) == (status in (400, 403, 404))
    assert rules.denied(status) == (status in (401, 403))
    assert (rules.project_unreadable(status) is True) == (status in (401, 403, 404))


@settings(PURE)
@given(
    st.lists(
        st.builds(TokenOwner, st.sampled_from([KEY, OTHER]), st.just("other"), st.sampled_from(list(Role)))
    ),
    st.integers(1, 10**6),
)
def test_a_token_owned_by_another_target_is_named(owners: list[TokenOwner], token_id: int) -> None:
    """Another key holding it in a live role is named; our own key and finished roles are not."""
    words = rules.owned_elsewhere(owners, KEY, token_id)
    others = [o for o in owners if o.key != KEY and o.role in OWNED_ROLES]
    assert (words is None) == (not others)
    if words is not None:
        assert words.startswith(f"token {token_id} is the ")


@settings(PURE)
@given(tokens(), st.none() | instants, instants, durations)
def test_settling_holds_a_token_a_late_push_may_reach(
    token: TokenRecord, verified: datetime | None, now: datetime, settle: timedelta
) -> None:
    """Only possibly-held or pending tokens inside the settle window are held, with a reason."""
    why = rules.settling(token, verified, now, settle)
    if token.role not in (Role.POSSIBLY_HELD, Role.PENDING_REVOKE):
        assert why is None


@settings(PURE)
@given(gitlab_errors(st.sampled_from([301, 302, 307, 401, 500])), st.integers(1, 10))
def test_a_self_check_is_hopeless_only_on_a_redirect(error: UpstreamError, expected: int) -> None:
    """A refused redirect stops the self-check at once; any other failure waits out the window."""
    assert rules.self_check_problem(error, expected, "t") is not None
    assert rules.self_check_hopeless(error) == (error.status in (301, 302, 307))


@settings(PURE)
@given(infos, st.integers(1, 10**6))
def test_a_self_check_passes_on_its_own_active_id(info: TokenInfo, expected: int) -> None:
    """The new token proves itself only by reading its own id, active."""
    passed = rules.self_check_problem(info, expected, "t") is None
    assert passed == (info.id == expected and info.active)
    assert not rules.self_check_hopeless(info)
