"""The GitLab adapter: :class:`rotator.core.ports.GitLabPort` over python-gitlab, with our own retry rules.

python-gitlab can retry by itself, but its rules are wrong for rotation: with transient retries on
it re-POSTs a create after a 5xx or a lost response (a second token whose value nobody sees), and it
obeys a 429 by sleeping as long as the server asks, ten times over. So its retries are off on every
request and this module decides instead (``reference/gitlab.md`` §5.4, §8), through the adapters'
one loop, :func:`rotator.adapters.retrying.call`:

* a 429 was refused before any effect, so every call retries it, waiting what the server asks
  (``Retry-After``, else ``RateLimit-Reset``, else backoff; capped by :mod:`rotator.adapters.retrying`);
* a 5xx or a network failure leaves the outcome unknown, so only idempotent calls retry it, with
  backoff; :meth:`GitLabAPI.create_token` never does, and says ``not_applied=False`` so the engine
  reconciles by name instead;
* at most ``max_attempts`` tries per call, and a client-side limiter slot before every HTTP
  request, each page of a list included.

Every python-gitlab or requests failure becomes a :class:`rotator.core.errors.GitLabError` in one place
(:func:`_gitlab_error`), with a short message scrubbed of token values. A new token's value is popped
from the create response before anything else reads it and lives on only inside a :class:`Secret`.

Credentials go to ``gitlab.url`` and nowhere else (architecture §6). requests strips
``Authorization`` on a cross-host redirect but not ``PRIVATE-TOKEN``, and python-gitlab follows a
GET's redirect and any ``Link: rel="next"`` it is given. So no request follows a redirect; a 3xx
answer, or a next-page link whose scheme, host or port differ from ``gitlab.url``, fails the call
with one line naming the route and where it pointed (a list never comes back partial); and no
request is sent to an absolute URL outside ``gitlab.url``, whoever built it.

The environment's proxy and CA variables (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) are read once, when the adapter is built,
as requests would read them for ``gitlab.url`` (:func:`_environment`); a change to them afterwards
is not seen.
"""

import json
import os
import re
import socket
import threading
import time
import urllib.parse

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any, TypeVar

import gitlab
import requests
import structlog
import urllib3

from rotator.adapters import reach, retrying
from rotator.core.errors import GitLabError
from rotator.core.model import Kind, NewToken, Owner, Place, TokenInfo, TokenRequest, as_owner
from rotator.core.ports import CallLedger
from rotator.core.redact import redact
from rotator.core.secret import Secret


T = TypeVar("T")
log = structlog.get_logger("rotator")

#: python-gitlab's ``RETRYABLE_TRANSIENT_ERROR_CODES``: outcome unknown, retried on idempotent calls.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504, *range(520, 531)})
#: Answers by which GitLab refused a request before acting on it (``not_applied=True``).
REFUSED_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 422, 429})
_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
#: In a requests.ConnectionError's chain: no connection was made (refused, no such host), nothing sent.
_NOT_CONNECTED = (urllib3.exceptions.NewConnectionError, ConnectionRefusedError, socket.gaierror)
#: Reads and revokes: repeating them is harmless, so an unknown outcome is retried too.
_IDEMPOTENT = retrying.Policy(idempotent=True, transient=TRANSIENT_STATUSES)
#: A create: only a 429 (refused before any effect) is retried; anything else goes to reconciliation.
_ONCE = retrying.Policy(idempotent=False, transient=TRANSIENT_STATUSES)
# A 2xx answer whose body is not what GitLab documents fails while parsing, with one of these.
_UNEXPECTED = (AttributeError, KeyError, TypeError, ValueError)


class _Refused(Exception):  # noqa: N818 - names what rotator did, not an error category
    """A request rotator would not send on: a redirect, or a URL outside ``gitlab.url``."""

    def __init__(self, status: int | None, message: str, *, not_applied: bool) -> None:
        super().__init__(message)
        self.status, self.message, self.not_applied = status, message, not_applied


#: What GitLab's admins may do on every project and group (Owner).
_ADMIN = 50
_FAILURES = (gitlab.exceptions.GitlabError, requests.RequestException, _Refused, *_UNEXPECTED)
_MAX_MESSAGE = 300

