"""python-gitlab 8.x's service-account managers drive the fake GitLab's service-account routes."""

import datetime as dt

import gitlab
import pytest
import requests

from gitlab.v4.objects import GroupServiceAccount, ProjectServiceAccount

from rotator.testing import Fakes
from rotator.testing._gitlab_state import DEVELOPER, MAINTAINER, OWNER, Resource


def _in(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def _client(fakes: Fakes, owner: Resource, role: int, *, admin: bool = False) -> gitlab.Gitlab:
    user = fakes.gitlab.seed_user(f"caller-{role}-{owner.id}-{owner.kind}", admin=admin)
    fakes.gitlab.seed_member(owner, user, role)
    pat = fakes.gitlab.seed_personal_token(user, ["api"])
    return gitlab.Gitlab(fakes.seed.gitlab_url, private_token=pat.value, timeout=10)


@pytest.fixture
def group(fakes: Fakes) -> Resource:
    """A top-level group with nobody in it yet."""
    return fakes.gitlab.seed_resource("group", "platform")


def test_group_owner_creates_lists_rotates_and_revokes(fakes: Fakes, group: Resource) -> None:
    """A group Owner runs a service account token's whole lifecycle through python-gitlab."""
    gl = _client(fakes, group, OWNER)
    account = gl.groups.get(group.id, lazy=True).service_accounts.create({"name": "deployer"})
    assert account.username.startswith(f"service_account_group_{group.id}_")
    tokens = account.access_tokens
    made = tokens.create({"name": "ci", "scopes": ["api", "read_user"], "expires_at": _in(30)})
    assert made.token.startswith("glpat-")
    assert made.user_id == account.id  # the same user: no bot is created
    assert made.scopes == ["api", "read_user"]
    assert "access_level" not in made.attributes
    rotated = tokens.rotate(made.id, expires_at=_in(20))
    assert rotated["user_id"] == account.id
    assert rotated["expires_at"] == _in(20)
    listed = {t.id: t for t in tokens.list(get_all=True)}
    assert listed[made.id].revoked is True
    assert listed[rotated["id"]].active is True
    assert [t.id for t in tokens.list(state="active", get_all=True)] == [rotated["id"]]
    assert [t.id for t in tokens.list(search="c", state="inactive", get_all=True)] == [made.id]
    tokens.delete(rotated["id"])
    assert fakes.gitlab.test_only_token(rotated["id"]).revoked


def test_project_maintainer_manages_a_project_service_account(fakes: Fakes) -> None:
    """A project Maintainer creates and revokes tokens of the project's service account."""
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    account = fakes.gitlab.seed_service_account(project)
    gl = _client(fakes, project, MAINTAINER)
    sa = ProjectServiceAccount(gl.projects.get(project.id, lazy=True).service_accounts, {"id": account.id})
    made = sa.access_tokens.create({"name": "deploy", "scopes": ["read_api"], "expires_at": _in(9)})
    assert [t.id for t in sa.access_tokens.list(get_all=True)] == [made.id]
    sa.access_tokens.delete(made.id)
    sa.access_tokens.delete(made.id)  # revoking twice still answers 204


def test_who_may_call_what(fakes: Fakes, group: Resource) -> None:
    """A Maintainer of a group gets 403; a stranger gets the group's 404; a foreign account 404 User."""
    account = fakes.gitlab.seed_service_account(group)
    maintainer = _client(fakes, group, MAINTAINER)
    sa = GroupServiceAccount(maintainer.groups.get(group.id, lazy=True).service_accounts, {"id": account.id})
    with pytest.raises(gitlab.GitlabListError) as denied:
        sa.access_tokens.list()
    assert denied.value.response_code == 403
    assert denied.value.error_message == "403 Forbidden"
    stranger = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=fakes.seed.manager_token, timeout=10)
    hidden = GroupServiceAccount(
        stranger.groups.get(group.id, lazy=True).service_accounts, {"id": account.id}
    )
    with pytest.raises(gitlab.GitlabListError) as missing:
        hidden.access_tokens.list()
    assert (missing.value.response_code, missing.value.error_message) == (404, "404 Group Not Found")
    other = fakes.gitlab.seed_service_account(None)
    owner = _client(fakes, group, OWNER)
    foreign = GroupServiceAccount(owner.groups.get(group.id, lazy=True).service_accounts, {"id": other.id})
    with pytest.raises(gitlab.GitlabCreateError) as unknown:
        foreign.access_tokens.create({"name": "x", "scopes": ["api"]})
    assert (unknown.value.response_code, unknown.value.error_message) == (404, "404 User Not Found")
    developer = _client(fakes, group, DEVELOPER)
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        developer.groups.get(group.id, lazy=True).service_accounts.create({})
    assert refused.value.response_code == 403


def test_token_errors_and_expiry_rules(fakes: Fakes, group: Resource) -> None:
    """Unknown token 404, too-late expiry 422, default expiry the maximum, bad scope 400."""
    gl = _client(fakes, group, OWNER)
    account = gl.groups.get(group.id, lazy=True).service_accounts.create({})
    tokens = account.access_tokens
    with pytest.raises(gitlab.GitlabDeleteError) as gone:
        tokens.delete(999_999)
    assert gone.value.error_message == "404 Personal Access Token Not Found"
    with pytest.raises(gitlab.GitlabCreateError) as late:
        tokens.create({"name": "x", "scopes": ["api"], "expires_at": _in(400)})
    assert late.value.response_code == 422
    assert str(late.value.error_message).startswith("Expires at must be before ")
    made = tokens.create({"name": "x", "scopes": ["api"]})
    assert made.expires_at == _in(365)
    with pytest.raises(gitlab.GitlabCreateError) as bad:
        tokens.create({"name": "x", "scopes": ["sudo"]})
    assert bad.value.error_message == "scopes does not have a valid value"
    tokens.delete(made.id)
    with pytest.raises(gitlab.GitlabRotateError) as revoked:
        tokens.rotate(made.id)
    assert revoked.value.error_message == "400 Bad request - Token already revoked"


