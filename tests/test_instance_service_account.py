"""An instance service account's tokens: the owner must be an instance service account.

An admin may create a personal access token for any user, so a mistyped ``service_account.user_id``
would mint an api token for a person or a project's bot; the adapter reads the admin's list of
instance service accounts (``GET /service_accounts``) first, in ``check`` (the manager's level), the
look and before a create. ``GET /users/:id`` cannot tell: GitLab's admin view has no ``user_type``,
and ``bot`` holds for a project or group token's bot user too.
"""

import datetime as dt
import json

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from rotator.adapters.gitlab import GitLabAPI
from rotator.adapters.infisical import InfisicalAPI
from rotator.core.errors import GitLabError
from rotator.core.model import Kind, Owner, TokenRequest
from rotator.core.secret import Secret
from rotator.doors.config import Config
from rotator.testing import Fakes
from rotator.testing._gitlab_state import User
from tests.cli_harness import Harness
from tests.engine.harness import EngineCase


ACCOUNTS = "GET /api/v4/service_accounts"
CREATE = "POST /api/v4/users/:user_id/personal_access_tokens"


@pytest.fixture
def admin(fakes: Fakes) -> Iterator[GitLabAPI]:
    """The adapter with the seeded manager token, the manager made an admin."""
    fakes.gitlab.test_only_user("rotator-manager").admin = True
    adapter = GitLabAPI(
        fakes.seed.gitlab_url, Secret(fakes.seed.manager_token), timeout=5.0, user_agent="rotator/test"
    )
    yield adapter
    adapter.close()


def _request(fakes: Fakes) -> TokenRequest:
    expires = fakes.clock.now().date() + dt.timedelta(days=30)
    return TokenRequest("robot-rotated", ("api",), 40, expires, None)


def _get_user(fakes: Fakes, user_id: int, token: str) -> requests.Response:
    url = f"{fakes.seed.gitlab_url}/api/v4/users/{user_id}"
    return requests.get(url, headers={"PRIVATE-TOKEN": token}, timeout=10)


def test_the_fake_shows_no_user_type_and_bot_to_anyone(fakes: Fakes) -> None:
    """``GET /users/:id``: ``is_admin`` for an admin, ``bot`` for all, no ``user_type``; 404 if unknown."""
    gitlab = fakes.gitlab
    root = gitlab.seed_user("root", admin=True)
    root_pat = gitlab.seed_personal_token(root, ["api"]).value
    person = gitlab.seed_user("alice")
    account = gitlab.seed_service_account(None)
    bot = gitlab.state.add_user("project_1_bot_abc", bot=True)
    seen = {user.id: _get_user(fakes, user.id, root_pat).json() for user in (person, account, bot)}
    assert [seen[u.id]["bot"] for u in (person, account, bot)] == [False, True, True]
    assert not [body for body in seen.values() if "user_type" in body]
    assert seen[person.id]["is_admin"] is False
    public = _get_user(fakes, account.id, fakes.seed.manager_token).json()
    assert (public["bot"], "user_type" in public, "is_admin" in public) == (True, False, False)
    missing = _get_user(fakes, 999_999, root_pat)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 User Not Found"})


def _refused_everywhere(fakes: Fakes, admin: GitLabAPI, user: User) -> None:
    """``check``'s level and a create both fail naming the user, and nothing is created."""
    owner = Owner(Kind.SERVICE_ACCOUNT, user.id)
    with pytest.raises(GitLabError) as checked:
        admin.manager_access_level(owner)
    with pytest.raises(GitLabError) as created:
        admin.create_token(owner, _request(fakes))
    for raised in (checked.value, created.value):
        assert raised.route == "GET /service_accounts"
        assert raised.not_applied
        assert f"user {user.id} is not an instance service account" in raised.message
    assert fakes.gitlab.state.personal_tokens(user) == []
    assert fakes.gitlab.calls(CREATE) == []


def test_a_person_as_an_instance_service_account_is_refused_before_any_create(
    fakes: Fakes, admin: GitLabAPI
) -> None:
    """A person's id as an instance service account: ``check``'s read fails and no token is minted."""
    _refused_everywhere(fakes, admin, fakes.gitlab.seed_user("alice", admin=True))