_PROJECT = "GET /projects/:id"
_GROUP = "GET /groups/:id"
_MEMBER = "GET /groups/:id/members/all/:user_id"
_USER = "GET /user"
_ACCOUNTS = "GET /service_accounts"
_GROUP_PROJECTS = "GET /groups/:id/projects"
_SUBGROUPS = "GET /groups/:id/descendant_groups"
_GROUP_ACCOUNTS = "GET /groups/:id/service_accounts"
_SELF = "GET /personal_access_tokens/self"
_ID = r"/[^/]+"
_NUMBER = r"/\d+"


@dataclass(frozen=True, slots=True)
class _Where:
    """Where one owner's tokens live: the collection's path and its route template (for labels)."""

    path: str  # the list's and the create's path
    template: str  # the same, as a route: ``/groups/:id/access_tokens``
    one: str  # one token's path and template, with ``{}`` for the token id
    one_template: str
    listed: dict[str, str | int]  # query parameters of the list (the PAT API's user_id)
    create_path: str | None = None  # where a create goes, when not ``path`` (the PAT API)
    create_template: str | None = None
    single_read: bool = True  # GitLab has a GET for one token here (not for a service account's)


def _where(owner: Owner) -> _Where:
    """The paths of ``owner``'s tokens (``reference/gitlab.md`` §1, §4; ``gitlab-2.md`` §1.3)."""
    if owner.kind is not Kind.SERVICE_ACCOUNT:
        base, template = (
            f"/{owner.kind.value}s/{owner.id}/access_tokens",
            f"/{owner.kind.value}s/:id/access_tokens",
        )
        return _Where(base, template, base + "/{}", template + "/:token_id", {})
    if owner.via is None:  # an instance service account: the personal access token API (admin)
        return _Where(
            "/personal_access_tokens",
            "/personal_access_tokens",
            "/personal_access_tokens/{}",
            "/personal_access_tokens/:token_id",
            {"user_id": owner.id},
            create_path=f"/users/{owner.id}/personal_access_tokens",
            create_template="/users/:user_id/personal_access_tokens",
        )
    base = f"/{owner.via.value}s/{owner.via_id}/service_accounts/{owner.id}/personal_access_tokens"
    template = f"/{owner.via.value}s/:id/service_accounts/:user_id/personal_access_tokens"
    return _Where(base, template, base + "/{}", template + "/:token_id", {}, single_read=False)


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r":(\w+)", lambda m: _NUMBER[1:] if m[1] == "token_id" else _ID[1:], template))


#: The only route labels the request counter uses: a path the server chose (a redirect target, a
#: next-page link) must not become a time series. Paths are matched after the ``/api/v4`` prefix.
def _route_paths() -> dict[str, re.Pattern[str]]:
    owners = (
        Owner(Kind.PROJECT, 0),
        Owner(Kind.GROUP, 0),
        Owner(Kind.SERVICE_ACCOUNT, 0),
        Owner(Kind.SERVICE_ACCOUNT, 0, Kind.GROUP, 0),
        Owner(Kind.SERVICE_ACCOUNT, 0, Kind.PROJECT, 0),
    )
    routes = [
        _PROJECT,
        _GROUP,
        _MEMBER,
        _USER,
        _ACCOUNTS,
        _SELF,
        _GROUP_PROJECTS,
        _SUBGROUPS,
        _GROUP_ACCOUNTS,
    ]
    for at in map(_where, owners):
        create = at.create_template or at.template
        routes += [
            f"GET {at.template}",
            f"POST {create}",
            f"GET {at.one_template}",
            f"DELETE {at.one_template}",
        ]
    return {route: _pattern(route.split(" ", 1)[1]) for route in routes}


_ROUTE_PATHS = _route_paths()
#: Routes whose 401 may be about the token asked for, not the credential (a non-admin's PAT API).
_TARGET_401_ROUTES = frozenset({"GET /personal_access_tokens", "GET /personal_access_tokens/:token_id"})
_OTHER_ROUTE = "other"


