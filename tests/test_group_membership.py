"""The manager's role on a group: ``GET /groups/:id/members/all/:user_id``, in the fake and the adapter.

GitLab's ``GET /groups/:id`` may leave ``permissions`` out, so the adapter asks the members API for
the manager's own membership (inherited ones count); the fake answers it as ``lib/api/members.rb``
does: the highest role, ``404 Not found`` for no member, the group's own 404 when it is unreadable.
"""

from collections.abc import Iterator

import gitlab
import pytest

from rotator.adapters.gitlab import GitLabAPI
from rotator.core.errors import GitLabError
from rotator.core.model import Kind, Owner
from rotator.core.secret import Secret
from rotator.testing import Fakes
from rotator.testing._gitlab_state import DEVELOPER, MAINTAINER, OWNER, Resource


MEMBER = "GET /api/v4/groups/:id/members/all/:user_id"


@pytest.fixture
def api(fakes: Fakes) -> Iterator[GitLabAPI]:
    """The adapter with the seeded manager token."""
    adapter = GitLabAPI(
        fakes.seed.gitlab_url, Secret(fakes.seed.manager_token), timeout=5.0, user_agent="rotator/test"
    )
    yield adapter
    adapter.close()


def _groups(fakes: Fakes) -> tuple[Resource, Resource]:
    """``platform`` (the manager a Maintainer) and its subgroup ``platform/infra`` (no direct member)."""
    top = fakes.gitlab.seed_resource("group", "platform")
    sub = fakes.gitlab.seed_resource("group", "platform/infra", parent=top)
    fakes.gitlab.seed_member(top, fakes.gitlab.test_only_user("rotator-manager"), MAINTAINER)
    return top, sub


def test_the_fake_answers_members_all_like_gitlab(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """python-gitlab's members_all.get: inherited roles count, the highest wins, else 404 Not found."""
    top, sub = _groups(fakes)
    manager = fakes.gitlab.test_only_user("rotator-manager")
    assert gl.groups.get(sub.id, lazy=True).members_all.get(manager.id).access_level == MAINTAINER
    fakes.gitlab.seed_member(sub, manager, DEVELOPER)  # a lower direct role: the inherited one wins
    member = gl.groups.get(sub.id, lazy=True).members_all.get(manager.id)
    assert (member.access_level, member.username) == (MAINTAINER, "rotator-manager")
    stranger = fakes.gitlab.seed_user("stranger")
    with pytest.raises(gitlab.exceptions.GitlabGetError) as missing:
        gl.groups.get(top.id, lazy=True).members_all.get(stranger.id)
    assert missing.value.response_code == 404
    assert missing.value.error_message == "404 Not found"
    with pytest.raises(gitlab.exceptions.GitlabGetError) as gone:
        gl.groups.get(9999, lazy=True).members_all.get(manager.id)
    assert gone.value.error_message == "404 Group Not Found"


def test_the_adapter_reads_the_managers_group_role_from_the_members_api(fakes: Fakes, api: GitLabAPI) -> None:
    """A group (or its service account) reads the manager's highest role, inherited ones included."""
    top, sub = _groups(fakes)
    account = fakes.gitlab.seed_service_account(sub)
    assert api.manager_access_level(Owner(Kind.GROUP, sub.id)) == MAINTAINER
    assert api.manager_access_level(Owner(Kind.SERVICE_ACCOUNT, account.id, Kind.GROUP, sub.id)) == MAINTAINER
    fakes.gitlab.seed_member(top, fakes.gitlab.test_only_user("rotator-manager"), OWNER)
    assert api.manager_access_level(Owner(Kind.GROUP, sub.id)) == OWNER
    routes = [c.route for c in fakes.gitlab.calls(user_agent="rotator/test")]
    assert routes.count(MEMBER) == 3
    assert routes.count("GET /api/v4/user") == 1  # the manager's id is read once
    assert "GET /api/v4/groups/:id" not in routes


def test_an_unreadable_group_fails_and_an_admin_needs_no_membership(fakes: Fakes, api: GitLabAPI) -> None:
    """A group the manager cannot see is an error (GitLab's 404), not "no member"; an admin needs none."""
    stranger_group = fakes.gitlab.seed_resource("group", "elsewhere")
    with pytest.raises(GitLabError) as raised:
        api.manager_access_level(Owner(Kind.GROUP, stranger_group.id))
    assert (raised.value.status, raised.value.route) == (404, "GET /groups/:id/members/all/:user_id")
    admin = fakes.gitlab.seed_user("root", admin=True)
    token = fakes.gitlab.seed_personal_token(admin, ["api"])
    as_admin = GitLabAPI(fakes.seed.gitlab_url, Secret(token.value), timeout=5.0, user_agent="rotator/test")
    try:
        assert as_admin.manager_access_level(Owner(Kind.GROUP, stranger_group.id)) == OWNER
    finally:
        as_admin.close()
