"""python-gitlab, unchanged, drives the fake GitLab's token lifecycle for projects and groups."""

import datetime as dt

import gitlab
import pytest
import requests

from rotator.testing import Fakes
from rotator.testing._gitlab_state import OWNER


def _in(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def _group_with_owner(fakes: Fakes) -> tuple[gitlab.Gitlab, int]:
    owner = fakes.gitlab.seed_user("group-owner")
    group = fakes.gitlab.seed_resource("group", "platform")
    fakes.gitlab.seed_member(group, owner, OWNER)
    pat = fakes.gitlab.seed_personal_token(owner, ["api"])
    return gitlab.Gitlab(fakes.seed.gitlab_url, private_token=pat.value, timeout=10), group.id


def test_create_answers_201_with_token_and_defaults(fakes: Fakes) -> None:
    """Create returns 201 with a glpat- value, access_level 40 by default and a new bot user."""
    response = requests.post(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        json={"name": "ci", "scopes": ["api"], "expires_at": _in(30)},
        timeout=10,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("glpat-")
    assert body["access_level"] == 40
    assert body["active"] is True
    assert body["revoked"] is False
    assert body["expires_at"] == _in(30)
    assert body["resource_type"] == "project"
    assert body["user_id"] != 1  # a fresh bot, not the manager
    bot = fakes.gitlab.state.users[body["user_id"]]
    assert bot.bot
    assert bot.username.startswith(f"project_{body['resource_id']}_bot_")


def test_each_create_makes_its_own_bot_user(gl: gitlab.Gitlab) -> None:
    """Two creates give two distinct bot users and two distinct values."""
    project = gl.projects.get("acme/app", lazy=True)
    first = project.access_tokens.create({"name": "a", "scopes": ["api"], "expires_at": _in(5)})
    second = project.access_tokens.create({"name": "a", "scopes": ["api"], "expires_at": _in(5)})
    assert first.user_id != second.user_id
    assert first.token != second.token
    assert first.id != second.id


def test_list_never_includes_token_and_keeps_revoked(gl: gitlab.Gitlab) -> None:
    """The list hides values and still shows revoked tokens as active: false."""
    project = gl.projects.get("acme/app", lazy=True)
    made = project.access_tokens.create({"name": "gone", "scopes": ["read_api"], "expires_at": _in(5)})
    project.access_tokens.delete(made.id)
    listed = {t.id: t for t in project.access_tokens.list(get_all=True)}
    assert "token" not in listed[made.id].attributes
    assert listed[made.id].active is False
    assert listed[made.id].revoked is True


def test_get_returns_the_token_without_value(gl: gitlab.Gitlab, fakes: Fakes) -> None:
    """Get by id shows the record without its value."""
    token_id = fakes.seed.adopt_token_ids[0]
    token = gl.projects.get("acme/app", lazy=True).access_tokens.get(token_id)
    assert token.id == token_id
    assert token.name == "app-deploy"
    assert "token" not in token.attributes


def test_list_pagination_headers_and_get_all(gl: gitlab.Gitlab, fakes: Fakes) -> None:
    """25 tokens: page 1 holds 20 with X-Total/X-Next-Page/Link, get_all follows Link to all."""
    project = gl.projects.get("acme/app", lazy=True)
    for index in range(24):
        project.access_tokens.create({"name": f"t{index}", "scopes": ["api"], "expires_at": _in(3)})
    response = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        timeout=10,
    )
    assert len(response.json()) == 20
    assert response.headers["X-Total"] == "25"
    assert response.headers["X-Total-Pages"] == "2"
    assert response.headers["X-Next-Page"] == "2"
    assert 'rel="next"' in response.headers["Link"]
    assert len(project.access_tokens.list(get_all=True)) == 25
    last = project.access_tokens.list(page=2, per_page=20)
    assert len(last) == 5


def test_list_filters_state_and_search(gl: gitlab.Gitlab) -> None:
    """state=active/inactive and search (a case-insensitive substring) filter the list."""
    project = gl.projects.get("acme/app", lazy=True)
    kept = project.access_tokens.create({"name": "Deploy-2026", "scopes": ["api"], "expires_at": _in(9)})
    dead = project.access_tokens.create({"name": "deploy-old", "scopes": ["api"], "expires_at": _in(9)})
    project.access_tokens.delete(dead.id)
    active = {t.id for t in project.access_tokens.list(get_all=True, state="active")}
    inactive = {t.id for t in project.access_tokens.list(get_all=True, state="inactive")}
    assert kept.id in active
    assert dead.id in inactive
    assert dead.id not in active
    found = {t.name for t in project.access_tokens.list(get_all=True, search="deploy-")}
    assert found == {"Deploy-2026", "deploy-old"}


def test_old_servers_ignore_filters(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """With filters unsupported (GitLab before 17.2), search returns every token."""
    fakes.gitlab.supports_token_filters = False
    tokens = gl.projects.get("acme/app", lazy=True).access_tokens.list(get_all=True, search="nothing")
    assert len(tokens) == 1


def test_rotate_gives_new_id_revokes_old_and_defaults_to_seven_days(gl: gitlab.Gitlab) -> None:
    """Rotate answers a dict with a new id and value; the old token is revoked; expiry +7 days."""
    project = gl.projects.get("acme/app", lazy=True)
    old = project.access_tokens.create({"name": "r", "scopes": ["api"], "expires_at": _in(30)})
    new = project.access_tokens.rotate(old.id)
    assert new["id"] != old.id
    assert new["token"] != old.token
    assert new["name"] == "r"
    assert new["user_id"] == old.user_id
    assert new["expires_at"] == _in(7)
    assert project.access_tokens.get(old.id).revoked is True
    explicit = project.access_tokens.rotate(new["id"], expires_at=_in(60))
    assert explicit["expires_at"] == _in(60)


def test_self_rotate_with_the_token_itself(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A project token rotates itself on …/self/rotate; the caller's old value then dies."""
    project = gl.projects.get("acme/app", lazy=True)
    made = project.access_tokens.create({"name": "self", "scopes": ["api"], "expires_at": _in(30)})
    as_bot = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=made.token, timeout=10)
    new = as_bot.projects.get("acme/app", lazy=True).access_tokens.rotate("self", expires_at=_in(20))
    assert new["id"] != made.id
    assert new["expires_at"] == _in(20)
    with pytest.raises(gitlab.GitlabAuthenticationError) as raised:
        as_bot.auth()
    assert raised.value.error_message == "invalid_token"


def test_revoke_answers_204_and_the_token_stops_working(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """DELETE answers 204; the revoked token then gets the invalid_token 401."""
    project = gl.projects.get("acme/app", lazy=True)
    made = project.access_tokens.create({"name": "bye", "scopes": ["api"], "expires_at": _in(3)})
    response = requests.delete(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens/{made.id}",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        timeout=10,
    )
    assert response.status_code == 204
    again = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/user", headers={"PRIVATE-TOKEN": made.token}, timeout=10
    )
    assert again.status_code == 401
    assert again.json()["error_description"].startswith("Token was revoked")
    assert "WWW-Authenticate" in again.headers


def test_personal_access_tokens_self_and_user_for_a_bot(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A fresh project token can read /personal_access_tokens/self and /user."""
    made = gl.projects.get("acme/app", lazy=True).access_tokens.create(
        {"name": "probe", "scopes": ["read_api"], "expires_at": _in(3)}
    )
    as_bot = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=made.token, timeout=10)
    me = as_bot.personal_access_tokens.get("self")
    assert me.id == made.id
    assert me.active is True
    as_bot.auth()
    assert as_bot.user is not None
    assert as_bot.user.bot is True


def test_self_endpoint_accepts_any_scope(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """/personal_access_tokens/self works even for a read_repository-only token."""
    made = gl.projects.get("acme/app", lazy=True).access_tokens.create(
        {"name": "repo", "scopes": ["read_repository"], "expires_at": _in(3)}
    )
    as_bot = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=made.token, timeout=10)
    assert as_bot.personal_access_tokens.get("self").scopes == ["read_repository"]


def test_bearer_header_authenticates_too(fakes: Fakes) -> None:
    """Authorization: Bearer works like PRIVATE-TOKEN."""
    response = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/user",
        headers={"Authorization": f"Bearer {fakes.seed.manager_token}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["username"] == "rotator-manager"


def test_group_tokens_full_lifecycle(fakes: Fakes) -> None:
    """Group tokens: create (201), list, get, rotate, self-rotate and revoke, by an Owner."""
    owner, group_id = _group_with_owner(fakes)
    group = owner.groups.get(group_id, lazy=True)
    made = group.access_tokens.create({"name": "grp", "scopes": ["api"], "expires_at": _in(10)})
    assert made.resource_type == "group"
    assert [t.id for t in group.access_tokens.list(get_all=True)] == [made.id]
    assert group.access_tokens.get(made.id).name == "grp"
    rotated = group.access_tokens.rotate(made.id, expires_at=_in(11))
    as_bot = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=rotated["token"], timeout=10)
    selfed = as_bot.groups.get(group_id, lazy=True).access_tokens.rotate("self", expires_at=_in(12))
    group.access_tokens.delete(selfed["id"])
    assert group.access_tokens.get(selfed["id"]).active is False


def test_expiry_is_a_utc_date(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A token works the day before expires_at and is dead from 00:00 UTC on that date."""
    made = gl.projects.get("acme/app", lazy=True).access_tokens.create(
        {"name": "short", "scopes": ["api"], "expires_at": _in(2)}
    )
    today = fakes.clock.now().date()
    fakes.clock.set(dt.datetime.combine(today + dt.timedelta(days=1), dt.time(23, 59, 50), dt.UTC))
    user = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/user", headers={"PRIVATE-TOKEN": made.token}, timeout=10
    )
    assert user.status_code == 200
    fakes.clock.set(dt.datetime.combine(today + dt.timedelta(days=2), dt.time(0, 0, 1), dt.UTC))
    user = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/user", headers={"PRIVATE-TOKEN": made.token}, timeout=10
    )
    assert user.status_code == 401
    assert user.json()["error_description"].startswith("Token is expired")
    listed = gl.projects.get("acme/app", lazy=True).access_tokens.get(made.id)
    assert listed.active is False
    assert listed.revoked is False


def test_create_without_expiry_gets_the_maximum(gl: gitlab.Gitlab) -> None:
    """Without expires_at, a new token gets the 365-day maximum."""
    made = gl.projects.get("acme/app", lazy=True).access_tokens.create({"name": "max", "scopes": ["api"]})
    assert made.expires_at == _in(365)


def test_last_used_at_first_use_then_every_ten_minutes(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """last_used_at is set on first use and then moves at most every 10 minutes."""
    made = gl.projects.get("acme/app", lazy=True).access_tokens.create(
        {"name": "used", "scopes": ["api"], "expires_at": _in(5)}
    )
    record = fakes.gitlab.test_only_token(made.id)
    assert record.last_used_at is None
    headers = {"PRIVATE-TOKEN": made.token}
    requests.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=10)
    first = record.last_used_at
    assert first is not None
    fakes.clock.advance(dt.timedelta(minutes=9))
    requests.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=10)
    assert record.last_used_at == first
    fakes.clock.advance(dt.timedelta(minutes=2))
    requests.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=10)
    assert record.last_used_at is not None
    assert record.last_used_at > first