class _Client(gitlab.Gitlab):
    """python-gitlab with its own retries off and our limiter in front of every HTTP request."""

    def __init__(
        self,
        url: str,
        limiter: retrying.Limiter,
        connect_timeout: float | None,
        **settings: Any,  # noqa: ANN401 - python-gitlab's settings, passed through
    ) -> None:
        """A client for ``url`` with python-gitlab's ``settings``; ``connect_timeout`` bounds each connect."""
        super().__init__(url, **settings)
        self._limiter = limiter
        self._connect_timeout = connect_timeout

    def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:  # noqa: ANN401 - python-gitlab's own signature, passed through
        """One HTTP request, exactly: every page of a ``get_all`` list comes through here too."""
        # An absolute URL comes from an answer (a next-page link): the credential rides along only
        # if it points at gitlab.url itself. Checked before the limiter: nothing is sent.
        url = self._build_url(path)
        if _origin(url) != _origin(self.url):
            message = f"a link in GitLab's answer points to {_shown(url)}, outside gitlab.url; not followed"
            raise _Refused(None, message, not_applied=True)
        kwargs.update(obey_rate_limit=False, retry_transient_errors=False)
        self._limiter.acquire()
        return super().http_request(verb, path, *args, **kwargs)

    def _get_session_opts(self) -> dict[str, Any]:
        # python-gitlab hands these to requests.Session.request on every request; http_request's
        # own keywords would become query parameters instead.
        opts = {**super()._get_session_opts(), "allow_redirects": False}
        if self._connect_timeout is not None:
            # requests' (connect, read) pair: a host that does not answer is given up on sooner
            # than an answer that is slow to come.
            opts["timeout"] = (self._connect_timeout, opts["timeout"])
        return opts

    def _check_redirects(self, result: requests.Response) -> None:  # type: ignore[override]
        """Refuse every 3xx and every foreign next-page link (python-gitlab calls this per answer).

        python-gitlab's own check lets a GET's redirect through; with redirects off, a 3xx would
        otherwise surface as a bare status without the ``Location`` it pointed to.
        """
        status, method = result.status_code, result.request.method or ""
        if HTTPStatus.MULTIPLE_CHOICES <= status < HTTPStatus.BAD_REQUEST:
            location = result.headers.get("Location")
            target = (
                _shown(urllib.parse.urljoin(result.url, location)) if location else "nowhere (no Location)"
            )
            message = f"redirected to {target}; not followed: the GitLab token goes to gitlab.url only"
            # A read changed nothing. For a create or a revoke, whatever answered may have passed
            # the request on before redirecting: unknown, so the engine reconciles (the safe side).
            raise _Refused(status, message, not_applied=method in {"GET", "HEAD"})
        next_url = result.links.get("next", {}).get("url")
        if next_url and _origin(urllib.parse.urljoin(result.url, next_url)) != _origin(self.url):
            message = (
                f"the next-page link points to {_shown(next_url)}, outside gitlab.url; not followed,"
                " so the list is incomplete"
            )
            raise _Refused(status, message, not_applied=method in {"GET", "HEAD"})