def test_rotate_defaults_to_a_week_and_reuse_revokes_the_family(fakes: Fakes, group: Resource) -> None:
    """Rotate without expiry gives 7 days; a revoked token presented on a rotate path kills its heirs."""
    account = fakes.gitlab.seed_service_account(group)
    old = fakes.gitlab.seed_personal_token(account, ["api"], days=30)
    owner = _client(fakes, group, OWNER)
    sa = GroupServiceAccount(owner.groups.get(group.id, lazy=True).service_accounts, {"id": account.id})
    heir = sa.access_tokens.rotate(old.id)
    assert heir["expires_at"] == _in(7)
    answer = requests.post(
        f"{fakes.seed.gitlab_url}/api/v4/personal_access_tokens/self/rotate",
        headers={"PRIVATE-TOKEN": old.value},
        timeout=10,
    )
    assert answer.status_code == 401
    assert fakes.gitlab.test_only_token(heir["id"]).revoked
    assert fakes.gitlab.test_only_reuse_detections() == [old.id]


def test_instance_service_account_through_the_personal_token_api(fakes: Fakes) -> None:
    """An admin creates, lists, reads, rotates and revokes an instance service account's tokens."""
    admin = fakes.gitlab.seed_user("root", admin=True)
    pat = fakes.gitlab.seed_personal_token(admin, ["api"])
    gl = gitlab.Gitlab(fakes.seed.gitlab_url, private_token=pat.value, timeout=10)
    account = gl.service_accounts.create({"name": "robot"})
    user = gl.users.get(account.id, lazy=True)
    made = user.personal_access_tokens.create({"name": "ci", "scopes": ["api"], "expires_at": _in(30)})
    assert made.user_id == account.id
    assert [t.id for t in gl.personal_access_tokens.list(user_id=account.id, get_all=True)] == [made.id]
    assert gl.personal_access_tokens.get(made.id).name == "ci"
    rotated = gl.personal_access_tokens.rotate(made.id, expires_at=_in(10))
    assert rotated["expires_at"] == _in(10)
    gl.personal_access_tokens.delete(rotated["id"])
    assert fakes.gitlab.test_only_token(rotated["id"]).revoked
    with pytest.raises(gitlab.GitlabGetError) as missing:
        gl.personal_access_tokens.get(999_999)
    assert missing.value.response_code == 404


def test_personal_token_api_is_admin_only_for_other_users(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A non-admin may not create for another user (403), list theirs (401) or revoke theirs (400)."""
    account = fakes.gitlab.seed_service_account(None)
    theirs = fakes.gitlab.seed_personal_token(account, ["api"])
    with pytest.raises(gitlab.GitlabCreateError) as create:
        gl.users.get(account.id, lazy=True).personal_access_tokens.create({"name": "x", "scopes": ["api"]})
    assert (create.value.response_code, create.value.error_message) == (403, "403 Forbidden")
    with pytest.raises(gitlab.GitlabAuthenticationError) as listing:
        gl.personal_access_tokens.list(user_id=account.id)
    assert listing.value.response_code == 401
    with pytest.raises(gitlab.GitlabDeleteError) as revoke:
        gl.personal_access_tokens.delete(theirs.id)
    assert (revoke.value.response_code, revoke.value.error_message) == (400, "400 Bad request")
    assert not fakes.gitlab.test_only_token(theirs.id).revoked


def test_personal_token_api_answers_a_non_admin_401_and_an_admin_404(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """GET and rotate of another user's token (or none): 401 for a non-admin, 404 for an admin."""
    account = fakes.gitlab.seed_service_account(None)
    theirs = fakes.gitlab.seed_personal_token(account, ["api"])
    root = fakes.gitlab.seed_user("root", admin=True)
    admin = gitlab.Gitlab(
        fakes.seed.gitlab_url, private_token=fakes.gitlab.seed_personal_token(root, ["api"]).value, timeout=10
    )
    for token_id in (theirs.id, 999_999):
        with pytest.raises(gitlab.GitlabAuthenticationError) as read:
            gl.personal_access_tokens.get(token_id)
        with pytest.raises(gitlab.GitlabAuthenticationError) as rotate:
            gl.personal_access_tokens.rotate(token_id)
        assert (read.value.response_code, rotate.value.response_code) == (401, 401)
    with pytest.raises(gitlab.GitlabGetError) as missing:
        admin.personal_access_tokens.get(999_999)
    assert missing.value.response_code == 404
    with pytest.raises(gitlab.GitlabDeleteError) as gone:
        gl.personal_access_tokens.delete(999_999)
    assert (gone.value.response_code, gone.value.error_message) == (404, "404 Not Found")
    with pytest.raises(gitlab.GitlabListError) as nobody:
        admin.personal_access_tokens.list(user_id=999_999)
    assert (nobody.value.response_code, nobody.value.error_message) == (404, "404 User Not Found")
    assert not fakes.gitlab.test_only_token(theirs.id).revoked
