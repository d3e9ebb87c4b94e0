"""The fake GitLab's service-account routes: the accounts and their personal access tokens.

``reference/gitlab-2.md`` §1 and GitLab's own request specs (``ee/spec/requests/api/
{group,project}_service_accounts_spec.rb``) give the rules mirrored here:

* group and project service accounts: ``GET/POST /:kind/:id/service_accounts`` and their tokens at
  ``…/service_accounts/:user_id/personal_access_tokens`` (list with the token filters, create 201,
  ``…/:token_id/rotate`` 200, ``DELETE …/:token_id`` 204). A group's need its Owner, a project's a
  Maintainer or Owner (an admin may do both); anyone else who can see the resource gets
  ``403 Forbidden``, others its ``404 Group Not Found``. A user the resource did not provision, or
  no service account at all, is ``404 User Not Found``; a token not that user's is
  ``404 Personal Access Token Not Found``.
* instance service accounts (admin only): ``GET/POST /service_accounts`` (the list paginated, 20 a
  page by default, newest first), and their tokens through
  the personal access token API: ``POST /users/:user_id/personal_access_tokens``,
  ``GET /personal_access_tokens?user_id=``, ``GET /personal_access_tokens/:id``,
  ``POST /personal_access_tokens/:id/rotate``, ``DELETE /personal_access_tokens/:id``.

The tokens are ordinary personal access tokens of the same user, so ``read_user`` is a valid scope
(project and group tokens refuse it); no bot user is created; expiry is always required (the Free
tier's rule): a create without ``expires_at`` gets the maximum lifetime, a rotate 7 days. A create
the token service refuses (an expiry past the maximum) is ``422 {"message": "<reason>"}``; rotating
a revoked token is ``400 Token already revoked``; presenting a revoked token as the credential on a
rotate path revokes its family (:mod:`rotator.testing._gitlab_auth`). Through the personal access
token API a non-admin asking about another user's token gets ``401`` (GET, rotate; none at all
too) or ``400 Bad request`` (DELETE, which finds it first: ``404`` only when there is none); an
admin listing ``?user_id=`` of no user gets ``404 User Not Found``.
"""

import datetime as dt

from collections.abc import Callable
from typing import Any

from rotator.testing._clock import FakeClock
from rotator.testing._gitlab_errors import date_param, error, message
from rotator.testing._gitlab_state import (
    API,
    MANAGER_ROLE,
    PERSONAL_SCOPES,
    RESOURCE_KINDS,
    GitLabState,
    Resource,
    ResourceKind,
    Token,
    User,
)
from rotator.testing._http import Handler, Request, Response