class GitLabAPI:
    """:class:`rotator.core.ports.GitLabPort` for one GitLab instance, as the manager token sees it."""

    def __init__(  # noqa: PLR0913 - every setting is a keyword with a default but the first two
        self,
        url: str,
        token: Secret,
        *,
        timeout: float,
        user_agent: str,
        requests_per_minute: int = 600,
        session: requests.Session | None = None,
        max_attempts: int = retrying.ATTEMPTS,
        connect_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_response: Callable[[str, str, str], None] | None = None,
        ledger: CallLedger | None = None,
    ) -> None:
        """Talk to ``url`` with the manager ``token``; ``sleep`` waits out limits and backoff.

        ``connect_timeout`` (at most ``timeout``) bounds the connect alone; ``timeout`` then bounds
        the wait for each answer. ``max_attempts`` 1 is ``check``'s: no retry of any kind.

        ``session`` carries every request (tests mount :mod:`rotator.testing.transport` on one);
        ``monotonic`` is the clock the rate limiter counts its window on, and moves as ``sleep`` waits.
        With a shared ``ledger`` (the journal's), ``requests_per_minute`` holds for every process
        sharing it, in the bucket ``gitlab:<url>`` (:class:`rotator.adapters.retrying.Limiter`).

        ``on_response(upstream, route, status)`` is told of every HTTP answer (status ``"error"``
        when none came), for the daemon's request counter.
        """
        self._url, self._token = url, token
        self._session = session or requests.Session()
        self._verify = _environment(self._session, url)
        self._limiter = retrying.Limiter(
            requests_per_minute,
            clock=monotonic,
            sleep=sleep,
            ledger=ledger,
            bucket=retrying.bucket("gitlab", url),
        )
        self._timeout, self._user_agent = timeout, user_agent
        self._connect_timeout = min(connect_timeout, timeout) if connect_timeout is not None else None
        self._max_attempts, self._sleep = max_attempts, sleep
        # The manager's own ``GET /user`` (its id, whether an admin), read once: the token is fixed
        # (an instance service account's level reads it afresh: ``is_admin`` can change).
        self._me: dict[str, Any] | None = None
        # Instance service accounts seen in GET /service_accounts: a user's type never changes and
        # ids are not reused, so an id once listed stays one.
        self._accounts: set[int] = set()
        # python-gitlab's exceptions drop the response headers, and a 429's Retry-After is in them:
        # remember the last response's headers (never its body) per thread.
        self._seen = threading.local()
        self._on_response = on_response
        #: Whether GitLab refused the manager token at its last use (the daemon's /readyz).
        self.credential_refused = False
        self._session.hooks["response"].append(self._remember)
        self._gl = self._client(token)

    def close(self) -> None:
        """Close the HTTP session (and its pooled connections)."""
        self._session.close()

    # ---- the port -------------------------------------------------------------------------------

    def project_id(self, project: int | str) -> int:
        """The numeric id of a project given by id (no call) or ``group/project`` path."""
        if isinstance(project, int):
            return project
        path = f"/projects/{urllib.parse.quote(project, safe='')}"
        return self._call(_PROJECT, lambda: int(self._get(path)["id"]), idempotent=True)

    def group_id(self, group: int | str) -> int:
        """The numeric id of a group given by id (no call) or ``group/sub`` path."""
        if isinstance(group, int):
            return group
        path = f"/groups/{urllib.parse.quote(group, safe='')}"
        return self._call(_GROUP, lambda: int(self._get(path)["id"]), idempotent=True)

    def manager_access_level(self, owner: Owner | int) -> int | None:
        """The manager's role where the owner's tokens live (the higher of direct and inherited).

        A project: its ``permissions`` (``GET /projects/:id``). A group: the manager's membership,
        inherited ones included (``GET /groups/:id/members/all/:user_id``; ``GET /groups/:id`` may
        leave ``permissions`` out). ``None`` if the manager is no member, unless an admin (50). An
        instance service account: 50 for an admin, else ``None`` (only an admin manages its tokens),
        from a ``GET /user`` read afresh: the daemon keeps one adapter for its life, and a manager
        demoted meanwhile must make a revoke's 404 prove nothing (``engine/retire.py``); a user
        that is no instance service account fails (:meth:`_instance_account`).
        An unreadable project or group fails (404, 401, 403) rather than reading as "no member".
        """
        owner = as_owner(owner)
        kind, resource = (
            (owner.kind, owner.id) if owner.kind is not Kind.SERVICE_ACCOUNT else (owner.via, owner.via_id)
        )
        if kind is None:
            if self._manager(fresh=True).get("is_admin") is not True:
                return None
            self._instance_account(owner)
            return _ADMIN
        if kind is Kind.PROJECT:
            return self._call(
                _PROJECT, lambda: _access_level(self._get(f"/projects/{resource}")), idempotent=True
            )
        return self._group_level(resource)

    def _group_level(self, group: int | None) -> int | None:
        """The manager's membership of ``group``, the highest of direct and inherited (GitLab orders it)."""
        me = self._manager()
        try:
            member = self._call(
                _MEMBER, lambda: self._get(f"/groups/{group}/members/all/{me['id']}"), idempotent=True
            )
        except GitLabError as error:
            # "404 Not found" is the member lookup's (no such member); an unreadable group is GitLab's
            # "404 Group Not Found", which stays an error (the engine reads it as "gone").
            if error.status != HTTPStatus.NOT_FOUND or "group not found" in error.message.lower():
                raise
            return _ADMIN if me.get("is_admin") is True else None
        level = member.get("access_level")
        return int(level) if level is not None else None

    def _instance_account(self, owner: Owner) -> None:
        """Fail unless the owner is an instance service account: in the admin's ``GET /service_accounts``.

        An admin may create a personal access token for any user, a person or a project's bot
        included, so a mistyped ``service_account.user_id`` would otherwise mint an api token for
        it. ``GET /users/:id`` cannot tell: GitLab's admin view shows no ``user_type``, and ``bot``
        holds for a project or group token's bot user too. The list (every page) is read once per
        adapter, and again for an id not in it (an account created since) before refusing. The
        group and project routes need no such read: GitLab answers 404 for a user they did not
        provision.
        """
        if owner.id in self._accounts:
            return

        def read() -> set[int]:
            listed = self._gl.http_list("/service_accounts", get_all=True, per_page=100)
            return {int(user["id"]) for user in listed}

        self._accounts |= self._call(_ACCOUNTS, read, idempotent=True)
        if owner.id not in self._accounts:
            raise GitLabError(
                upstream="gitlab",
                route=_ACCOUNTS,
                status=HTTPStatus.OK,
                message=(
                    f"user {owner.id} is not an instance service account (not in GET"
                    " /service_accounts); rotator makes its tokens for instance service accounts"
                    " only: check service_account.user_id"
                ),
                not_applied=True,
            )

    def _manager(self, *, fresh: bool = False) -> dict[str, Any]:
        """The manager's ``GET /user`` (id and ``is_admin``), read once per adapter unless ``fresh``.

        The id never changes; ``is_admin`` may (a demotion), so who relies on it asks ``fresh``.
        """
        if self._me is None or fresh:

            def read() -> dict[str, Any]:
                me = self._get("/user")
                return {"id": int(me["id"]), "is_admin": me.get("is_admin") is True}

            self._me = self._call(_USER, read, idempotent=True)
        return self._me

    def manager_self(self) -> TokenInfo:
        """The manager token itself."""
        return self._call(
            _SELF, lambda: _token_info(self._get("/personal_access_tokens/self")), idempotent=True
        )

    def list_tokens(self, owner: Owner | int) -> list[TokenInfo]:
        """Every token of the owner: all pages, no state filter, so revoked and expired ones too.

        Through the PAT API only the owner's own count, whatever ``user_id`` filter the server applied.
        """
        owner = as_owner(owner)
        at = _where(owner)
        return self._call(
            f"GET {at.template}",
            lambda: [
                _token_info(item)
                for item in self._gl.http_list(at.path, query_data=at.listed, get_all=True, per_page=100)
                if not at.listed or item.get("user_id") == owner.id
            ],
            idempotent=True,
        )

    def group_projects(self, group: int, *, include_subgroups: bool) -> list[Place]:
        """The group's projects, all pages: its own, and its subgroups' with ``include_subgroups``.

        ``with_shared=false``: a project shared with the group lives elsewhere, and is listed
        (if watched) where it lives. Archived projects are listed: their tokens still work.
        """
        query = {"include_subgroups": str(include_subgroups).lower(), "with_shared": "false"}
        return self._places(_GROUP_PROJECTS, f"/groups/{group}/projects", query, "path_with_namespace")

    def descendant_groups(self, group: int) -> list[Place]:
        """The group's subgroups at every depth, all pages."""
        return self._places(_SUBGROUPS, f"/groups/{group}/descendant_groups", {}, "full_path")

    def group_service_accounts(self, group: int) -> list[int]:
        """The user ids of the group's own service accounts, all pages (an Owner's read)."""
        path = f"/groups/{group}/service_accounts"
        return self._call(
            _GROUP_ACCOUNTS,
            lambda: [int(user["id"]) for user in self._gl.http_list(path, get_all=True, per_page=100)],
            idempotent=True,
        )

    def _places(self, route: str, path: str, query: dict[str, str], path_key: str) -> list[Place]:
        return self._call(
            route,
            lambda: [
                Place(int(item["id"]), str(item[path_key]))
                for item in self._gl.http_list(path, query_data=query, get_all=True, per_page=100)
            ],
            idempotent=True,
        )

    def get_token(self, owner: Owner | int, token_id: int) -> TokenInfo | None:
        """One token of the owner, or ``None`` on a 404 (or when not among its tokens).

        A group's or project's service account has no GET for one token: its list is read instead.
        Through the PAT API, a token of another user is not this owner's (``None``).
        """
        owner = as_owner(owner)
        at = _where(owner)
        if not at.single_read:
            return next((t for t in self.list_tokens(owner) if t.id == token_id), None)

        def read() -> TokenInfo | None:
            data = self._get(at.one.format(token_id))
            if at.listed and data.get("user_id") != owner.id:
                return None
            return _token_info(data)

        try:
            return self._call(f"GET {at.one_template}", read, idempotent=True)
        except GitLabError as error:
            if error.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def create_token(self, owner: Owner | int, request: TokenRequest) -> NewToken:
        """Create a token; only a 429 is retried (see the module docstring).

        GitLab answers 201; any 2xx carrying a value is taken, since refusing it would throw away the
        only copy of a token that exists. A personal access token (a service account's) has no
        ``access_level``: the user's own role is the token's. A ``description`` a server refuses
        (400 naming it: nothing was created) is dropped and the create asked once more, with a
        note; one it ignores (before 17.7) is noted too.
        """
        owner = as_owner(owner)
        at = _where(owner)
        if owner.kind is Kind.SERVICE_ACCOUNT and owner.via is None:
            self._instance_account(owner)  # before the POST: never a token for a person
        path = at.create_path or at.path
        body: dict[str, Any] = {
            "name": request.name,
            "scopes": list(request.scopes),
            "access_level": request.access_level,
            "expires_at": request.expires_at.isoformat(),
        }
        if owner.kind is Kind.SERVICE_ACCOUNT:
            del body["access_level"]
        if request.description:
            body["description"] = request.description

        def send() -> NewToken:
            data = _object(self._gl.http_request("post", path, post_data=body))
            # First thing: move the value out of the dict, so nothing below (parsing, an error
            # message, a traceback's locals) can see it outside a Secret.
            raw = data.pop("token", None)
            value, raw = Secret(raw if isinstance(raw, str) else ""), None
            if not value.reveal():
                msg = "create answered without a token value"
                raise gitlab.exceptions.GitlabParsingError(msg)
            if "description" in body and data.get("description") != body["description"]:
                log.info("gitlab.description_ignored", owner=str(owner), token=request.name)
            return NewToken(info=_token_info(data), value=value)

        route = f"POST {at.create_template or at.template}"
        try:
            return self._call(route, send, idempotent=False)
        except GitLabError as error:
            # Only a 400 about the field itself proves nothing was created: then, once, without it.
            refused = error.status == HTTPStatus.BAD_REQUEST and "description" in error.message.lower()
            if "description" not in body or not (refused and error.not_applied):
                raise
            log.warning(
                "gitlab.description_refused", owner=str(owner), token=request.name, error=error.message
            )
            del body["description"]
        return self._call(route, send, idempotent=False)

    def token_self(self, value: Secret) -> TokenInfo:
        """Authenticate with ``value`` and describe that token."""
        # python-gitlab sets the credential through an auth hook fixed at construction, which would
        # overwrite a per-request header: a short-lived client on the same session and limiter.
        client = self._client(value)
        return self._call(
            _SELF,
            lambda: _token_info(_object(client.http_request("get", "/personal_access_tokens/self"))),
            idempotent=True,
            secrets=(value,),
        )

    def delete_token(self, owner: Owner | int, token_id: int) -> None:
        """Revoke a token: 204, or a GitLabError carrying whatever status came instead."""
        at = _where(as_owner(owner))
        path = at.one.format(token_id)

        def send() -> None:
            status = self._gl.http_request("delete", path).status_code
            if status != HTTPStatus.NO_CONTENT:
                msg = f"expected 204, got {status}"
                raise gitlab.exceptions.GitlabHttpError(msg, status)

        self._call(f"DELETE {at.one_template}", send, idempotent=True)

    # ---- plumbing -------------------------------------------------------------------------------

    def _client(self, token: Secret) -> _Client:
        # Keyset pagination is never set: the token endpoints answer it with a 405.
        return _Client(
            self._url,
            self._limiter,
            self._connect_timeout,
            private_token=token.reveal(),
            timeout=self._timeout,
            user_agent=self._user_agent,
            retry_transient_errors=False,
            session=self._session,
            ssl_verify=self._verify,
        )

    def _get(self, path: str) -> dict[str, Any]:
        return _object(self._gl.http_request("get", path))

    def _remember(self, response: requests.Response, *_args: object, **_kwargs: object) -> None:
        self._seen.headers = dict(response.headers)
        request = response.request
        if self._on_response is not None:
            self._on_response(
                "gitlab", _route_label(request.method or "", request.path_url), str(response.status_code)
            )
        # Only a 2xx proves the manager token works (a refused redirect proves nothing either way).
        if request.headers.get("PRIVATE-TOKEN") != self._token.reveal():
            return
        if HTTPStatus.OK <= response.status_code < HTTPStatus.MULTIPLE_CHOICES:
            self.credential_refused = False
        elif response.status_code == HTTPStatus.UNAUTHORIZED:
            # The PAT API answers a non-admin 401 about another user's token (its list by user, one
            # token): the credential works, the target is out of reach. A refused credential is
            # refused on every route, so the next other request (``/self``, each run) still tells.
            route = _route_label(request.method or "", request.path_url)
            self.credential_refused = route not in _TARGET_401_ROUTES

    def _call(
        self, route: str, send: Callable[[], T], *, idempotent: bool, secrets: tuple[Secret, ...] = ()
    ) -> T:
        """Run ``send`` under the retry rules of the module docstring; failures leave as GitLabError."""

        def attempt() -> T:
            try:
                return send()
            except _NETWORK_ERRORS:
                if self._on_response is not None:
                    self._on_response("gitlab", route, "error")  # no answer: the response hook never ran
                raise

        try:
            return retrying.call(
                attempt,
                _IDEMPOTENT if idempotent else _ONCE,
                self._answer,
                attempts=self._max_attempts,
                sleep=self._sleep,
            )
        except _FAILURES as exc:
            # Not chained: the original's text is GitLab's unredacted message.
            connect = self._connect_timeout if self._connect_timeout is not None else self._timeout
            raise _gitlab_error(route, exc, (self._token, *secrets), (self._url, connect)) from None

    def _answer(self, exc: BaseException) -> retrying.Answer | None:
        """A failed attempt as :func:`rotator.adapters.retrying.call` sees it; ``None``: never retried."""
        if isinstance(exc, _NETWORK_ERRORS):
            return retrying.Answer(None)
        if not isinstance(exc, gitlab.exceptions.GitlabError) or exc.response_code is None:
            return None  # a refused redirect, an answer that does not parse: a retry cannot help
        if exc.response_code == HTTPStatus.TOO_MANY_REQUESTS:
            # Same thread, no request since the 429: these are its headers.
            headers: dict[str, str] = getattr(self._seen, "headers", {})
            return retrying.Answer(exc.response_code, headers, _flatten(exc.error_message))
        return retrying.Answer(exc.response_code)