def test_a_project_bot_as_an_instance_service_account_is_refused(fakes: Fakes, admin: GitLabAPI) -> None:
    """A project token's bot user (``bot`` true on ``GET /users/:id``) is no instance service account."""
    _refused_everywhere(fakes, admin, fakes.gitlab.state.add_user("project_1_bot_abc", bot=True))


def test_a_group_service_account_is_no_instance_one(fakes: Fakes, admin: GitLabAPI) -> None:
    """A group's service account is not in the instance list: its tokens go through the group's routes."""
    group = fakes.gitlab.seed_resource("group", "acme")
    _refused_everywhere(fakes, admin, fakes.gitlab.seed_service_account(group))


def test_the_list_is_read_once_then_its_tokens_are_made(fakes: Fakes, admin: GitLabAPI) -> None:
    """A real instance service account passes; the list is read once for the level and the create."""
    account = fakes.gitlab.seed_service_account(None)
    owner = Owner(Kind.SERVICE_ACCOUNT, account.id)
    assert admin.manager_access_level(owner) == 50
    made = admin.create_token(owner, _request(fakes))
    assert fakes.gitlab.test_only_token(made.info.id).user_id == account.id
    assert len(fakes.gitlab.calls(ACCOUNTS)) == 1


def test_every_page_of_the_list_is_read_and_a_new_account_is_found(fakes: Fakes, admin: GitLabAPI) -> None:
    """Past 100 accounts the later pages count; an account made after the first read is found by a re-read."""
    accounts = [fakes.gitlab.seed_service_account(None, f"sa {n}") for n in range(120)]
    oldest = accounts[0]
    assert admin.manager_access_level(Owner(Kind.SERVICE_ACCOUNT, oldest.id)) == 50
    assert len(fakes.gitlab.calls(ACCOUNTS)) == 2  # two pages of 100
    late = fakes.gitlab.seed_service_account(None, "late")
    assert admin.manager_access_level(Owner(Kind.SERVICE_ACCOUNT, late.id)) == 50


ACCOUNT_CONNECTION = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"


def _instance_target(fakes: Fakes, tmp_path: Path) -> tuple[Harness, User, int]:
    """An admin manager and an instance service account ``robot``, adopting the token its connection holds."""
    gitlab = fakes.gitlab
    gitlab.test_only_user("rotator-manager").admin = True
    account = gitlab.seed_service_account(None)
    held = gitlab.seed_personal_token(account, ["api", "read_user"], days=30, name="robot")
    fakes.infisical.seed_connection(
        held.value, instance_url=gitlab.url, access_token_type="personal", connection_id=ACCOUNT_CONNECTION
    )
    h = Harness(fakes, tmp_path)
    config = yaml.safe_load((tmp_path / "rotator.yaml").read_text())
    config["targets"] = [
        {
            "name": "robot",
            "service_account": {"user_id": account.id},
            "token": {"scopes": ["api", "read_user"], "lifetime": "30d"},
            "connection_id": ACCOUNT_CONNECTION,
            "adopt_token_id": held.id,
            "hold_revoke_if_used": False,
        }
    ]
    (tmp_path / "rotator.yaml").write_text(yaml.safe_dump(config))
    return h, account, held.id


def _demote_past_grace_with_404s(fakes: Fakes) -> None:
    """The manager is no admin any more, the grace has passed, and DELETE and GET of a token say 404."""
    fakes.gitlab.test_only_user("rotator-manager").admin = False
    fakes.clock.advance(dt.timedelta(minutes=61))
    fakes.gitlab.faults.fail("DELETE /api/v4/personal_access_tokens/:token_id", 404, times=None)
    fakes.gitlab.faults.fail("GET /api/v4/personal_access_tokens/:token_id", 404, times=None)


def test_a_404_after_the_manager_lost_admin_is_no_revoke_evidence(fakes: Fakes, tmp_path: Path) -> None:
    """Demoted from admin, DELETE 404 then GET 404 (a proxy's, say) leave the token tracked as no access."""
    h, _, held = _instance_target(fakes, tmp_path)
    first = h.run("run-once")
    assert first.code == 0, first.stderr
    _demote_past_grace_with_404s(fakes)
    second = h.run("run-once")
    assert second.code == 1
    assert fakes.gitlab.test_only_token(held).active(fakes.clock.now())
    history = h.run("history", "--target", "robot", "--json").json()
    assert not [r for rotation in history for r in rotation["retired"] if r.get("evidence")]
    assert "no access" in second.stdout + second.stderr


