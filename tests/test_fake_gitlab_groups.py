"""The fake GitLab's group listings answer as GitLab does: projects, subgroups, service accounts."""

import httpx
import pytest

from rotator.testing import Fakes
from rotator.testing._gitlab_state import DEVELOPER, OWNER, Resource


@pytest.fixture
def tree(fakes: Fakes) -> dict[str, Resource]:
    """``acme`` (the seed's, with acme/app and acme/api) given subgroups two deep, each with a project."""
    gitlab = fakes.gitlab
    acme = gitlab.state.find_resource("group", "acme")
    assert acme is not None
    sub = gitlab.seed_resource("group", "acme/sub", parent=acme)
    deep = gitlab.seed_resource("group", "acme/sub/deep", parent=sub)
    alpha = gitlab.seed_resource("group", "acme/alpha", parent=acme)
    gitlab.seed_resource("project", "acme/sub/tool", parent=sub)
    gitlab.seed_resource("project", "acme/sub/deep/lib", parent=deep)
    gitlab.seed_member(acme, gitlab.test_only_user("rotator-manager"), OWNER)
    return {"acme": acme, "sub": sub, "deep": deep, "alpha": alpha}


def _get(fakes: Fakes, path: str, **params: str) -> httpx.Response:
    headers = {"PRIVATE-TOKEN": fakes.seed.manager_token}
    return httpx.get(f"{fakes.seed.gitlab_url}/api/v4{path}", params=params, headers=headers, timeout=10)


def test_a_groups_projects_are_its_own_unless_subgroups_are_included(
    fakes: Fakes, tree: dict[str, Resource]
) -> None:
    """Without include_subgroups a group's direct projects, with it every depth's, newest first."""
    acme = tree["acme"].id
    own = _get(fakes, f"/groups/{acme}/projects")
    assert [p["path_with_namespace"] for p in own.json()] == ["acme/api", "acme/app"]
    every = _get(fakes, f"/groups/{acme}/projects", include_subgroups="true", with_shared="false")
    assert [p["path_with_namespace"] for p in every.json()] == [
        "acme/sub/deep/lib",
        "acme/sub/tool",
        "acme/api",
        "acme/app",
    ]
    assert every.json()[0]["namespace"]["full_path"] == "acme/sub/deep"


def test_the_project_list_is_paginated_with_gitlabs_headers(fakes: Fakes, tree: dict[str, Resource]) -> None:
    """per_page 3 of 4 projects: page 1 of 2, X-Next-Page 2, a rel=next link; page 2 the last one."""
    path = f"/groups/{tree['acme'].id}/projects"
    first = _get(fakes, path, include_subgroups="true", per_page="3")
    assert len(first.json()) == 3
    headers = first.headers
    assert (headers["X-Page"], headers["X-Per-Page"], headers["X-Total"], headers["X-Total-Pages"]) == (
        "1",
        "3",
        "4",
        "2",
    )
    assert headers["X-Next-Page"] == "2"
    assert 'rel="next"' in headers["Link"]
    second = _get(fakes, path, include_subgroups="true", per_page="3", page="2")
    assert [p["path_with_namespace"] for p in second.json()] == ["acme/app"]
    assert second.headers["X-Next-Page"] == ""


def test_descendant_groups_are_every_depth_by_name(fakes: Fakes, tree: dict[str, Resource]) -> None:
    """descendant_groups lists subgroups at every depth, ordered by name, with full_path and parent_id."""
    listed = _get(fakes, f"/groups/{tree['acme'].id}/descendant_groups")
    assert [(g["full_path"], g["parent_id"]) for g in listed.json()] == [
        ("acme/alpha", tree["acme"].id),
        ("acme/sub/deep", tree["sub"].id),
        ("acme/sub", tree["acme"].id),
    ]
    assert listed.headers["X-Total"] == "3"
    assert _get(fakes, f"/groups/{tree['deep'].id}/descendant_groups").json() == []


@pytest.mark.parametrize("route", ["projects", "descendant_groups"])
def test_a_group_the_caller_cannot_see_is_404_group_not_found(fakes: Fakes, route: str) -> None:
    """A group nobody made the manager a member of, or none at all: GitLab's 404 Group Not Found."""
    hidden = fakes.gitlab.seed_resource("group", "hidden")
    for ref in (str(hidden.id), "hidden", "9999"):
        answer = _get(fakes, f"/groups/{ref}/{route}")
        assert (answer.status_code, answer.json()) == (404, {"message": "404 Group Not Found"})


def test_a_member_of_a_subgroup_only_sees_that_subgroups_projects(fakes: Fakes) -> None:
    """The fake's projects are private: a Developer of acme/team sees its projects, not acme's others."""
    gitlab = fakes.gitlab
    acme = gitlab.state.find_resource("group", "acme")
    assert acme is not None
    team = gitlab.seed_resource("group", "acme/team", parent=acme)
    gitlab.seed_resource("project", "acme/team/svc", parent=team)
    gitlab.seed_member(team, gitlab.test_only_user("rotator-manager"), DEVELOPER)
    listed = _get(fakes, f"/groups/{team.id}/projects")
    assert [p["path_with_namespace"] for p in listed.json()] == ["acme/team/svc"]


def test_a_boolean_that_is_none_is_grapes_400(fakes: Fakes, tree: dict[str, Resource]) -> None:
    """include_subgroups=maybe is refused before anything is looked up, as Grape validates first."""
    answer = _get(fakes, f"/groups/{tree['acme'].id}/projects", include_subgroups="maybe")
    assert (answer.status_code, answer.json()) == (400, {"error": "include_subgroups is invalid"})


def test_a_groups_service_accounts_are_paginated(fakes: Fakes, tree: dict[str, Resource]) -> None:
    """GET /groups/:id/service_accounts pages as every list does, newest first."""
    made = [fakes.gitlab.seed_service_account(tree["acme"], f"robot-{n}") for n in range(3)]
    first = _get(fakes, f"/groups/{tree['acme'].id}/service_accounts", per_page="2")
    assert [a["id"] for a in first.json()] == [made[2].id, made[1].id]
    assert (first.headers["X-Total"], first.headers["X-Next-Page"]) == ("3", "2")