def _environment(session: requests.Session, url: str) -> bool | str:
    """Settle the environment's proxies for ``url`` on ``session`` now; the CA bundle to verify with.

    With ``trust_env`` on, requests reads every variable of the environment, twice, on every
    request to find its proxies: a third of a GitLab call's CPU. Every request goes to gitlab.url's
    origin (the module docstring), and requests picks proxies by scheme, host and port alone, so
    the proxies it would pick for ``url`` (none when ``NO_PROXY`` covers it) are the ones it would
    pick for each request: put on the session once, the environment's winning over the session's
    as they did, and ``trust_env`` turned off. The CA bundle is requests' own choice for
    ``verify=True``: ``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``, else ``True`` (certifi's).

    A session whose ``trust_env`` is already off is left alone: it never read the environment.
    ``trust_env`` also gates a ``.netrc`` lookup, which requests makes only for a request with
    no ``auth`` of its own, and python-gitlab gives every request one (the token's).
    """
    if not session.trust_env:
        return True
    proxies = requests.utils.get_environ_proxies(url)
    session.proxies = {**session.proxies, **proxies}
    session.trust_env = False
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


# ---- mapping and parsing ------------------------------------------------------------------------


def _route_label(method: str, path: str) -> str:
    """The route template a request matches, e.g. ``GET /projects/:id/access_tokens/:token_id``.

    Metric labels must stay few (one series per route, not per project), carry no value, and come
    from this module's fixed list: anything else, whatever path it went to, is ``other``.
    """
    _, api, rest = path.split("?", 1)[0].partition("/api/v4")
    if not api:
        return _OTHER_ROUTE
    for route, pattern in _ROUTE_PATHS.items():
        if route.startswith(f"{method} ") and pattern.fullmatch(rest):
            return route
    return _OTHER_ROUTE


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the scheme's default when absent): where a credential would go."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is no number: an origin no configured URL has
        port = -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _shown(url: str) -> str:
    """A URL an upstream chose, fit for a message: no userinfo, query or fragment, no odd characters."""
    parts = urllib.parse.urlsplit(url)
    shown = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    return re.sub(r"[^\x21-\x7e]", "?", shown)


