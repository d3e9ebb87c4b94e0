"""The inventory engine against the fake GitLab in process: owners, scopes, pages, failures, reads only."""

from collections.abc import Iterator
from datetime import timedelta

import pytest

from rotator.adapters.gitlab import GitLabAPI
from rotator.core.inventory import Inventory, Listed, Scope, TokenKind, scope_label
from rotator.core.model import Change, Kind, Origin, Role, TargetKey, TargetState, TokenRecord
from rotator.core.secret import Secret
from rotator.engine.inventory import take_inventory
from rotator.journal.memory import MemoryJournal
from rotator.testing import Fakes, Fault
from rotator.testing._gitlab_state import DEVELOPER, MAINTAINER, OWNER, Resource
from rotator.testing.transport import session_for
from tests.engine.harness import Pauses


CONNECTION = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
PROJECTS = "GET /api/v4/groups/:id/projects"


@pytest.fixture
def gitlab(fakes: Fakes) -> Iterator[GitLabAPI]:
    """The real adapter over the in-process transport; no wait is slept."""
    pauses = Pauses()
    api = GitLabAPI(
        fakes.seed.gitlab_url,
        _secret(fakes),
        timeout=10,
        user_agent="rotator/test",
        requests_per_minute=100_000,
        session=session_for(fakes.gitlab),
        sleep=pauses,
        monotonic=pauses.monotonic,
    )
    yield api
    api.close()


def _secret(fakes: Fakes) -> Secret:
    return Secret(fakes.seed.manager_token)


def _acme(fakes: Fakes) -> Resource:
    """The seed's group, with the manager made its Owner (a watched group's own tokens need one)."""
    acme = fakes.gitlab.state.find_resource("group", "acme")
    assert acme is not None
    fakes.gitlab.seed_member(acme, fakes.gitlab.test_only_user("rotator-manager"), OWNER)
    return acme


def _project(fakes: Fakes, index: int = 0) -> Resource:
    found = fakes.gitlab.state.find_resource("project", fakes.seed.project_paths[index])
    assert found is not None
    return found


def _track(journal: MemoryJournal, fakes: Fakes, name: str, *tokens: tuple[int, Role, Origin]) -> None:
    """Record ``name`` as a target of acme/app tracking ``tokens`` (id, role, origin)."""
    key = TargetKey(fakes.seed.gitlab_url, fakes.seed.project_ids[0], CONNECTION)
    now = fakes.clock.now()
    lease = journal.acquire(key, name, "test", now, timedelta(minutes=1))
    assert lease is not None
    records = tuple(TokenRecord(key, token, "t", origin, role, None) for token, role, origin in tokens)
    journal.write(lease, Change(target=TargetState(key, name), tokens=records))
    journal.release(lease)


def _project_scope(path: str) -> Scope:
    return Scope(scope_label(Kind.PROJECT, path), Kind.PROJECT, path)


def _group_scope(path: str, *, include_subgroups: bool = True) -> Scope:
    label = scope_label(Kind.GROUP, path)
    return Scope(label, Kind.GROUP, path, whole_group=True, include_subgroups=include_subgroups)


def _take(
    fakes: Fakes, gitlab: GitLabAPI, scopes: list[Scope], journal: MemoryJournal | None = None
) -> Inventory:
    return take_inventory(
        gitlab, journal or MemoryJournal(), fakes.seed.gitlab_url, scopes, fakes.clock.now()
    )


def _by_name(inventory: Inventory) -> dict[str, Listed]:
    return {t.info.name: t for t in inventory.tokens()}


def _only_reads(fakes: Fakes) -> None:
    assert {route for route in fakes.gitlab.call_counts() if not route.startswith("GET ")} == set()


