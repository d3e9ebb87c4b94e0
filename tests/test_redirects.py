"""Both adapters against the fakes when an upstream points elsewhere: redirects and next-page links."""

from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest

from rotator.adapters.gitlab import GitLabAPI
from rotator.adapters.infisical import InfisicalAPI, InfisicalAuth
from rotator.core.errors import GitLabError, InfisicalError
from rotator.core.model import TokenRequest
from rotator.core.secret import Secret
from rotator.testing import Fakes, ForeignHost


UA = "rotator/9.9.9-test"
PROJECT = "GET /api/v4/projects/:id"
LIST = "GET /api/v4/projects/:id/access_tokens"
GET = "GET /api/v4/projects/:id/access_tokens/:token_id"
CREATE = "POST /api/v4/projects/:id/access_tokens"
SELF = "GET /api/v4/personal_access_tokens/self"
CONNECTION = "/api/v1/app-connections/gitlab/:connectionId"
#: Every label the GitLab adapter may give the request counter.
ROUTE_LABELS = {route.replace("/api/v4", "") for route in (PROJECT, LIST, GET, CREATE, SELF)} | {
    "DELETE /projects/:id/access_tokens/:token_id",
    "other",
}


@pytest.fixture
def answers() -> list[tuple[str, str, str]]:
    """What the adapters told the request counter: (upstream, route, status)."""
    return []


@pytest.fixture
def gitlab_api(fakes: Fakes, answers: list[tuple[str, str, str]]) -> Iterator[GitLabAPI]:
    """The GitLab adapter with the manager token, counting its answers, never sleeping."""
    api = GitLabAPI(
        fakes.seed.gitlab_url,
        Secret(fakes.seed.manager_token),
        timeout=5.0,
        user_agent=UA,
        sleep=lambda _: None,
        on_response=lambda *labels: answers.append(labels),
    )
    yield api
    api.close()


def _read(api: GitLabAPI, fakes: Fakes, route: str) -> Callable[[], object]:
    project, held = fakes.seed.project_ids[0], fakes.seed.adopt_token_ids[0]
    value = Secret(fakes.gitlab.test_only_token(held).value)
    return {
        PROJECT: lambda: api.project_id(fakes.seed.project_paths[0]),
        GET: lambda: api.get_token(project, held),
        SELF: lambda: api.token_self(value),  # the self-check, with a token that is not the manager's
    }[route]


@pytest.mark.parametrize("route", [PROJECT, GET, SELF])
def test_a_redirected_gitlab_read_is_refused_naming_route_and_location(
    gitlab_api: GitLabAPI, fakes: Fakes, foreign: ForeignHost, route: str
) -> None:
    """A 302 to another host fails the read once, naming route and Location; that host gets nothing."""
    fakes.gitlab.faults.redirect(route, foreign.url, times=None)
    with pytest.raises(GitLabError) as caught:
        _read(gitlab_api, fakes, route)()
    error = caught.value
    assert (error.route, error.status, error.not_applied) == (route.replace("/api/v4", ""), 302, True)
    assert f"redirected to {foreign.url}/api/v4/" in error.message
    assert "\n" not in str(error)
    assert foreign.received() == []
    assert len(fakes.gitlab.calls(route)) == 1


def test_a_redirected_create_is_refused_and_may_have_happened(
    gitlab_api: GitLabAPI, fakes: Fakes, foreign: ForeignHost
) -> None:
    """A create answered 302 is not followed and counts as maybe applied (the engine reconciles by name)."""
    fakes.gitlab.faults.redirect(CREATE, foreign.url)
    expires = fakes.clock.now().date() + timedelta(days=30)
    with pytest.raises(GitLabError) as caught:
        gitlab_api.create_token(fakes.seed.project_ids[0], TokenRequest("x", ("api",), 40, expires))
    assert (caught.value.status, caught.value.not_applied) == (302, False)
    assert foreign.url in caught.value.message
    assert foreign.received() == []


def test_a_foreign_next_page_link_fails_the_whole_list(
    gitlab_api: GitLabAPI, fakes: Fakes, foreign: ForeignHost
) -> None:
    """A token list whose next-page link leaves gitlab.url fails whole, and that link is never fetched."""
    fakes.gitlab.faults.foreign_next(LIST, foreign.url)
    with pytest.raises(GitLabError) as caught:
        gitlab_api.list_tokens(fakes.seed.project_ids[0])
    assert caught.value.route == "GET /projects/:id/access_tokens"
    assert f"next-page link points to {foreign.url}/api/v4/" in caught.value.message
    assert foreign.received() == []


def test_request_counter_labels_come_from_a_fixed_list(
    gitlab_api: GitLabAPI, fakes: Fakes, foreign: ForeignHost, answers: list[tuple[str, str, str]]
) -> None:
    """A path an upstream chose (a sign-in redirect) never becomes a metric label."""
    fakes.gitlab.faults.redirect(PROJECT, f"{foreign.url}/users/sign_in/x7q")
    with pytest.raises(GitLabError):
        gitlab_api.project_id(fakes.seed.project_paths[0])
    gitlab_api.list_tokens(fakes.seed.project_ids[0])
    assert answers
    assert {route for _, route, _ in answers} <= ROUTE_LABELS
    assert ("gitlab", "GET /projects/:id", "302") in answers


@pytest.mark.parametrize(("method", "not_applied"), [("GET", True), ("PATCH", False)])
def test_a_redirected_infisical_call_is_refused_naming_the_location(
    fakes: Fakes, foreign: ForeignHost, method: str, not_applied: bool
) -> None:
    """Even through a client that follows redirects, a 3xx is one error naming Location; no retry."""
    auth = InfisicalAuth.token(Secret(fakes.seed.infisical_token))
    api = InfisicalAPI(
        fakes.seed.infisical_url,
        auth,
        timeout=5.0,
        user_agent=UA,
        client=httpx.Client(follow_redirects=True),
        sleep=lambda _: None,
    )
    connection = api.get_connection(fakes.seed.connection_ids[0])
    fakes.infisical.reset_calls()
    fakes.infisical.faults.redirect(f"{method} {CONNECTION}", foreign.url, status=307, times=None)
    value = Secret(fakes.gitlab.test_only_token(fakes.seed.adopt_token_ids[0]).value)
    send: dict[str, Callable[[], object]] = {
        "GET": lambda: api.get_connection(connection.id),
        "PATCH": lambda: api.push_token(connection, value),
    }
    try:
        with pytest.raises(InfisicalError) as caught:
            send[method]()
    finally:
        api.close()
    assert (caught.value.status, caught.value.not_applied) == (307, not_applied)
    assert f"redirected to {foreign.url}/api/v1/app-connections/gitlab/" in caught.value.message
    assert foreign.received() == []
    assert len(fakes.infisical.calls(f"{method} {CONNECTION}")) == 1