def _gitlab_error(
    route: str, exc: Exception, secrets: tuple[Secret, ...], where: tuple[str, float]
) -> GitLabError:
    """The one mapping from a python-gitlab or requests failure to :class:`GitLabError`.

    ``where`` is ``gitlab.url`` and the connect timeout, for a connection never made.
    """
    status: int | None = None
    url, connect_timeout = where
    if isinstance(exc, gitlab.exceptions.GitlabError):
        status, message = exc.response_code, _describe(exc)
    elif isinstance(exc, _Refused):
        status, message = exc.status, exc.message
    elif isinstance(exc, requests.ConnectTimeout):
        message = reach.cannot_reach(url, f"no connection within {connect_timeout:g}s")
    elif isinstance(exc, requests.ConnectionError) and reach.in_chain(exc, _NOT_CONNECTED):
        message = reach.cannot_reach(url, reach.os_reason(exc) or f"no connection ({type(exc).__name__})")
    elif isinstance(exc, requests.Timeout):
        message = f"timed out ({type(exc).__name__})"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        message = "the answer was cut short"
    elif isinstance(exc, requests.RequestException):
        message = f"no answer ({type(exc).__name__})"
    else:
        # The type only: such an exception's text may quote what was sent, and requests/http.client
        # quote a refused header value as bytes (b'...\\n'), which no literal redaction matches.
        message = f"unexpected answer ({type(exc).__name__})"
    return GitLabError(
        upstream="gitlab",
        route=route,
        status=status,
        message=_redact(message, secrets),
        not_applied=exc.not_applied if isinstance(exc, _Refused) else status in REFUSED_STATUSES,
    )


