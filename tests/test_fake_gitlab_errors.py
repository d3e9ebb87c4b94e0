"""The fake GitLab's error statuses, bodies and headers, as python-gitlab and raw HTTP see them."""

import datetime as dt
import json

import gitlab
import pytest
import requests

from gitlab.v4.objects import Project

from rotator.testing import FakeGitLab, Fakes
from rotator.testing._gitlab_state import DEVELOPER, OWNER


def _in(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def _body(error: gitlab.GitlabError) -> object:
    assert error.response_body is not None
    return json.loads(error.response_body)


def _project(gl: gitlab.Gitlab) -> Project:
    return gl.projects.get("acme/app", lazy=True)


def test_too_far_expiry_is_400_with_the_limit_date(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """expires_at beyond today+365 gives 400 'Expires at must be before <today+365>'."""
    limit = fakes.clock.now().date() + dt.timedelta(days=365)
    with pytest.raises(gitlab.GitlabCreateError) as raised:
        _project(gl).access_tokens.create({"name": "x", "scopes": ["api"], "expires_at": _in(366)})
    assert raised.value.response_code == 400
    assert _body(raised.value) == {"message": f"400 Bad request - Expires at must be before {limit}"}
    _project(gl).access_tokens.create({"name": "x", "scopes": ["api"], "expires_at": _in(365)})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"scopes": ["api"]}, {"error": "name is missing"}),
        ({"name": "x"}, {"error": "scopes is missing"}),
        ({"name": "x", "scopes": ["read_user"]}, {"error": "scopes does not have a valid value"}),
        ({"name": "x", "scopes": ["sudo"]}, {"error": "scopes does not have a valid value"}),
        (
            {"name": "x", "scopes": ["api"], "access_level": 0},
            {"error": "access_level does not have a valid value"},
        ),
        (
            {"name": "x", "scopes": ["api"], "expires_at": "soon"},
            {"error": "expires_at is invalid"},
        ),
    ],
)
def test_create_parameter_validation(fakes: Fakes, data: dict[str, object], expected: object) -> None:
    """Grape's parameter errors are 400 {"error": "..."}."""
    response = requests.post(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        json=data,
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == expected


def test_a_developer_cannot_create_and_python_gitlab_raises_create_error(fakes: Fakes) -> None:
    """A Developer gets 400 'User does not have permission to create project access token'."""
    dev = fakes.gitlab.seed_user("dev")
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    fakes.gitlab.seed_member(project, dev, DEVELOPER)
    client = gitlab.Gitlab(
        fakes.seed.gitlab_url, private_token=fakes.gitlab.seed_personal_token(dev, ["api"]).value
    )
    with pytest.raises(gitlab.GitlabCreateError) as raised:
        _project(client).access_tokens.create({"name": "x", "scopes": ["api"], "expires_at": _in(3)})
    assert _body(raised.value) == {
        "message": "400 Bad request - User does not have permission to create project access token"
    }
    with pytest.raises(gitlab.GitlabAuthenticationError) as listing:
        _project(client).access_tokens.list(get_all=True)
    assert _body(listing.value) == {"message": "401 Unauthorized"}


def test_a_project_token_cannot_create_tokens(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A project access token gets the 400 permission error on create, yet may list siblings."""
    made = _project(gl).access_tokens.create({"name": "bot", "scopes": ["api"], "expires_at": _in(3)})
    as_bot = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=made.token)
    assert len(_project(as_bot).access_tokens.list(get_all=True)) == 2
    with pytest.raises(gitlab.GitlabCreateError) as raised:
        _project(as_bot).access_tokens.create({"name": "x", "scopes": ["api"], "expires_at": _in(3)})
    assert raised.value.response_code == 400


def test_a_project_token_cannot_rotate_another(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """Rotating a different token with a project token is 401 {"message":"401 Unauthorized"}."""
    made = _project(gl).access_tokens.create({"name": "bot", "scopes": ["api"], "expires_at": _in(3)})
    as_bot = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=made.token)
    with pytest.raises(gitlab.GitlabAuthenticationError) as raised:
        _project(as_bot).access_tokens.rotate(fakes.seed.adopt_token_ids[0], expires_at=_in(3))
    assert _body(raised.value) == {"message": "401 Unauthorized"}


def test_access_level_above_the_creator_is_refused(gl: gitlab.Gitlab) -> None:
    """A Maintainer cannot create an Owner token."""
    with pytest.raises(gitlab.GitlabCreateError) as raised:
        _project(gl).access_tokens.create(
            {"name": "x", "scopes": ["api"], "expires_at": _in(3), "access_level": OWNER}
        )
    assert _body(raised.value) == {
        "message": "400 Bad request - Access level of the token contains permissions"
        " not held by the creating user"
    }


def test_unknown_project_is_404(gl: gitlab.Gitlab) -> None:
    """An unknown or invisible project is 404 Project Not Found."""
    with pytest.raises(gitlab.GitlabListError) as raised:
        gl.projects.get("nobody/nothing", lazy=True).access_tokens.list(get_all=True)
    assert raised.value.response_code == 404
    assert _body(raised.value) == {"message": "404 Project Not Found"}


def test_revoke_unknown_or_foreign_token_is_404(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """DELETE of an unknown id or another project's token is 404 project Access Token Not Found."""
    foreign = fakes.seed.adopt_token_ids[1]  # belongs to acme/api
    for token_id in (9999, foreign):
        with pytest.raises(gitlab.GitlabDeleteError) as raised:
            _project(gl).access_tokens.delete(token_id)
        assert raised.value.response_code == 404
        assert _body(raised.value) == {"message": "404 project Access Token Not Found"}
    assert fakes.gitlab.test_only_token(foreign).revoked is False


def test_get_unknown_token_is_404(gl: gitlab.Gitlab) -> None:
    """GET of an unknown token id, or 'self', is 404."""
    for token_id in (424242, "self"):
        with pytest.raises(gitlab.GitlabGetError) as raised:
            _project(gl).access_tokens.get(token_id)
        assert raised.value.response_code == 404


def test_rotate_unknown_token_is_401_for_non_admins(gl: gitlab.Gitlab) -> None:
    """Rotating an unknown id is 401 for a non-admin (only admins learn it does not exist)."""
    with pytest.raises(gitlab.GitlabAuthenticationError):
        _project(gl).access_tokens.rotate(424242, expires_at=_in(3))


def test_rotate_a_revoked_token_by_id_is_400(gl: gitlab.Gitlab) -> None:
    """A valid PAT rotating an already-revoked token gets 400 Token already revoked."""
    made = _project(gl).access_tokens.create({"name": "r", "scopes": ["api"], "expires_at": _in(3)})
    _project(gl).access_tokens.delete(made.id)
    with pytest.raises(gitlab.GitlabRotateError) as raised:
        _project(gl).access_tokens.rotate(made.id, expires_at=_in(3))
    assert _body(raised.value) == {"message": "400 Bad request - Token already revoked"}


def test_self_rotate_by_a_human_is_405(gl: gitlab.Gitlab) -> None:
    """Self-rotate with a human's PAT on a project path is 405."""
    with pytest.raises(gitlab.GitlabRotateError) as raised:
        _project(gl).access_tokens.rotate("self", expires_at=_in(3))
    assert raised.value.response_code == 405


def test_reuse_detection_revokes_the_whole_family(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A revoked token presented on a rotate path revokes every active descendant."""
    first = _project(gl).access_tokens.create({"name": "fam", "scopes": ["api"], "expires_at": _in(30)})
    as_first = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=first.token)
    second = _project(as_first).access_tokens.rotate("self", expires_at=_in(30))
    third = _project(gl).access_tokens.rotate(second["id"], expires_at=_in(30))
    assert fakes.gitlab.test_only_token(third["id"]).active(fakes.clock.now())
    with pytest.raises(gitlab.GitlabAuthenticationError) as raised:
        _project(as_first).access_tokens.rotate("self", expires_at=_in(30))
    assert _body(raised.value) == {
        "error": "invalid_token",
        "error_description": "Token was revoked. You have to re-authorize from the user.",
    }
    assert fakes.gitlab.test_only_token(third["id"]).revoked is True


def test_a_revoked_token_elsewhere_does_not_revoke_the_family(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A revoked token on a non-rotate path is refused but revokes nothing else."""
    first = _project(gl).access_tokens.create({"name": "fam", "scopes": ["api"], "expires_at": _in(30)})
    second = _project(gl).access_tokens.rotate(first.id, expires_at=_in(30))
    stale = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/user", headers={"PRIVATE-TOKEN": first.token}, timeout=10
    )
    assert stale.status_code == 401
    assert fakes.gitlab.test_only_token(second["id"]).revoked is False


def test_insufficient_scope_is_403(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A read_api token may list but not create: 403 insufficient_scope with the scope named."""
    reader = fakes.gitlab.seed_personal_token(fakes.gitlab.state.users[1], ["read_api"])
    response = requests.post(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
        headers={"PRIVATE-TOKEN": reader.value},
        json={"name": "x", "scopes": ["api"]},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "The request requires higher privileges than provided by the access token.",
        "scope": "api",
    }
    del gl


def test_unknown_credential_and_no_credential_are_401_unauthorized(fakes: Fakes) -> None:
    """No token, or a token GitLab never issued: 401 {"message":"401 Unauthorized"}."""
    for headers in ({}, {"PRIVATE-TOKEN": "glpat-never-issued"}):
        response = requests.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == {"message": "401 Unauthorized"}


def test_unknown_route_is_grape_404(fakes: Fakes) -> None:
    """A path with no route answers Grape's 404 body."""
    response = requests.get(f"{fakes.seed.gitlab_url}/api/v4/nothing", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": "404 Not Found"}


def test_throttle_answers_429_with_rate_limit_headers() -> None:
    """With a per-minute limit, the excess request is 429 'Retry later' with Retry-After and RateLimit-*."""
    fake = FakeGitLab(requests_per_minute=2)
    user = fake.seed_user("u")
    token = fake.seed_personal_token(user, ["api"])
    with fake.running():
        headers = {"PRIVATE-TOKEN": token.value}
        ok = requests.get(f"{fake.url}/api/v4/user", headers=headers, timeout=10)
        assert ok.headers["RateLimit-Limit"] == "2"
        requests.get(f"{fake.url}/api/v4/user", headers=headers, timeout=10)
        refused = requests.get(f"{fake.url}/api/v4/user", headers=headers, timeout=10)
    assert refused.status_code == 429
    assert refused.text == "Retry later\n"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) > 1_700_000_000
    assert fake.call_counts() == {"GET /api/v4/user": 3}


def test_python_gitlab_honours_the_fakes_429(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """An injected 429 with Retry-After: 1 is retried by python-gitlab and then succeeds."""
    route = "GET /api/v4/projects/:id/access_tokens"
    fakes.gitlab.faults.fail(route, 429)
    assert len(_project(gl).access_tokens.list(get_all=True)) == 1
    assert fakes.gitlab.call_counts()[route] == 2
