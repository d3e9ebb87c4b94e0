"""A fake GitLab: the access-token REST API, faithful down to statuses, bodies and headers.

What it serves (under ``/api/v4``), for projects and groups alike (``:kind`` below):

* ``GET /:kind/:id/access_tokens`` (offset pagination, ``state``/``revoked``/``search``/``sort``),
  ``GET …/:token_id``, ``POST …`` (201), ``POST …/:token_id/rotate``, ``POST …/self/rotate``,
  ``DELETE …/:token_id`` (204);
* ``GET /personal_access_tokens/self``, ``GET /user``, ``GET /projects/:id``, ``GET /groups/:id``,
  ``GET /version``;
* ``GET /:kind/:id/members/all/:user_id``: one member, direct or inherited from an ancestor group
  (the highest role), ``404 Not found`` for anyone else;
* service accounts (group, project and instance ones) and their personal access tokens: see
  :mod:`rotator.testing._gitlab_service_accounts`;
* ``GET /groups/:id/projects`` and ``GET /groups/:id/descendant_groups``: see
  :mod:`rotator.testing._gitlab_groups`.

A token's ``description`` is stored and shown as GitLab 17.7+ does, or, as an older server would,
ignored or refused (:meth:`FakeGitLab.set_descriptions`). The rules and error bodies follow
``reference/gitlab.md`` §1-§4 and are described where they are implemented. The fake's clock
(:class:`~rotator.testing.FakeClock`) decides expiry and ``last_used_at``; :attr:`FakeGitLab.state`
is the test-only view of everything, token values included.
"""

import datetime as dt
import math
import urllib.parse

from collections.abc import Callable
from typing import Any

from rotator.testing import _gitlab_auth as auth
from rotator.testing._clock import FakeClock
from rotator.testing._gitlab_errors import canned_error, date_param, error, message
from rotator.testing._gitlab_groups import GroupRoutes
from rotator.testing._gitlab_service_accounts import ServiceAccountRoutes
from rotator.testing._gitlab_state import (
    ACCESS_LEVELS,
    API,
    MAINTAINER,
    MANAGER_ROLE,
    RESOURCE_BOT_SCOPES,
    RESOURCE_KINDS,
    ROTATE_DEFAULT_DAYS,
    Descriptions,
    GitLabState,
    Resource,
    ResourceKind,
    Token,
    User,
)
from rotator.testing._http import FakeServer, FixedWindowLimiter, Request, Response


#: The user fields a member entity repeats (``Entities::UserBasic``).
_MEMBER_FIELDS = frozenset({"id", "username", "name", "state", "web_url"})