def _describe(exc: gitlab.exceptions.GitlabError) -> str:
    try:
        body = json.loads(exc.response_body or b"null")
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error_description"), str):
        # The caller's own credential (invalid_token, insufficient_scope): python-gitlab keeps only
        # the code word, and the reason is in the body.
        return f"{body.get('error')}: {body['error_description']}"
    text = _flatten(exc.error_message)
    if text.startswith("<"):
        return "an HTML error page"  # a proxy's (nginx's 502): the status says it all
    return text or "no message"


def _flatten(value: object) -> str:
    """GitLab's message as one line: ``{"expires_at": ["must be before D"]}`` reads as it looks."""
    if isinstance(value, Mapping):
        parts = [
            _flatten(inner) if key in {"message", "error", "base"} else f"{key} {_flatten(inner)}"
            for key, inner in value.items()
        ]
        return "; ".join(parts)
    if isinstance(value, list | tuple):
        return ", ".join(_flatten(inner) for inner in value)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return " ".join(str(value).split())


def _redact(text: str, secrets: tuple[Secret, ...]) -> str:
    # Known values literally (an admin may have changed the PAT prefix), then by shape; cut after,
    # so a value cut in half is never left for the patterns to miss.
    text = redact(text, (secret.reveal() for secret in secrets))
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _object(response: requests.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else fails like python-gitlab's own parsing."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        msg = "expected a JSON object"
        raise gitlab.exceptions.GitlabParsingError(msg, response.status_code)
    return data


def _access_level(project: Mapping[str, Any]) -> int | None:
    permissions = project.get("permissions") or {}
    levels = [(permissions.get(key) or {}).get("access_level") for key in ("project_access", "group_access")]
    return max((int(level) for level in levels if level is not None), default=None)


def _token_info(data: Mapping[str, Any]) -> TokenInfo:
    """A token as GitLab describes it; unknown keys ignored, never the ``token`` key read."""
    return TokenInfo(
        id=int(data["id"]),
        name=str(data["name"]),
        active=_flag(data["active"]),
        revoked=_flag(data["revoked"]),
        expires_at=date.fromisoformat(data["expires_at"]) if data.get("expires_at") else None,
        created_at=_timestamp(data.get("created_at")),
        last_used_at=_timestamp(data.get("last_used_at")),
        scopes=tuple(str(scope) for scope in data.get("scopes") or ()),
        access_level=int(data["access_level"]) if data.get("access_level") is not None else None,
    )


def _flag(value: object) -> bool:
    # bool("false") is True: insist on JSON booleans for the fields that decide liveness.
    if not isinstance(value, bool):
        msg = f"expected a boolean, got {type(value).__name__}"
        raise TypeError(msg)
    return value


def _timestamp(value: object) -> datetime | None:
    """``2021-01-20T22:11:48.151Z`` as an aware datetime (naive ones are taken as UTC)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