class ServiceAccountRoutes:
    """Mixed into :class:`rotator.testing.gitlab.FakeGitLab`, which supplies what is declared here."""

    state: GitLabState
    clock: FakeClock
    route: Callable[[str, str, Handler], None]
    _auth: Callable[..., tuple[User, Token]]
    _resource: Callable[[Request], tuple[ResourceKind, Resource]]
    _visible: Callable[[User, Resource], None]
    _token_page: Callable[[Request, list[Token]], Response]
    _page: Callable[[Request, list[Any]], Response]
    _rotate_token: Callable[..., Response]

    def _install_service_accounts(self) -> None:
        """Register the routes (after the access-token ones: ``/personal_access_tokens/self`` wins)."""
        for plural in RESOURCE_KINDS:
            base = f"{API}/{plural}/:id/service_accounts"
            self.route("GET", base, self._sa_list)
            self.route("POST", base, self._sa_create)
            tokens = f"{base}/:user_id/personal_access_tokens"
            self.route("GET", tokens, self._sa_tokens)
            self.route("POST", tokens, self._sa_token_create)
            self.route("POST", f"{tokens}/:token_id/rotate", self._sa_token_rotate)
            self.route("DELETE", f"{tokens}/:token_id", self._sa_token_revoke)
        self.route("GET", f"{API}/service_accounts", self._instance_sa_list)
        self.route("POST", f"{API}/service_accounts", self._instance_sa_create)
        self.route("POST", f"{API}/users/:user_id/personal_access_tokens", self._pat_create)
        self.route("GET", f"{API}/personal_access_tokens", self._pat_list)
        self.route("GET", f"{API}/personal_access_tokens/:token_id", self._pat_get)
        self.route("POST", f"{API}/personal_access_tokens/:token_id/rotate", self._pat_rotate)
        self.route("DELETE", f"{API}/personal_access_tokens/:token_id", self._pat_revoke)

    # ---- group and project service accounts ---------------------------------------------------

    def _sa_owner(self, request: Request) -> tuple[User, Resource]:
        """The caller, once allowed to manage the resource's service accounts."""
        user, _ = self._auth(request)
        kind, resource = self._resource(request)
        self._visible(user, resource)
        if user.bot or self.state.access_level(user, resource) < MANAGER_ROLE[kind]:
            error(403, "403 Forbidden")
        return user, resource

    def _sa_user(self, request: Request) -> User:
        """The resource's service account named by ``:user_id``."""
        _, resource = self._sa_owner(request)
        return self._provisioned(request.args["user_id"], resource)

    def _provisioned(self, user_id: str, resource: Resource | None) -> User:
        account = self.state.users.get(int(user_id)) if user_id.isdigit() else None
        if account is None or not account.service_account or account.provisioned_by is not resource:
            error(404, "404 User Not Found")
        return account

    def _sa_list(self, request: Request) -> Response:
        _, resource = self._sa_owner(request)
        accounts = [
            u for u in self.state.users.values() if u.service_account and u.provisioned_by is resource
        ]
        # Paginated like every list (``present paginate(...)``), newest first.
        return self._page(request, [_account(u) for u in sorted(accounts, key=lambda u: -u.id)])

    def _sa_create(self, request: Request) -> Response:
        _, resource = self._sa_owner(request)
        return self._new_account(request, resource)

    def _sa_tokens(self, request: Request) -> Response:
        account = self._sa_user(request)
        return self._token_page(request, self.state.personal_tokens(account))

    def _sa_token_create(self, request: Request) -> Response:
        return self._create_for(request, self._sa_user(request))

    def _sa_token_rotate(self, request: Request) -> Response:
        account = self._sa_user(request)
        token = self._own_token(account, request.args["token_id"], "404 Not Found")
        return self._sa_rotate(token, request)

    def _sa_token_revoke(self, request: Request) -> Response:
        account = self._sa_user(request)
        token = self._own_token(account, request.args["token_id"], "404 Personal Access Token Not Found")
        token.revoked = True  # revoking twice is a no-op that still answers 204
        return Response(204)

    # ---- instance service accounts and the personal access token API -------------------------

    def _admin(self, request: Request) -> User:
        user, _ = self._auth(request)
        if not user.admin:
            error(403, "403 Forbidden")
        return user

    def _instance_sa_list(self, request: Request) -> Response:
        self._admin(request)
        accounts = [u for u in self.state.users.values() if u.service_account and u.provisioned_by is None]
        # ``present paginate(users)``, ordered by id, newest first (the API's defaults).
        return self._page(request, [_account(u) for u in sorted(accounts, key=lambda u: -u.id)])

    def _instance_sa_create(self, request: Request) -> Response:
        self._admin(request)
        return self._new_account(request, None)

    def _pat_create(self, request: Request) -> Response:
        self._admin(request)
        user_id = request.args["user_id"]
        user = self.state.users.get(int(user_id)) if user_id.isdigit() else None
        if user is None:
            error(404, "404 User Not Found")
        return self._create_for(request, user)

    def _pat_list(self, request: Request) -> Response:
        caller, _ = self._auth(request)
        wanted = request.form().get("user_id")
        if wanted is not None and not caller.admin and str(wanted) != str(caller.id):
            error(401, "401 Unauthorized")  # non-admins list their own tokens only
        if wanted is not None and caller.admin and self.state.users.get(_number(wanted)) is None:
            error(404, "404 User Not Found")  # the finder's ``find_user`` (an admin's filter only)
        owners = {caller.id} if wanted is None and not caller.admin else None
        tokens = [
            t
            for t in self.state.tokens.values()
            if (owners is None or t.user_id in owners) and (wanted is None or str(t.user_id) == str(wanted))
        ]
        return self._token_page(request, tokens)

    def _pat_token(self, request: Request) -> Token:
        """GET and rotate: ``Ability.allowed?`` on the token's user, else ``admin ? 404 : 401``.

        ``lib/api/personal_access_tokens.rb``: ``can_admin_all_resources? ? not_found! :
        unauthorized!``, so a non-admin gets 401 for another user's token and for none at all.
        """
        caller, _ = self._auth(request)
        token = self.state.tokens.get(_number(request.args["token_id"]))
        if token is None or not (caller.admin or token.user_id == caller.id):
            if caller.admin:
                error(404, "404 Not Found")
            error(401, "401 Unauthorized")
        return token

    def _pat_get(self, request: Request) -> Response:
        return Response(200, self._pat_token(request).as_json(self.clock.now()))

    def _pat_rotate(self, request: Request) -> Response:
        return self._sa_rotate(self._pat_token(request), request)

    def _pat_revoke(self, request: Request) -> Response:
        """``find_token`` (404 when there is none), then ``RevokeService``: another user's is a 400."""
        caller, _ = self._auth(request)
        token = self.state.tokens.get(_number(request.args["token_id"]))
        if token is None:
            error(404, "404 Not Found")
        if not (caller.admin or token.user_id == caller.id):
            error(400, "400 Bad request")  # the service refused; ``bad_request!(nil)``
        token.revoked = True
        return Response(204)

    # ---- shared steps -------------------------------------------------------------------------

    def _new_account(self, request: Request, resource: Resource | None) -> Response:
        name = request.form().get("name")
        account = self.state.add_service_account(resource, str(name) if name else "Service account user")
        return Response(201, {**_account(account), "email": f"{account.username}@noreply.example.com"})

    def _own_token(self, account: User, token_id: str, missing: str) -> Token:
        token = self.state.tokens.get(int(token_id)) if token_id.isdigit() else None
        if token is None or token.user_id != account.id or token.resource is not None:
            error(404, missing)
        return token

    def _create_for(self, request: Request, user: User) -> Response:
        params = request.form()
        name, scopes, expires = _token_params(params)
        now = self.clock.now()
        if expires is None:
            expires = self.state.max_expiry(now)  # expiry is always enforced for service accounts
        limit = self.state.max_expiry(now)
        if expires > limit:
            message(422, {"message": f"Expires at must be before {limit.isoformat()}"})
        description = params.get("description")
        token = self.state.add_token(
            user,
            name,
            scopes,
            expires,
            now,
            description=description if isinstance(description, str) else None,
        )
        return Response(201, {**token.as_json(now), "token": token.value})

    def _sa_rotate(self, token: Token, request: Request) -> Response:
        # As a resource token's rotation, the expiry always enforced (a service account's, §1.4).
        return self._rotate_token(token, date_param(request.form(), "expires_at"), always_expires=True)


def _number(raw: object) -> int:
    """A path or query id as the finders take it; anything else matches no row (-1)."""
    text = str(raw)
    return int(text) if text.isdigit() else -1


def _account(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "name": user.name}


def _token_params(params: dict[str, Any]) -> tuple[str, list[str], dt.date | None]:
    """Grape's declared-params validation of a personal access token create, in order."""
    name = params.get("name")
    if name is None or name == "":
        message(400, {"error": "name is missing"})
    scopes = params.get("scopes")
    if scopes is None:
        message(400, {"error": "scopes is missing"})
    scopes = [scopes] if isinstance(scopes, str) else scopes
    if not isinstance(scopes, list) or any(s not in PERSONAL_SCOPES for s in scopes):
        message(400, {"error": "scopes does not have a valid value"})
    return str(name), [str(s) for s in scopes], date_param(params, "expires_at")
