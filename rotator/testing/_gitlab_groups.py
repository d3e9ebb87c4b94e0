"""The fake GitLab's group listings: a group's projects and its subgroups (``lib/api/groups.rb``).

* ``GET /groups/:id/projects``: the group's projects, newest first (GitLab's default
  ``order_by=created_at``, ``sort=desc``); with ``include_subgroups=true`` its subgroups' too, at
  any depth. The fake shares no project between groups, so ``with_shared`` changes nothing here.
* ``GET /groups/:id/descendant_groups``: every subgroup at any depth, by name (GitLab's default
  ``order_by=name``, ``sort=asc``).

Both are paginated as every GitLab list is (``page``/``per_page``, 20 by default, at most 100, and
the ``X-*`` and ``Link`` headers). The fake's groups and projects are private: the caller sees a
group or a project only as a member of it or of an ancestor (an admin sees all); a group it cannot
see is GitLab's ``404 Group Not Found``. A boolean parameter that is not one is Grape's 400
``include_subgroups is invalid``.
"""

from collections.abc import Callable
from typing import Any

from rotator.testing._gitlab_errors import error, message
from rotator.testing._gitlab_state import API, GitLabState, Resource, Token, User
from rotator.testing._http import Handler, Request, Response


#: What Grape reads as a Boolean (``Grape::API::Boolean``).
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class GroupRoutes:
    """Mixed into :class:`rotator.testing.gitlab.FakeGitLab`, which supplies what is declared here."""

    state: GitLabState
    route: Callable[[str, str, Handler], None]
    _auth: Callable[..., tuple[User, Token]]
    _page: Callable[[Request, list[Any]], Response]

    def _install_groups(self) -> None:
        """Register the group listing routes."""
        self.route("GET", f"{API}/groups/:id/projects", self._group_projects)
        self.route("GET", f"{API}/groups/:id/descendant_groups", self._descendant_groups)

    def _seen_group(self, request: Request) -> tuple[User, Resource]:
        """The caller, and the group it named, if the caller may see it."""
        user, _ = self._auth(request)
        group = self.state.find_resource("group", request.args["id"])
        if group is None or self.state.access_level(user, group) == 0:
            error(404, "404 Group Not Found")
        return user, group

    def _group_projects(self, request: Request) -> Response:
        params = request.form()
        for name in ("include_subgroups", "with_shared", "archived", "simple"):
            if name in params and str(params[name]).lower() not in _BOOLEANS:
                message(400, {"error": f"{name} is invalid"})
        user, group = self._seen_group(request)
        deep = _BOOLEANS.get(str(params.get("include_subgroups", "false")).lower(), False)
        homes = {group.id} | ({g.id for g in self._below(group)} if deep else set())
        projects = [
            r
            for r in self.state.resources.values()
            if r.kind == "project" and r.parent_id in homes and self.state.access_level(user, r) > 0
        ]
        base = f"http://{request.host}"
        return self._page(request, [_project(p, base) for p in sorted(projects, key=lambda p: -p.id)])

    def _descendant_groups(self, request: Request) -> Response:
        user, group = self._seen_group(request)
        below = [g for g in self._below(group) if self.state.access_level(user, g) > 0]
        base = f"http://{request.host}"
        ordered = sorted(below, key=lambda g: (g.path.rsplit("/", 1)[-1], g.id))
        return self._page(request, [_group(g, base) for g in ordered])

    def _below(self, group: Resource) -> list[Resource]:
        """Every subgroup of ``group``, at any depth."""
        groups = [r for r in self.state.resources.values() if r.kind == "group"]
        found: list[Resource] = []
        parents = {group.id}
        while parents:
            children = [g for g in groups if g.parent_id in parents]
            found += children
            parents = {g.id for g in children}
        return found


def _project(project: Resource, base: str) -> dict[str, Any]:
    """``Entities::BasicProjectDetails``, the fields a client reads."""
    name = project.path.rsplit("/", 1)[-1]
    namespace = project.path.rsplit("/", 1)[0]
    return {
        "id": project.id,
        "name": name,
        "path": name,
        "path_with_namespace": project.path,
        "name_with_namespace": project.path.replace("/", " / "),
        "description": None,
        "default_branch": "main",
        "visibility": "private",
        "archived": False,
        "web_url": f"{base}/{project.path}",
        "namespace": {
            "id": project.parent_id,
            "name": namespace.rsplit("/", 1)[-1],
            "path": namespace.rsplit("/", 1)[-1],
            "kind": "group",
            "full_path": namespace,
            "parent_id": None,
        },
        "created_at": "2026-01-01T00:00:00.000Z",
    }


def _group(group: Resource, base: str) -> dict[str, Any]:
    """``Entities::Group``, the fields a client reads."""
    name = group.path.rsplit("/", 1)[-1]
    return {
        "id": group.id,
        "name": name,
        "path": name,
        "full_name": group.path.replace("/", " / "),
        "full_path": group.path,
        "parent_id": group.parent_id,
        "visibility": "private",
        "description": "",
        "web_url": f"{base}/groups/{group.path}",
        "created_at": "2026-01-01T00:00:00.000Z",
    }
