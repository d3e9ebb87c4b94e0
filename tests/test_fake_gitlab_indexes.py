"""The fake GitLab's indexes answer as a scan of every record would, however long the history."""

import copy
import datetime as dt

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.testing import FakeClock, FakeGitLab
from rotator.testing._gitlab_state import GitLabState, Resource, Token
from rotator.testing._http import Request


NOW = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
EXPIRES = NOW.date() + dt.timedelta(days=30)


class _WalkedError(AssertionError):
    """A lookup walked every token instead of using an index."""


class _Unwalkable(dict[int, Token]):
    """A token table that fails any walk over it: lookups must go through the indexes."""

    def __iter__(self) -> Any:  # noqa: ANN401 - dict's own iterator type
        raise _WalkedError

    def values(self) -> Any:  # noqa: ANN401
        raise _WalkedError

    def items(self) -> Any:  # noqa: ANN401
        raise _WalkedError


def _get(gitlab: FakeGitLab, path: str, value: str) -> tuple[int, Any]:
    request = Request("GET", path, {}, {"private-token": value}, b"", "127.0.0.1", "gitlab.test")
    response = gitlab.dispatch(request)
    assert response is not None
    return response.status, response.body


def test_auth_with_5000_tokens_answers_right_without_walking_them() -> None:
    """With 5,000 tokens, each value authenticates as its own token, and no lookup walks the table."""
    gitlab = FakeGitLab(FakeClock(NOW))
    state = gitlab.state
    user = state.add_user("manager")
    projects = [state.add_resource("project", f"acme/p{i}") for i in range(50)]
    tokens = [
        state.add_token(user, f"t{i}", ["api"], EXPIRES, NOW, resource=projects[i % 50], access_level=40)
        for i in range(5000)
    ]
    tokens[7].revoked = True
    table = _Unwalkable(state.tokens)
    state.tokens = table
    for token in (tokens[0], tokens[2500], tokens[-1]):
        assert _get(gitlab, "/api/v4/personal_access_tokens/self", token.value) == (
            200,
            token.as_json(NOW),
        )
    assert _get(gitlab, "/api/v4/user", tokens[7].value)[0] == 401
    assert _get(gitlab, "/api/v4/user", tokens[8].value[:-1] + "#")[1] == {"message": "401 Unauthorized"}
    assert state.find_resource("project", "acme/p49") is projects[49]
    assert [t.id for t in state.resource_tokens(projects[3])] == [t.id for t in tokens[3::50]]
    assert state.tokens is table  # never rebuilt: the indexes kept up with every add


# ---- the indexes against the scans they replace -----------------------------------------------


def _scan_by_value(state: GitLabState, value: str) -> Token | None:
    return next((t for t in state.tokens.values() if t.value == value), None)


def _scan_resource(state: GitLabState, resource: Resource) -> list[Token]:
    return [t for t in state.tokens.values() if t.resource is resource]


def _scan_path(state: GitLabState, kind: str, path: str) -> Resource | None:
    return next((r for (k, _), r in state.resources.items() if k == kind and r.path == path), None)


def _scan_family(state: GitLabState, token: Token) -> list[int]:
    revoked: list[int] = []
    frontier = {token.id}
    while frontier:
        children = [t for t in state.tokens.values() if t.previous_id in frontier]
        for child in children:
            if not child.revoked:
                child.revoked = True
                revoked.append(child.id)
        frontier = {c.id for c in children}
    return revoked


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("resource"), st.sampled_from(["project", "group"]), st.integers(0, 3)),
        st.tuples(st.just("token"), st.integers(0, 50), st.integers(0, 50)),  # resource pick, parent pick
        st.tuples(st.just("personal"), st.integers(0, 50), st.integers(0, 50)),
        st.tuples(st.just("revoke"), st.integers(0, 50), st.integers(0, 0)),
        st.tuples(st.just("delete"), st.integers(0, 50), st.integers(0, 0)),  # a test's del by hand
    ),
    max_size=40,
)


def _apply(state: GitLabState, op: tuple[str, Any, int]) -> None:
    kind, first, second = op
    ids = sorted(state.tokens)
    resources = list(state.resources.values())
    user = state.users[1]
    if kind == "resource":
        state.add_resource(first, f"acme/r{second}")  # paths repeat: the first of a path wins
    elif kind in {"token", "personal"}:
        resource = resources[first % len(resources)] if kind == "token" and resources else None
        parent = ids[second % len(ids)] if ids and second % 3 else None  # a rotation's new token
        state.add_token(user, "t", ["api"], EXPIRES, NOW, resource=resource, previous_id=parent)
    elif ids and kind == "revoke":
        state.tokens[ids[first % len(ids)]].revoked = True
    elif ids:
        del state.tokens[ids[first % len(ids)]]


@settings(max_examples=150, deadline=None)
@given(ops=_OPS)
def test_every_lookup_agrees_with_a_scan_of_every_record(ops: list[tuple[str, Any, int]]) -> None:
    """By value, by path, by resource (oldest first) and by family, lookups equal the old scans."""
    state = GitLabState()
    state.add_user("manager")
    for op in ops:
        _apply(state, op)
        for token in list(state.tokens.values()):
            assert state.token_by_value(token.value) is _scan_by_value(state, token.value)
        assert state.token_by_value("glpat-unknown") is None
        for resource in state.resources.values():
            assert state.resource_tokens(resource) == _scan_resource(state, resource)
            assert state.find_resource(resource.kind, resource.path) is _scan_path(
                state, resource.kind, resource.path
            )
        assert state.find_resource("project", "nowhere") is None
    for token_id in sorted(state.tokens):
        expected = copy.deepcopy(state)
        found = state.revoke_family(state.tokens[token_id])
        assert found == _scan_family(expected, expected.tokens[token_id])
        assert {i: t.revoked for i, t in state.tokens.items()} == {
            i: t.revoked for i, t in expected.tokens.items()
        }