class FakeGitLab(GroupRoutes, ServiceAccountRoutes, FakeServer):
    """A GitLab instance on loopback; see the module docstring."""

    upstream = "gitlab"

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        requests_per_minute: int | None = None,
        supports_token_filters: bool = True,
        legacy_tokens: bool = False,
        test_hooks_key: str | None = None,
    ) -> None:
        """Create an empty instance.

        ``requests_per_minute`` turns on a Rack::Attack-style per-user limiter (429 plain text
        ``Retry later`` with ``Retry-After`` and ``RateLimit-*`` headers, the latter on every
        response). ``supports_token_filters=False`` imitates servers older than 17.2, which ignore
        ``state``, ``search`` and the other list filters. Tokens are minted in GitLab's routable
        format (``glpat-<payload>.01.<length><crc>``, as GitLab 18 does); ``legacy_tokens=True``
        mints the older ``glpat-`` + 20 characters instead. ``test_hooks_key``: see
        :class:`~rotator.testing._http.FakeServer`.
        """
        super().__init__(clock, test_hooks_key=test_hooks_key)
        self.state = GitLabState(routable_tokens=not legacy_tokens)
        self.supports_token_filters = supports_token_filters
        self._limiter = FixedWindowLimiter(requests_per_minute, self.clock) if requests_per_minute else None
        self.route("GET", f"{API}/version", self._version)
        self.route("GET", f"{API}/user", self._user)
        self.route("GET", f"{API}/users/:user_id", self._user_get)
        self.route("GET", f"{API}/personal_access_tokens/self", self._token_self)
        for plural in RESOURCE_KINDS:
            base = f"{API}/{plural}/:id"
            self.route("GET", base, self._resource_get)
            self.route("GET", f"{base}/members/all/:user_id", self._member_all)
            self.route("GET", f"{base}/access_tokens", self._list)
            self.route("POST", f"{base}/access_tokens", self._create)
            self.route("POST", f"{base}/access_tokens/self/rotate", self._self_rotate)
            self.route("GET", f"{base}/access_tokens/:token_id", self._get)
            self.route("POST", f"{base}/access_tokens/:token_id/rotate", self._rotate)
            self.route("DELETE", f"{base}/access_tokens/:token_id", self._revoke)
        self._install_service_accounts()
        self._install_groups()

    # ---- server hooks -------------------------------------------------------------------------

    def canned_error(self, status: int, shape: str | None, request: Request) -> Response:
        """GitLab's body for ``status`` (``shape`` picks a variant, e.g. ``invalid_token``)."""
        return canned_error(status, shape, self.clock.now(), request)

    def not_found(self, request: Request) -> Response:
        """Grape's catch-all 404."""
        del request
        return Response(404, {"error": "404 Not Found"})

    def gate(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        """Rack::Attack sits in front of the API: throttle per credential (or IP) when enabled."""
        if self._limiter is None:
            return None, {}
        allowed, remaining, reset_in = self._limiter.hit(auth.credential(request) or request.client)
        reset_at = self.clock.now() + dt.timedelta(seconds=reset_in)
        headers = {
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(self._limiter.limit),
            "RateLimit-Observed": str(self._limiter.limit - remaining),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(math.ceil(reset_at.timestamp())),
            "RateLimit-ResetTime": reset_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        if allowed:
            return None, headers
        throttled = Response(429, "Retry later\n", {"Retry-After": str(math.ceil(reset_in))})
        return throttled, headers

    def owns_credential(self, value: str) -> bool:
        """Whether ``value`` is a token this instance minted (live or not)."""
        with self.lock:
            return self.state.token_by_value(value) is not None

    # ---- test-only helpers --------------------------------------------------------------------

    def seed_user(self, username: str, *, admin: bool = False) -> User:
        """Create a human user."""
        with self.lock:
            return self.state.add_user(username, admin=admin)

    def seed_resource(self, kind: ResourceKind, path: str, *, parent: Resource | None = None) -> Resource:
        """Create a project or group."""
        with self.lock:
            return self.state.add_resource(kind, path, parent=parent)

    def seed_member(self, resource: Resource, user: User, access_level: int) -> None:
        """Make ``user`` a member of ``resource``."""
        with self.lock:
            resource.members[user.id] = access_level

    def seed_personal_token(
        self, user: User, scopes: list[str], *, days: int | None = 365, name: str = "token"
    ) -> Token:
        """Mint a personal access token for ``user`` (value in ``.value``)."""
        with self.lock:
            now = self.clock.now()
            expires = now.date() + dt.timedelta(days=days) if days is not None else None
            return self.state.add_token(user, name, scopes, expires, now)

    def seed_service_account(self, owner: Resource | None, name: str = "Service account user") -> User:
        """Create a service account provisioned by a group or project (``None``: by the instance)."""
        with self.lock:
            return self.state.add_service_account(owner, name)

    def seed_resource_token(
        self,
        resource: Resource,
        name: str,
        scopes: list[str],
        *,
        days: int = 30,
        access_level: int = MAINTAINER,
    ) -> Token:
        """Mint a project or group access token directly, bypassing the API."""
        with self.lock:
            now = self.clock.now()
            bot = self.state.add_bot(resource, name, access_level)
            expires = now.date() + dt.timedelta(days=days)
            return self.state.add_token(
                bot, name, scopes, expires, now, resource=resource, access_level=access_level
            )

    def set_project_role(self, project_id: int, username: str, access_level: int | None) -> None:
        """What an Owner does in the members page: give ``username`` a direct role, or remove them (``None``).

        A user removed from one of the fake's (private) projects then gets GitLab's
        ``404 Project Not Found`` on every route of that project (``reference/gitlab.md`` §1.9); a
        user demoted below Maintainer gets 401 on its token routes and 400 "cannot delete".
        """
        with self.lock:
            project = self.state.resources[("project", project_id)]
            user = next(u for u in self.state.users.values() if u.username == username)
            if access_level is None:
                project.members.pop(user.id, None)
            else:
                project.members[user.id] = access_level

    def set_max_lifetime(self, days: int) -> None:
        """An admin's lower "Maximum allowable lifetime for access tokens" (``reference/gitlab.md`` §1.8).

        A create asking for a later ``expires_at`` gets GitLab's 400 "Expires at must be before D";
        one without ``expires_at`` gets the limit.
        """
        with self.lock:
            self.state.max_lifetime_days = days

    def set_descriptions(self, mode: Descriptions) -> None:
        """How tokens minted from now on treat ``description``: ``stored`` (17.7+), ``ignored``, ``refused``.

        ``ignored`` is a server before 17.7 (``reference/gitlab-2.md`` §4): Grape drops the
        undeclared parameter and the token's JSON has no ``description`` key. ``refused`` answers a
        create that carries one with Grape's 400 ``description does not have a valid value``,
        creating nothing.
        """
        with self.lock:
            self.state.descriptions = mode

    def test_only_user(self, username: str) -> User:
        """TEST ONLY: the user called ``username`` (the seed's ``rotator-manager``, say), to seed for."""
        with self.lock:
            return next(user for user in self.state.users.values() if user.username == username)

    def test_only_token(self, token_id: int) -> Token:
        """TEST ONLY: the full record of a token, value included."""
        with self.lock:
            return self.state.tokens[token_id]

    def test_only_minted_values(self) -> list[str]:
        """TEST ONLY: every token value this instance ever minted, to scan output for leaks."""
        with self.lock:
            return [t.value for t in self.state.tokens.values()]

    def test_only_accepts(self, value: str) -> bool:
        """TEST ONLY: whether GitLab would accept ``value`` as a credential now (known, active)."""
        with self.lock:
            token = self.state.token_by_value(value)
            return token is not None and token.active(self.clock.now())

    def test_only_active_token_ids(self, project_id: int) -> list[int]:
        """TEST ONLY: ids of a project's active access tokens, past any fault or rate limit."""
        with self.lock:
            now = self.clock.now()
            project = self.state.resources.get(("project", project_id))
            return [t.id for t in self.state.resource_tokens(project) if t.active(now)] if project else []

    def test_only_reuse_detections(self) -> list[int]:
        """TEST ONLY: ids of revoked tokens someone presented on a rotate path (family revoked)."""
        with self.lock:
            return list(self.state.reuse_detections)

    # ---- shared steps -------------------------------------------------------------------------

    def _auth(self, request: Request, scopes: frozenset[str] | None = None) -> tuple[User, Token]:
        return auth.authenticate(self.state, request, self.clock.now(), scopes)

    def _resource(self, request: Request) -> tuple[ResourceKind, Resource]:
        plural = request.path.removeprefix(f"{API}/").split("/", 1)[0]
        kind = RESOURCE_KINDS[plural]
        resource = self.state.find_resource(kind, request.args["id"])
        return kind, resource if resource is not None else _missing(kind)

    def _visible(self, user: User, resource: Resource) -> None:
        # The fake's projects and groups are private: members only; others get GitLab's 404.
        if self.state.access_level(user, resource) == 0:
            _missing(resource.kind)

    def _token_page(self, request: Request, tokens: list[Token]) -> Response:
        """A token list as every token list route answers it: filtered (if supported), one page."""
        now = self.clock.now()
        params = request.form()
        if self.supports_token_filters:
            tokens = _filter(tokens, params, now)
        return _paginate(request, params, [t.as_json(now) for t in tokens])

    def _page(self, request: Request, items: list[Any]) -> Response:
        """One page of ``items`` (JSON objects), as GitLab's offset pagination answers a list."""
        return _paginate(request, request.form(), items)

    def _find_token(self, resource: Resource, token_id: str) -> Token | None:
        if not token_id.isdigit():
            return None
        token = self.state.tokens.get(int(token_id))
        return token if token is not None and token.resource is resource else None

    # ---- handlers -----------------------------------------------------------------------------

    def _version(self, request: Request) -> Response:
        self._auth(request)
        return Response(200, {"version": "18.6.0-ee", "revision": "fake", "enterprise": True})

    def _user(self, request: Request) -> Response:
        user, _ = self._auth(request, auth.USER_SCOPES)
        return Response(200, user.as_json(f"http://{request.host}"))

    def _user_get(self, request: Request) -> Response:
        """``GET /users/:id``: anyone sees ``bot``; an admin sees ``is_admin`` too, never ``user_type``.

        GitLab's admin view (``Entities::UserWithAdmin``) adds ``is_admin``, ``note``,
        ``namespace_id`` and ``created_by``; no entity shows ``user_type``.
        """
        caller, _ = self._auth(request, auth.USER_SCOPES)
        raw = request.args["user_id"]
        user = self.state.users.get(int(raw)) if raw.isdigit() else None
        if user is None:
            error(404, "404 User Not Found")
        body = user.as_json(f"http://{request.host}")
        if not caller.admin:
            del body["is_admin"]
        return Response(200, body)

    def _token_self(self, request: Request) -> Response:
        _, token = self._auth(request, auth.ANY_SCOPE)
        return Response(200, token.as_json(self.clock.now()))

    def _resource_get(self, request: Request) -> Response:
        user, _ = self._auth(request)
        kind, resource = self._resource(request)
        self._visible(user, resource)
        level = self.state.access_level(user, resource)
        key = "project_access" if kind == "project" else "group_access"
        return Response(
            200,
            {
                "id": resource.id,
                "path_with_namespace" if kind == "project" else "full_path": resource.path,
                "name": resource.path.rsplit("/", 1)[-1],
                "permissions": {key: {"access_level": level, "notification_level": 3}},
            },
        )

    def _member_all(self, request: Request) -> Response:
        """``lib/api/members.rb``: the source first (its 404), then ``find_by!`` over every membership.

        ``find_all_members(source).order(access_level: :desc).find_by!(user_id:)``: the highest of
        the direct and inherited roles; none is ``ActiveRecord::RecordNotFound``, which the API
        answers ``404 {"message": "404 Not found"}``. An admin is no member unless made one.
        """
        user, _ = self._auth(request)
        raw = request.args["user_id"]
        if not raw.isdigit():
            message(400, {"error": "user_id is invalid"})
        _, resource = self._resource(request)
        self._visible(user, resource)
        member = self.state.users.get(int(raw))
        level = self.state.member_level(member, resource) if member is not None else 0
        if member is None or level == 0:
            error(404, "404 Not found")
        base = f"http://{request.host}"
        return Response(
            200,
            {
                **{k: v for k, v in member.as_json(base).items() if k in _MEMBER_FIELDS},
                "avatar_url": None,
                "access_level": level,
                "created_at": "2026-01-01T00:00:00.000Z",
                "expires_at": None,
                "membership_state": "active",
            },
        )

    def _list(self, request: Request) -> Response:
        user, _ = self._auth(request)
        kind, resource = self._resource(request)
        self._visible(user, resource)
        if self.state.access_level(user, resource) < MANAGER_ROLE[kind]:
            error(401, "401 Unauthorized")
        now = self.clock.now()
        params = request.form()
        tokens = self.state.resource_tokens(resource)
        if self.supports_token_filters:
            tokens = _filter(tokens, params, now)
        return _paginate(request, params, [t.as_json(now) for t in tokens])

    def _get(self, request: Request) -> Response:
        user, _ = self._auth(request)
        kind, resource = self._resource(request)
        self._visible(user, resource)
        if self.state.access_level(user, resource) < MANAGER_ROLE[kind]:
            error(401, "401 Unauthorized")
        token = self._find_token(resource, request.args["token_id"])
        if token is None:
            error(404, f"404 {kind} Access Token Not Found")
        return Response(200, token.as_json(self.clock.now()))

    def _create(self, request: Request) -> Response:
        user, _ = self._auth(request)
        params = request.form()
        name, scopes, level, expires = _create_params(params)
        if "description" in params and self.state.descriptions == "refused":
            message(400, {"error": "description does not have a valid value"})
        kind, resource = self._resource(request)
        self._visible(user, resource)
        now = self.clock.now()
        caller_level = self.state.access_level(user, resource)
        if user.bot or caller_level < MANAGER_ROLE[kind]:
            error(
                400,
                f"400 Bad request - User does not have permission to create {kind} access token",
            )
        if level > caller_level:
            error(
                400,
                "400 Bad request - Access level of the token contains permissions not held by the"
                " creating user",
            )
        if expires is None and self.state.require_expiry:
            expires = self.state.max_expiry(now)
        self._check_expiry(expires, now)
        if not scopes:
            error(400, "400 Bad request - Scopes can't be blank")
        bot = self.state.add_bot(resource, name, level)
        description = params.get("description")
        token = self.state.add_token(
            bot,
            name,
            scopes,
            expires,
            now,
            resource=resource,
            access_level=level,
            description=description if isinstance(description, str) else None,
        )
        return Response(201, {**token.as_json(now), "token": token.value})

    def _rotate(self, request: Request) -> Response:
        user, _ = self._auth(request)
        expires = date_param(request.form(), "expires_at")
        kind, resource = self._resource(request)
        self._visible(user, resource)
        caller_level = self.state.access_level(user, resource)
        # A project/group token may not manage other tokens (``project_bot_access``).
        accessible = not user.bot and caller_level >= MANAGER_ROLE[kind]
        token = self._find_token(resource, request.args["token_id"]) if accessible else None
        if token is None:
            # "Only admins should be informed if the token doesn't exist"
            error(*((404, "404 Not Found") if user.admin else (401, "401 Unauthorized")))
        if (token.access_level or 0) > caller_level:
            error(
                400,
                "400 Bad request - Not eligible to rotate tokens with permissions not held by the user",
            )
        return self._rotate_token(token, expires)

    def _self_rotate(self, request: Request) -> Response:
        user, caller = self._auth(request, auth.SELF_ROTATE_SCOPES)
        expires = date_param(request.form(), "expires_at")  # Grape validates params first
        if not user.bot:
            error(405, "405 Method Not Allowed")
        _, resource = self._resource(request)
        self._visible(user, resource)
        if caller.resource is not resource:
            error(401, "401 Unauthorized")
        return self._rotate_token(caller, expires)

    def _rotate_token(
        self, token: Token, expires: dt.date | None, *, always_expires: bool = False
    ) -> Response:
        """Rotate ``token``; ``always_expires``: a service account's, whose expiry is always enforced."""
        now = self.clock.now()
        if token.revoked:
            error(400, "400 Bad request - Token already revoked")
        if expires is None and (always_expires or self.state.require_expiry):
            expires = now.date() + dt.timedelta(days=ROTATE_DEFAULT_DAYS)
        self._check_expiry(expires, now)
        # Old token revoked and new one created in one transaction, same bot user and role.
        token.revoked = True
        new = self.state.add_token(
            self.state.users[token.user_id],
            token.name,
            token.scopes,
            expires,
            now,
            resource=token.resource,
            access_level=token.access_level,
            description=token.description,
            previous_id=token.id,
        )
        return Response(200, {**new.as_json(now), "token": new.value})

    def _revoke(self, request: Request) -> Response:
        user, _ = self._auth(request)
        kind, resource = self._resource(request)
        self._visible(user, resource)
        token = self._find_token(resource, request.args["token_id"])
        if token is None:
            error(404, f"404 {kind} Access Token Not Found")
        if self.state.access_level(user, resource) < MANAGER_ROLE[kind]:
            bot = self.state.users[token.user_id]
            error(400, f"400 Bad request - {user.name} cannot delete {bot.name}")
        token.revoked = True  # revoking twice is a no-op that still answers 204
        return Response(204)

    def _check_expiry(self, expires: dt.date | None, now: dt.datetime) -> None:
        limit = self.state.max_expiry(now)
        if expires is not None and expires > limit:
            error(400, f"400 Bad request - Expires at must be before {limit.isoformat()}")


# ---- helpers ----------------------------------------------------------------------------------


def _missing(kind: ResourceKind) -> Any:  # noqa: ANN401 - never returns
    error(404, f"404 {kind.capitalize()} Not Found")


def _create_params(params: dict[str, Any]) -> tuple[str, list[str], int, dt.date | None]:
    """Grape's declared-params validation, in declaration order."""
    name = params.get("name")
    if name is None or name == "":
        message(400, {"error": "name is missing"})
    scopes = params.get("scopes")
    if scopes is None:
        message(400, {"error": "scopes is missing"})
    scopes = [scopes] if isinstance(scopes, str) else scopes
    if not isinstance(scopes, list) or any(s not in RESOURCE_BOT_SCOPES for s in scopes):
        message(400, {"error": "scopes does not have a valid value"})
    level = params.get("access_level", MAINTAINER)
    try:
        level = int(level)
    except (TypeError, ValueError):
        level = -1
    if level not in ACCESS_LEVELS:
        message(400, {"error": "access_level does not have a valid value"})
    return str(name), [str(s) for s in scopes], level, date_param(params, "expires_at")


_SORTS: dict[str, Callable[[Token], Any]] = {
    "created": lambda t: t.created_at,
    "expires": lambda t: t.expires_at or dt.date.max,
    "last_used": lambda t: t.last_used_at or dt.datetime.min.replace(tzinfo=dt.UTC),
    "name": lambda t: t.name,
}


def _filter(tokens: list[Token], params: dict[str, Any], now: dt.datetime) -> list[Token]:
    state, search, revoked = params.get("state"), params.get("search"), params.get("revoked")
    if state in {"active", "inactive"}:
        # The SQL scopes compare dates: inactive is "revoked OR expires_at < CURRENT_DATE", so on
        # its expiry day a token is already refused yet still listed under state=active.
        today = now.date()
        tokens = [
            t
            for t in tokens
            if (t.revoked or (t.expires_at is not None and t.expires_at < today)) == (state == "inactive")
        ]
    elif state is not None:
        message(400, {"error": "state does not have a valid value"})
    if revoked is not None:
        wanted = str(revoked).lower() == "true"
        tokens = [t for t in tokens if t.revoked == wanted]
    tokens = _date_filters(tokens, params)
    if search:
        tokens = [t for t in tokens if str(search).lower() in t.name.lower()]
    sort = str(params.get("sort", ""))
    field, _, direction = sort.rpartition("_")
    if field in _SORTS and direction in {"asc", "desc"}:
        tokens = sorted(tokens, key=_SORTS[field], reverse=direction == "desc")
    return tokens


_DATE_FILTERS: dict[str, tuple[Callable[[Token], Any], bool]] = {
    "created": (lambda t: t.created_at, True),
    "last_used": (lambda t: t.last_used_at, True),
    "expires": (lambda t: t.expires_at, False),
}


def _date_filters(tokens: list[Token], params: dict[str, Any]) -> list[Token]:
    """``created_*``, ``last_used_*`` (timestamps) and ``expires_*`` (dates), ``_before``/``_after``."""
    for field, (getter, is_time) in _DATE_FILTERS.items():
        for side in ("before", "after"):
            raw = params.get(f"{field}_{side}")
            if raw is None:
                continue
            try:
                bound: Any = (
                    dt.datetime.fromisoformat(str(raw)) if is_time else dt.date.fromisoformat(str(raw))
                )
            except ValueError:
                message(400, {"error": f"{field}_{side} is invalid"})
            if is_time and bound.tzinfo is None:
                bound = bound.replace(tzinfo=dt.UTC)
            tokens = [
                t
                for t in tokens
                if getter(t) is not None and (getter(t) <= bound if side == "before" else getter(t) >= bound)
            ]
    return tokens


def _paginate(request: Request, params: dict[str, Any], items: list[Any]) -> Response:
    """Offset pagination: ``page``/``per_page`` (20, at most 100) and GitLab's headers."""
    try:
        page = max(1, int(params.get("page", 1)))
        per_page = min(100, max(1, int(params.get("per_page", 20))))
    except (TypeError, ValueError):
        return message(400, {"error": "page is invalid"})
    total = len(items)
    pages = max(1, math.ceil(total / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    base = f"http://{request.host}{request.path}"

    def link(number: int) -> str:
        query = {k: v for k, v in params.items() if not isinstance(v, list)}
        query.update({"page": str(number), "per_page": str(per_page)})
        return base + "?" + urllib.parse.urlencode(query)

    links = []
    if page > 1:
        links.append(f'<{link(page - 1)}>; rel="prev"')
    if page < pages:
        links.append(f'<{link(page + 1)}>; rel="next"')
    links += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
    headers = {
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Total": str(total),
        "X-Total-Pages": str(pages),
        "X-Next-Page": str(page + 1) if page < pages else "",
        "X-Prev-Page": str(page - 1) if page > 1 else "",
        "Link": ", ".join(links),
    }
    return Response(200, chunk, headers)