class OneAdapter(EngineCase):
    """The engine in process with one GitLab adapter for every run, as the daemon builds it at start."""

    kept: GitLabAPI | None = None

    def _adapters(self, config: Config) -> tuple[GitLabAPI, InfisicalAPI]:
        gitlab, infisical = super()._adapters(config)
        if self.kept is None:
            self.kept = gitlab
        else:
            gitlab.close()
        return self.kept, infisical  # closing it between runs leaves the in-process session usable


def test_a_demotion_during_the_adapters_life_is_seen_by_the_revoke(fakes: Fakes, tmp_path: Path) -> None:
    """One adapter (the daemon's): demoted after its first run, DELETE 404 + GET 404 is no evidence."""
    case = OneAdapter(fakes, tmp_path)
    _, account, held = _instance_target(fakes, tmp_path)
    first = case.run("run-once")
    assert first.code == 0, first.stderr
    # The daemon's adapter has read /user as an admin by now (a group target's role, an earlier check).
    assert case.kept is not None
    assert case.kept.manager_access_level(Owner(Kind.SERVICE_ACCOUNT, account.id)) == 50
    _demote_past_grace_with_404s(fakes)
    second = case.run("run-once")
    assert second.code == 1
    assert fakes.gitlab.test_only_token(held).active(fakes.clock.now())
    history = json.loads(case.run("history").stdout)
    assert not [r for rotation in history for r in rotation["retired"] if r.get("evidence")]
    assert "no access" in second.stdout + second.stderr


def test_gitlabs_own_answers_to_a_demoted_manager_keep_the_token_tracked(
    fakes: Fakes, tmp_path: Path
) -> None:
    """Demoted from admin, GitLab's DELETE 400 (and 401 on read) is no evidence: no access, token alive."""
    h, _, held = _instance_target(fakes, tmp_path)
    assert h.run("run-once").code == 0
    fakes.gitlab.test_only_user("rotator-manager").admin = False
    fakes.clock.advance(dt.timedelta(minutes=61))
    second = h.run("run-once")
    assert second.code == 1
    assert [c.status for c in fakes.gitlab.calls("DELETE /api/v4/personal_access_tokens/:token_id")] == [400]
    assert fakes.gitlab.test_only_token(held).active(fakes.clock.now())
    assert "no access" in second.stdout + second.stderr


def test_the_pat_list_keeps_only_the_owners_tokens(fakes: Fakes, admin: GitLabAPI) -> None:
    """A listing that also carries another user's token (a filter ignored) yields the owner's alone."""
    account = fakes.gitlab.seed_service_account(None)
    mine = fakes.gitlab.seed_personal_token(account, ["api"])
    other = fakes.gitlab.seed_personal_token(fakes.gitlab.test_only_user("rotator-manager"), ["api"])
    now = fakes.clock.now()
    body = [fakes.gitlab.test_only_token(t.id).as_json(now) for t in (mine, other)]
    fakes.gitlab.faults.fail("GET /api/v4/personal_access_tokens", 200, body=body)
    assert [t.id for t in admin.list_tokens(Owner(Kind.SERVICE_ACCOUNT, account.id))] == [mine.id]


def test_a_401_about_another_users_token_leaves_the_credential_accepted(fakes: Fakes) -> None:
    """A non-admin's PAT API 401 (GET one, list by user) is about the target: /readyz stays ready."""
    account = fakes.gitlab.seed_service_account(None)
    token = fakes.gitlab.seed_personal_token(account, ["api"])
    owner = Owner(Kind.SERVICE_ACCOUNT, account.id)
    api = GitLabAPI(
        fakes.seed.gitlab_url, Secret(fakes.seed.manager_token), timeout=5.0, user_agent="rotator/test"
    )
    try:
        for read in (lambda: api.get_token(owner, token.id), lambda: api.list_tokens(owner)):
            with pytest.raises(GitLabError) as raised:
                read()
            assert raised.value.status == 401
            assert not api.credential_refused
        manager_token = fakes.gitlab.state.token_by_value(fakes.seed.manager_token)
        assert manager_token is not None
        manager_token.revoked = True
        with pytest.raises(GitLabError):
            api.manager_self()
        assert api.credential_refused  # the manager token's own refusal still counts
    finally:
        api.close()