def test_owners_roles_and_days_left_of_a_projects_active_tokens(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """Managed tokens name target and role (adopted too); active unmanaged ones are listed, dead ones not."""
    project = _project(fakes)
    adopted = fakes.seed.adopt_token_ids[0]
    current = fakes.gitlab.seed_resource_token(project, "app-deploy-new", ["api"], days=30)
    fakes.gitlab.seed_resource_token(project, "hand-made", ["read_api"], days=5)
    fakes.gitlab.seed_resource_token(project, "long-dead", ["api"], days=-3)
    fakes.gitlab.seed_resource_token(project, "revoked", ["api"]).revoked = True
    journal = MemoryJournal()
    _track(
        journal,
        fakes,
        "app-deploy",
        (adopted, Role.PENDING_REVOKE, Origin.ADOPTED),
        (current.id, Role.CURRENT, Origin.CREATED),
    )
    inventory = _take(fakes, gitlab, [_project_scope("acme/app")], journal)
    listed = _by_name(inventory)
    assert sorted(listed) == ["app-deploy", "app-deploy-new", "hand-made"]
    old, new, hand = listed["app-deploy"], listed["app-deploy-new"], listed["hand-made"]
    assert (old.managed and (old.managed.target, old.managed.role, old.managed.adopted)) == (
        "app-deploy",
        Role.PENDING_REVOKE,
        True,
    )
    assert (new.managed and (new.managed.role, new.managed.adopted)) == (Role.CURRENT, False)
    assert hand.managed is None
    assert hand.days_left(inventory.at) == 4  # dies at 00:00 UTC in five days' time: 4 whole days from now
    assert (hand.kind, hand.holder, hand.scope) == (TokenKind.PROJECT, "project acme/app", "project:acme/app")
    assert hand.info.scopes == ("read_api",)
    assert inventory.failed == ()
    _only_reads(fakes)


def test_a_journal_on_another_gitlab_owns_nothing_here(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """Token ids are per instance: a target of another gitlab.url does not make a token here managed."""
    journal = MemoryJournal()
    key = TargetKey("https://elsewhere.example.com", 1, CONNECTION)
    lease = journal.acquire(key, "far", "test", fakes.clock.now(), timedelta(minutes=1))
    assert lease is not None
    token = TokenRecord(key, fakes.seed.adopt_token_ids[0], "t", Origin.CREATED, Role.CURRENT, None)
    journal.write(lease, Change(target=TargetState(key, "far"), tokens=(token,)))
    inventory = _take(fakes, gitlab, [_project_scope("acme/app")], journal)
    assert [t.managed for t in inventory.tokens()] == [None]


def test_a_token_is_listed_once_under_the_first_scope_and_an_owner_asked_once(
    fakes: Fakes, gitlab: GitLabAPI
) -> None:
    """A target's project first, then the watched group: acme/app's token stays under the project's scope."""
    _acme(fakes)
    inventory = _take(fakes, gitlab, [_project_scope("acme/app"), _group_scope("acme")])
    assert [(t.scope, t.info.name) for t in inventory.tokens()] == [
        ("project:acme/app", "app-deploy"),
        ("group:acme", "api-deploy"),
    ]
    assert fakes.gitlab.call_counts()["GET /api/v4/projects/:id/access_tokens"] == 2


def test_a_watched_group_lists_its_group_tokens_service_accounts_and_subgroups(
    fakes: Fakes, gitlab: GitLabAPI
) -> None:
    """include_subgroups: the group's and each subgroup's tokens, a service account's, every project's."""
    gitlab_fake = fakes.gitlab
    acme = _acme(fakes)
    sub = gitlab_fake.seed_resource("group", "acme/sub", parent=acme)
    tool = gitlab_fake.seed_resource("project", "acme/sub/tool", parent=sub)
    gitlab_fake.seed_resource_token(acme, "acme-group", ["read_api"], access_level=OWNER)
    gitlab_fake.seed_resource_token(sub, "sub-group", ["read_api"])
    gitlab_fake.seed_resource_token(tool, "tool-ci", ["read_api"])
    robot = gitlab_fake.seed_service_account(acme, "robot")
    gitlab_fake.seed_personal_token(robot, ["api"], days=20, name="robot-key")
    deep = _by_name(_take(fakes, gitlab, [_group_scope("acme")]))
    assert sorted(deep) == ["acme-group", "api-deploy", "app-deploy", "robot-key", "sub-group", "tool-ci"]
    assert (deep["robot-key"].kind, deep["robot-key"].holder) == (
        TokenKind.PERSONAL,
        f"service account {robot.id} of group acme",
    )
    assert (deep["sub-group"].kind, deep["sub-group"].holder) == (TokenKind.GROUP, "group acme/sub")
    assert deep["tool-ci"].holder == "project acme/sub/tool"
    gitlab_fake.reset_calls()
    shallow = _by_name(_take(fakes, gitlab, [_group_scope("acme", include_subgroups=False)]))
    assert sorted(shallow) == ["acme-group", "api-deploy", "app-deploy", "robot-key"]
    assert "GET /api/v4/groups/:id/descendant_groups" not in gitlab_fake.call_counts()
    _only_reads(fakes)


def test_every_page_is_read_and_a_large_scope_reports_progress(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """107 projects (two pages) and a project of 120 tokens (two pages): all listed, progress now and then."""
    acme = _acme(fakes)
    for n in range(105):
        project = fakes.gitlab.seed_resource("project", f"acme/p{n:03}", parent=acme)
        fakes.gitlab.seed_resource_token(project, f"p{n:03}-ci", ["read_api"])
    crowded = _project(fakes, 1)
    for n in range(119):
        fakes.gitlab.seed_resource_token(crowded, f"crowd-{n:03}", ["read_api"])
    lines: list[str] = []
    inventory = take_inventory(
        gitlab,
        MemoryJournal(),
        fakes.seed.gitlab_url,
        [_group_scope("acme")],
        fakes.clock.now(),
        lines.append,
    )
    assert len(inventory.tokens()) == 1 + 120 + 105
    counts = fakes.gitlab.call_counts()
    assert counts[PROJECTS] == 2
    assert counts["GET /api/v4/projects/:id/access_tokens"] == 107 + 1  # the crowded project's second page
    assert lines[-1] == "inventory: group:acme: 107/107 projects"
    assert lines[0] == "inventory: group:acme: 10/107 projects"
    assert len(lines) == 11


def test_a_403_on_one_watched_group_fails_that_scope_only(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """Group one's project list answers 403: its scope keeps what it had and says why; group two is whole."""
    acme = _acme(fakes)
    fakes.gitlab.seed_resource_token(acme, "acme-group", ["read_api"], access_level=OWNER)
    other = fakes.gitlab.seed_resource("group", "other")
    fakes.gitlab.seed_member(other, fakes.gitlab.test_only_user("rotator-manager"), OWNER)
    elsewhere = fakes.gitlab.seed_resource("project", "other/svc", parent=other)
    fakes.gitlab.seed_resource_token(elsewhere, "svc-ci", ["read_api"])
    fakes.gitlab.faults.add(Fault(PROJECTS, "fail", status=403))
    inventory = _take(fakes, gitlab, [_group_scope("acme"), _group_scope("other")])
    first, second = inventory.scopes
    assert first.error is not None
    assert first.error.startswith("group:acme: group acme: gitlab GET /groups/:id/projects -> 403")
    assert "\n" not in first.error
    assert [t.info.name for t in first.tokens] == ["acme-group"]
    assert second.error is None
    assert [t.info.name for t in second.tokens] == ["svc-ci"]
    assert inventory.failed == (first,)


def test_reads_the_manager_may_not_make_fail_in_one_line_and_the_rest_is_listed(
    fakes: Fakes, gitlab: GitLabAPI
) -> None:
    """Manager a group's Developer, one project's Maintainer: the 401s in one line, that project listed."""
    team = fakes.gitlab.seed_resource("group", "team")
    fakes.gitlab.seed_member(team, fakes.gitlab.test_only_user("rotator-manager"), DEVELOPER)
    for name in ("hidden", "open"):
        project = fakes.gitlab.seed_resource("project", f"team/{name}", parent=team)
        fakes.gitlab.seed_resource_token(project, f"{name}-ci", ["read_api"])
        if name == "open":
            fakes.gitlab.set_project_role(project.id, "rotator-manager", MAINTAINER)
    inventory = _take(fakes, gitlab, [_group_scope("team")])
    [scope] = inventory.scopes
    assert scope.error is not None
    assert scope.error.startswith("group:team: group team: gitlab GET /groups/:id/access_tokens -> 401")
    assert scope.error.endswith("(and 1 more failed reads)")  # team/hidden's tokens, 401 too
    assert [t.info.name for t in scope.tokens] == ["open-ci"]


def test_a_refused_manager_token_sends_nothing_more(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """GET /personal_access_tokens/self refused: each scope says why in one line; nothing more is sent."""
    fakes.gitlab.faults.add(Fault("GET /api/v4/personal_access_tokens/self", "fail", status=401))
    inventory = _take(fakes, gitlab, [_project_scope("acme/app"), _group_scope("acme")])
    assert [s.scope for s in inventory.failed] == ["project:acme/app", "group:acme"]
    assert all("the manager token could not be used" in (s.error or "") for s in inventory.scopes)
    assert sum(fakes.gitlab.call_counts().values()) == 1


def test_gitlab_failing_stops_the_inventory(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """A 503 that outlives the retries: that scope fails, the later ones are not asked, and say so."""
    fakes.gitlab.faults.add(Fault("GET /api/v4/projects/:id/access_tokens", "fail", status=503, times=None))
    inventory = _take(fakes, gitlab, [_project_scope("acme/app"), _project_scope("acme/api")])
    first, second = inventory.scopes
    assert first.error is not None
    assert "-> 503" in first.error
    assert second.error is not None
    assert second.error.startswith("project:acme/api: not listed: GitLab stopped answering")
    assert fakes.gitlab.call_counts()["GET /api/v4/projects/:id/access_tokens"] == 5  # one read, its retries


def test_no_token_value_reaches_the_inventory(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """Neither rows nor error lines hold a value GitLab minted (a failure's message included)."""
    fakes.gitlab.faults.add(Fault(PROJECTS, "fail", status=403))
    _acme(fakes)
    inventory = _take(fakes, gitlab, [_project_scope("acme/app"), _group_scope("acme")])
    text = repr(inventory)
    assert not [v for v in fakes.gitlab.test_only_minted_values() if v in text]


def test_a_service_account_target_scope_lists_its_tokens(fakes: Fakes, gitlab: GitLabAPI) -> None:
    """service_account:N@group:acme lists that account's personal access tokens, as personal ones."""
    acme = _acme(fakes)
    robot = fakes.gitlab.seed_service_account(acme, "robot")
    fakes.gitlab.seed_personal_token(robot, ["api"], name="robot-key")
    via = (Kind.GROUP, "acme")
    scope = Scope(scope_label(Kind.SERVICE_ACCOUNT, robot.id, via), Kind.SERVICE_ACCOUNT, robot.id, via)
    inventory = _take(fakes, gitlab, [scope])
    assert [(t.scope, t.kind, t.info.name) for t in inventory.tokens()] == [
        (f"service_account:{robot.id}@group:acme", TokenKind.PERSONAL, "robot-key")
    ]


def test_the_request_counter_names_each_listing_route(fakes: Fakes) -> None:
    """The daemon's request counter sees the group listings under their route templates, never as other."""
    _acme(fakes)
    robot = fakes.gitlab.seed_service_account(fakes.gitlab.state.find_resource("group", "acme"), "robot")
    fakes.gitlab.seed_personal_token(robot, ["api"], name="robot-key")
    seen: set[str] = set()
    api = GitLabAPI(
        fakes.seed.gitlab_url,
        _secret(fakes),
        timeout=10,
        user_agent="rotator/test",
        session=session_for(fakes.gitlab),
        on_response=lambda _upstream, route, _status: seen.add(route),
    )
    _take(fakes, api, [_group_scope("acme")])
    assert {
        "GET /groups/:id/projects",
        "GET /groups/:id/descendant_groups",
        "GET /groups/:id/service_accounts",
        "GET /groups/:id/service_accounts/:user_id/personal_access_tokens",
    } <= seen
    assert "other" not in seen
