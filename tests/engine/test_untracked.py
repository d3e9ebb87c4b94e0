"""A first rotation's untracked tokens: which are named, and the words that say what to do."""

from dataclasses import replace
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.errors import GitLabError
from rotator.core.inventory import Managed
from rotator.core.model import Role, TargetState, TokenInfo
from rotator.core.spec import RotationSpec, TokenShape
from rotator.engine import untracked
from tests.core.samples import KEY, PURE


TARGET = RotationSpec(
    name="app-deploy",
    project="acme/app",
    connection_id=KEY.connection_id,
    token=TokenShape(("api",), 40, timedelta(days=30)),
    token_base_name="app-deploy",
    renew_before=timedelta(days=10),
    grace=timedelta(hours=1),
)
HOLDER = "project acme/app (42)"


def _token(token_id: int, *, active: bool = True, name: str = "by-hand") -> TokenInfo:
    return TokenInfo(token_id, name, active=active, revoked=not active, expires_at=date(2027, 1, 3))


@PURE
@given(
    st.dictionaries(st.integers(1, 40), st.booleans(), max_size=15),
    st.sets(st.integers(1, 40), max_size=10),
    st.none() | st.integers(1, 40),
)
def test_exactly_the_active_tokens_nobody_owns_are_named_never_the_manager(
    listed: dict[int, bool], owned: set[int], manager: int | None
) -> None:
    """Named: each active token no target owns, except the manager's own, in id order; nothing else."""
    owners = {i: Managed("other", Role.CURRENT, adopted=False) for i in owned}
    found = untracked.untracked([_token(i, active=a) for i, a in listed.items()], owners, manager)
    ids = [t.id for t in found.tokens]
    assert ids == sorted(i for i, active in listed.items() if active and i not in owned and i != manager)
    assert found.error is None
    assert found.worth_saying == bool(ids)


@PURE
@given(
    st.dictionaries(st.integers(1, 40), st.sampled_from(["by-hand", "app-x", "app-y", "ci"]), max_size=15),
    st.sets(st.sampled_from(["app-x", "app-y"])),
)
def test_a_token_named_as_a_lost_create_is_never_named(listed: dict[int, str], unsettled: set[str]) -> None:
    """A token named as an unfinished rotation's or a tombstone's is recovery's to revoke: never named."""
    found = untracked.untracked([_token(i, name=n) for i, n in listed.items()], {}, None, unsettled)
    assert [t.id for t in found.tokens] == sorted(i for i, n in listed.items() if n not in unsettled)


def test_a_first_push_awaiting_its_re_read_gets_the_by_hand_words() -> None:
    """Unfinished at PUSHED: the next run verifies without rotating, so no adopt line; revoke by hand."""
    text = untracked.warning(
        TARGET, 0, HOLDER, untracked.Untracked((_token(12),)), rotated=False, resumed=True
    )
    assert "the next run verifies this first rotation's push by re-reading it, and adopt_token_id" in text
    assert "adding it now changes nothing; revoke that token by hand in GitLab" in text
    assert "`adopt_token_id:" not in text


def test_only_a_target_with_no_verified_push_and_no_adopt_token_id_is_concerned() -> None:
    """Before the first verified push and without adopt_token_id: concerned; otherwise not."""
    verified = TargetState(KEY, "app-deploy", verified_hash="abc")
    assert untracked.concerns(TARGET, None)
    assert untracked.concerns(TARGET, TargetState(KEY, "app-deploy"))
    assert not untracked.concerns(TARGET, verified)
    assert not untracked.concerns(replace(TARGET, adopt_token_id=7), None)


def test_one_token_before_the_first_rotation_gets_the_exact_adopt_line() -> None:
    """One token: its id and name, and `adopt_token_id: ID` under the target's place in the config."""
    text = untracked.warning(TARGET, 0, HOLDER, untracked.Untracked((_token(12),)), rotated=False)
    assert text == (
        "project acme/app (42) holds 1 active token no target tracks: 12 by-hand (expires 2027-01-03);"
        " if the connection holds it, add `adopt_token_id: 12` under targets[0] (app-deploy) to have it"
        " revoked after grace; without it, the first rotation leaves it active until it expires"
    )


def test_several_tokens_say_the_connection_holds_at_most_one() -> None:
    """Several tokens: every one listed, at most one held, and the line asks for that one's id."""
    found = untracked.Untracked((_token(12), _token(13, name="ci")))
    text = untracked.warning(TARGET, 2, HOLDER, found, rotated=False)
    assert "holds 2 active tokens no target tracks: 12 by-hand (expires 2027-01-03), 13 ci (" in text
    assert "the connection holds at most one of them: add `adopt_token_id: ID` under targets[2]" in text


def test_after_the_first_verified_rotation_the_words_send_the_operator_to_gitlab() -> None:
    """Rotated: adopt_token_id no longer applies, so no adopt line; revoke by hand instead."""
    for tokens in ((_token(12),), (_token(12), _token(13))):
        text = untracked.warning(TARGET, 0, HOLDER, untracked.Untracked(tokens), rotated=True)
        assert "adding it now changes nothing; revoke that token by hand in GitLab" in text
        assert "`adopt_token_id:" not in text


def test_a_failed_listing_names_route_and_status_and_quotes_nothing() -> None:
    """A refused list: route and status only (never the upstream's message), and the generic hint."""
    error = GitLabError(
        "gitlab", "GET /projects/:id/access_tokens", 500, "boom: glpat-secret", not_applied=True
    )
    found = untracked.failed(error)
    assert found.worth_saying
    text = untracked.warning(TARGET, 0, HOLDER, found, rotated=False)
    assert text.startswith("could not list the tokens: GET /projects/:id/access_tokens 500;")
    assert "add `adopt_token_id: ID` under targets[0] (app-deploy)" in text
    assert "glpat" not in text
    gone = untracked.failed(
        GitLabError("gitlab", "GET /projects/:id/access_tokens", None, "", not_applied=True)
    )
    assert gone.error == "could not list the tokens: GET /projects/:id/access_tokens no response"
