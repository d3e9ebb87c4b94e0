"""Regression tests for fidelity gaps found in review of the fakes."""

import datetime as dt

import gitlab
import httpx
import pytest
import requests

from rotator.testing import Fakes


def _in(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def test_a_stopped_fake_refuses_pooled_keep_alive_connections(fakes: Fakes) -> None:
    """After stop(), a client's pooled connection gets no more answers."""
    with requests.Session() as session:
        headers = {"PRIVATE-TOKEN": fakes.seed.manager_token}
        assert session.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=5).ok
        fakes.gitlab.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=5)


def test_null_credentials_are_a_type_error(fakes: Fakes, infisical: httpx.Client) -> None:
    """credentials: null is 422 (optional, not nullable), not a metadata-only PATCH."""
    answer = infisical.patch(
        f"/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}", json={"credentials": None}
    )
    assert answer.status_code == 422
    assert answer.json()["message"][0]["path"] == ["credentials"]


def test_an_empty_access_token_is_a_plain_too_small_issue(fakes: Fakes, infisical: httpx.Client) -> None:
    """A refinement failure in the first union member is reported as that member's issue."""
    body = {"credentials": {"accessToken": " ", "accessTokenType": "project"}}
    answer = infisical.patch(f"/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}", json=body)
    issue = answer.json()["message"][0]
    assert (issue["code"], issue["path"], issue["message"]) == (
        "too_small",
        ["credentials", "accessToken"],
        "Access Token required",
    )


def test_a_bad_uuid_reports_only_the_param(infisical: httpx.Client) -> None:
    """Params are validated before the body: a bad uuid yields only its own issue."""
    answer = infisical.patch("/api/v1/app-connections/gitlab/nope", json={"name": "Bad Name"})
    assert [issue["path"] for issue in answer.json()["message"]] == [["connectionId"]]


def test_a_non_bearer_header_is_a_token_error(fakes: Fakes) -> None:
    """Only an absent header is 'Token missing'; a Basic header is a malformed JWT: 403 TokenError."""
    url = f"{fakes.seed.infisical_url}/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}"
    answer = httpx.get(url, headers={"Authorization": "Basic abc"})
    assert (answer.status_code, answer.json()["error"]) == (403, "TokenError")


def test_link_headers_are_url_encoded(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A search with '&' and spaces survives into page 2 through the Link header."""
    project = gl.projects.get("acme/app", lazy=True)
    for index in range(3):
        project.access_tokens.create({"name": f"a&b c{index}", "scopes": ["api"], "expires_at": _in(3)})
    found = project.access_tokens.list(get_all=True, search="a&b c", per_page=1)
    assert len(found) == 3
    del fakes


def test_created_after_filters(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """created_after keeps only tokens created at or after the instant."""
    project = gl.projects.get("acme/app", lazy=True)
    fakes.clock.advance(dt.timedelta(hours=1))
    cut = fakes.clock.now()
    made = project.access_tokens.create({"name": "late", "scopes": ["api"], "expires_at": _in(5)})
    listed = project.access_tokens.list(get_all=True, created_after=cut.isoformat())
    assert [t.id for t in listed] == [made.id]


def test_state_filter_compares_dates_like_sql(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """On its expiry day a token is refused, yet state=active still lists it (expires_at < CURRENT_DATE)."""
    project = gl.projects.get("acme/app", lazy=True)
    made = project.access_tokens.create({"name": "edge", "scopes": ["api"], "expires_at": _in(1)})
    fakes.clock.set(dt.datetime.combine(fakes.clock.now().date() + dt.timedelta(days=1), dt.time(12), dt.UTC))
    active = {t.id for t in project.access_tokens.list(get_all=True, state="active")}
    assert made.id in active
    user = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/user", headers={"PRIVATE-TOKEN": made.token}, timeout=5
    )
    assert user.status_code == 401


def test_self_rotate_validates_params_before_the_bot_check(fakes: Fakes) -> None:
    """A human sending a bad expires_at to self/rotate gets Grape's 400, not 405."""
    answer = requests.post(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens/self/rotate",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        json={"expires_at": "later"},
        timeout=5,
    )
    assert (answer.status_code, answer.json()) == (400, {"error": "expires_at is invalid"})
