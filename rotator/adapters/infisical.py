"""Infisical's GitLab app connections over httpx, with a machine-identity login kept alive. Adapter.

:class:`InfisicalAPI` implements :class:`rotator.core.ports.InfisicalPort`. Every request carries
rotator's User-Agent, waits for a 60-second-window limiter (reads and writes apart, as Infisical
counts them) and goes through :meth:`InfisicalAPI._request`, the one place where httpx failures
and error answers become :class:`~rotator.core.errors.InfisicalError`, upstream messages redacted.

Retries (architecture §1 rule 3), by the adapters' one loop (:func:`rotator.adapters.retrying.call`):
a 429 was refused before any effect, so it is retried after the wait the server asks for; a 5xx, a
timeout or a lost connection is retried with backoff (the PATCH carries the same value every time,
so a repeat is harmless) but leaves the outcome unknown, and after that no 4xx proves "not stored".
A login Infisical refused (a 4xx other than 429) is never sent again, in this call or any later one
of the process: three failures lock the identity. A login whose answer was lost (or a 5xx) may
have counted as a failure too, so at most two such go out in any 30 s (Infisical's lockout
window): a third is not sent, and the call fails saying why.

No redirect is followed, whatever client is passed in: a 3xx fails the call with one line naming
the route and the ``Location`` (a bearer token or a client secret must reach the configured
Infisical only), and only a read counts as not applied (a proxy may have passed a write on).

Kubernetes Auth has no lockout: a refused login is not sent again for
:data:`KUBERNETES_LOGIN_HOLD` seconds unless the service-account token changed (the kubelet
rotates it; the token is read afresh at every login), then it is tried again, so a fix on the
Infisical side (an allowed namespace, the audience) needs no restart.

Universal and Kubernetes Auth log in on the first call that needs it, never at construction, so an
idle run makes no call. The token is renewed once less than max(20% of its TTL, 5 minutes) is left, capped
at half the TTL so a short-lived token is not renewed before every call. An expired token, a
renewal that would pass ``accessTokenMaxTTL`` (Infisical deletes the token then) and a refused
renewal are all replaced by a fresh login.
"""

import base64
import hashlib
import json
import re
import threading
import time
import urllib.parse

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, TypeGuard

import httpx

from rotator.adapters import httpclient, reach, retrying
from rotator.core.errors import OLDER_INFISICAL, ConnectionNotFoundError, InfisicalError, RotatorError
from rotator.core.model import Connection
from rotator.core.ports import CallLedger
from rotator.core.redact import redact
from rotator.core.secret import Secret


_LOGIN = "/api/v1/auth/universal-auth/login"
#: The route a Universal Auth login's errors name (a refused one is never sent again).
LOGIN_ROUTE = f"POST {_LOGIN}"
_KUBERNETES_LOGIN = "/api/v1/auth/kubernetes-auth/login"
#: The route a Kubernetes Auth login's errors name.
KUBERNETES_LOGIN_ROUTE = f"POST {_KUBERNETES_LOGIN}"
LOGIN_ROUTES = frozenset({LOGIN_ROUTE, KUBERNETES_LOGIN_ROUTE})
_LOGINS = frozenset({_LOGIN, _KUBERNETES_LOGIN})
#: Seconds a refused Kubernetes Auth login is not sent again with the same service-account token.
KUBERNETES_LOGIN_HOLD = 60.0
_RENEW = "/api/v1/auth/token/renew"
_CONNECTION = "/api/v1/app-connections/gitlab/"
#: Infisical calls GitLab, with retries, inside the PATCH: give it at least this long (architecture §5).
PATCH_TIMEOUT_FLOOR = 120.0
RENEW_FRACTION = 0.2
RENEW_FLOOR = timedelta(minutes=5)
#: A token this close to its expiry is treated as expired: renewing it could race the server's clock.
_EXPIRY_SKEW = timedelta(seconds=10)
#: Universal Auth's lockout: three failed logins within this window lock the method for 5 minutes.
LOCKOUT_WINDOW = 30.0
#: Unanswered logins let out per window: one fewer than the failures that lock the identity.
LOGINS_UNANSWERED = 2
#: Answers that refuse a request before Infisical's handler stores anything.
_REFUSALS = frozenset({400, 401, 403, 404, 422, 429})
_AUTH = frozenset({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})
_AUTH_MESSAGES = ("No identity access token found", "Token missing", "Failed to authorize MI access token")
_MAX_MESSAGE = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class InfisicalAuth:
    """How rotator proves itself to Infisical: a static access token, Universal Auth, or Kubernetes Auth."""

    access_token: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    identity_id: str | None = None
    #: Kubernetes Auth: reads the service-account JWT; raises (OSError, ValueError or a RotatorError)
    #: with a message that names the file, never its content.
    jwt: Callable[[], Secret] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Exactly one mode, complete."""
        universal = (self.client_id is not None, self.client_secret is not None)
        kubernetes = (self.identity_id is not None, self.jwt is not None)
        modes = (self.access_token is not None, any(universal), any(kubernetes))
        if (
            sum(modes) != 1
            or (any(universal) and not all(universal))
            or (any(kubernetes) and not all(kubernetes))
        ):
            msg = "give exactly one: a static token, a client id and secret, or an identity id and JWT reader"
            raise ValueError(msg)

    @property
    def logs_in(self) -> bool:
        """Whether this mode logs in (and so can log in again when its access token is refused)."""
        return self.access_token is None

    @classmethod
    def token(cls, access_token: Secret) -> "InfisicalAuth":
        """A static identity access token: never logs in, never renews."""
        return cls(access_token=access_token)

    @classmethod
    def universal(cls, client_id: str, client_secret: Secret) -> "InfisicalAuth":
        """Universal Auth: log in lazily with these and keep the access token alive."""
        return cls(client_id=client_id, client_secret=client_secret)

    @classmethod
    def kubernetes(cls, identity_id: str, jwt: Callable[[], Secret]) -> "InfisicalAuth":
        """Kubernetes Auth: ``jwt()`` reads the pod's service-account token, at every login."""
        return cls(identity_id=identity_id, jwt=jwt)


@dataclass(frozen=True, slots=True)
class _Grant:
    """A Universal Auth access token and when to stop trusting it (instants on our clock)."""

    token: Secret
    expires: datetime | None  # None: the token never expires (TTL 0)
    ttl: timedelta
    max_end: datetime | None  # login + accessTokenMaxTTL: no renewal reaches past it


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A refused Kubernetes Auth login: its answer, when (monotonic), and a digest of the JWT sent."""

    status: int
    message: str
    at: float
    digest: bytes


@dataclass(frozen=True, slots=True)
class _Call:
    """One logical request; its attempts share it."""

    method: str
    path: str
    route: str
    limiter: retrying.Limiter
    timeout: float
    body: dict[str, Any] | None = field(default=None, repr=False)  # may hold a secret
    auth: bool = True
    hide: tuple[Secret, ...] = ()  # values to scrub from any message, on top of the known ones
    #: Infisical's 404 message proving the object this call names does not exist.
    missing: str | None = None


@dataclass(slots=True)
class _Progress:
    """What the attempts of one call have learnt so far."""

    unknown: bool = False  # an attempt may have been applied (a 5xx, a lost answer)
    reauthed: bool = False  # a refused bearer token was already replaced once


class _Failed(Exception):  # noqa: N818 - one attempt's answer, turned into an InfisicalError by _request
    """An attempt that got no 2xx: its status (``None``: no answer), the server's hints and text."""

    def __init__(self, status: int | None, headers: httpx.Headers, message: str, payload: object) -> None:
        super().__init__(status)
        self.status, self.headers, self.message, self.payload = status, headers, message, payload


#: Every call is idempotent (a PATCH carries the same value each time, a login or renewal asks
#: again): a 429, a 5xx and a missing answer are retried; nothing else is.
_RULES = retrying.Policy(idempotent=True)


def _answer(exc: BaseException) -> retrying.Answer | None:
    """An attempt's failure as the retry loop sees it; an InfisicalError (a redirect, a login) is final."""
    if not isinstance(exc, _Failed):
        return None
    return retrying.Answer(exc.status, exc.headers, exc.message)


class InfisicalAPI:
    """The :class:`~rotator.core.ports.InfisicalPort` over httpx; see the module docstring."""

    def __init__(  # noqa: PLR0913 - the knobs are the config's, each named at the one call site in cli
        self,
        url: str,
        auth: InfisicalAuth,
        *,
        timeout: float,
        user_agent: str,
        reads_per_minute: int = 60,
        writes_per_minute: int = 200,
        client: httpx.Client | None = None,
        max_attempts: int = retrying.ATTEMPTS,
        connect_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        on_response: Callable[[str, str, str], None] | None = None,
        ledger: CallLedger | None = None,
    ) -> None:
        """Talk to the Infisical at ``url``; no request is sent until a method needs one.

        ``client`` carries every request (tests give one over :mod:`rotator.testing.transport`);
        ``monotonic`` is the clock the rate limiters count their windows on, and moves as ``sleep`` waits.
        With a shared ``ledger`` (the journal's), the ceilings hold for every process sharing it,
        in the buckets ``infisical-read:<url>`` and ``infisical-write:<url>``.

        ``on_response(upstream, route, status)`` is told of every attempt's answer (status
        ``"error"`` when none came), for the daemon's request counter.

        ``connect_timeout`` (at most a call's timeout) bounds the connect alone; ``max_attempts``
        1 is ``check``'s: no retry of any kind (a refused login is never retried in any case).
        """
        self._url = url.rstrip("/")
        self._auth = auth
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._user_agent = user_agent
        # No base_url, no event hooks, httpx's own logging left alone: nothing here writes a header.
        # No cookies either (httpclient): the bearer token is the only credential sent.
        self._client = client if client is not None else httpclient.Client(timeout=timeout)
        self._max_attempts = max(1, max_attempts)
        self._sleep, self._clock = sleep, clock
        self._monotonic = monotonic
        self._unanswered_logins: list[float] = []  # when each login with no 2xx or 4xx went out

        def limiter(kind: str, per_minute: int) -> retrying.Limiter:
            bucket = retrying.bucket(kind, url)
            return retrying.Limiter(per_minute, clock=monotonic, sleep=sleep, ledger=ledger, bucket=bucket)

        self._reads = limiter("infisical-read", reads_per_minute)
        self._writes = limiter("infisical-write", writes_per_minute)
        self._lock = threading.Lock()  # one login at a time, shared by every worker thread
        self._grant: _Grant | None = None
        self._login_refused: tuple[int, str] | None = None  # the refusal's status and message
        self._kubernetes_refused: _Refusal | None = None
        self._jwt: Secret | None = None  # the service-account token last read, scrubbed from messages
        self._on_response = on_response
        #: Whether Infisical refused our own credential at its last use (the daemon's /readyz).
        self.credential_refused = False

    def close(self) -> None:
        """Close the HTTP client (also one passed in: the adapter owns it from construction)."""
        self._client.close()

    # ---- InfisicalPort ------------------------------------------------------------------------

    def get_connection(self, connection_id: str) -> Connection:
        """Read a connection (``GET /api/v1/app-connections/gitlab/{id}``)."""
        path = _CONNECTION + urllib.parse.quote(connection_id, safe="")
        call = _Call(
            "GET",
            path,
            f"GET {_CONNECTION}:connectionId",
            self._reads,
            self._timeout,
            missing=f"Could not find App Connection with ID {connection_id}",
        )
        record = self._app_connection(call, self._request(call))
        credentials = record.get("credentials")
        credentials = credentials if isinstance(credentials, dict) else {}
        instance_url, kind = credentials.get("instanceUrl"), credentials.get("accessTokenType")
        return Connection(
            id=record["id"],
            name=record["name"],
            app=record["app"],
            method=record["method"],
            instance_url=instance_url if isinstance(instance_url, str) else None,
            access_token_type=kind if isinstance(kind, str) else None,
            credentials_hash=record["credentialsHash"],
        )

    def push_token(self, connection: Connection, value: Secret) -> str:
        """PATCH the full credentials with ``value``; return the new ``credentialsHash``."""
        # The full object, instanceUrl exactly as read: omitting it would point a self-hosted
        # connection at gitlab.com, and normalising it would give Terraform a permanent diff.
        credentials: dict[str, Any] = {
            "accessToken": value.reveal(),
            "accessTokenType": connection.access_token_type,
        }
        if connection.instance_url is not None:
            credentials["instanceUrl"] = connection.instance_url
        path = _CONNECTION + urllib.parse.quote(connection.id, safe="")
        route = f"PATCH {_CONNECTION}:connectionId"
        timeout = max(self._timeout, PATCH_TIMEOUT_FLOOR)
        call = _Call("PATCH", path, route, self._writes, timeout, {"credentials": credentials}, hide=(value,))
        return str(self._app_connection(call, self._request(call))["credentialsHash"])

    def access_token_expiry(self) -> datetime | None:
        """The access token's expiry: from the JWT (static), from the last login or renewal (UA).

        ``None`` when it never expires, or before the first Universal Auth login: asking must not log in.
        """
        if self._auth.access_token is not None:
            return _jwt_expiry(self._auth.access_token.reveal())
        with self._lock:
            return self._grant.expires if self._grant is not None else None

    # ---- the one request loop -----------------------------------------------------------------

    def _request(self, call: _Call) -> Any:  # noqa: ANN401 - any JSON value; callers check its shape
        """Send ``call`` with retries (module docstring); the parsed JSON of a 2xx, else raise."""
        progress = _Progress()
        try:
            return retrying.call(
                lambda: self._attempt(call, progress),
                _RULES,
                _answer,
                attempts=self._max_attempts,
                sleep=self._sleep,
            )
        except _Failed as failed:
            kind = (
                ConnectionNotFoundError
                if _is_missing(call, failed.status, failed.payload)
                else InfisicalError
            )
            # Once an attempt may have been applied, no later refusal proves "not stored".
            not_applied = not progress.unknown and failed.status in _REFUSALS
            raise self._error(
                call, failed.status, failed.message, not_applied=not_applied, kind=kind
            ) from None

    def _attempt(self, call: _Call, progress: _Progress) -> Any:  # noqa: ANN401 - as _request
        """One attempt of ``call`` (two when a refused bearer token is replaced by a fresh login)."""
        while True:
            headers = {"User-Agent": self._user_agent}
            used = self._authorize(headers, unknown=progress.unknown) if call.auth else None
            call.limiter.acquire()
            response, failure, lost = (
                self._send_login(call, headers) if call.path == _LOGIN else self._send(call, headers)
            )
            status = response.status_code if response is not None else None
            if self._on_response is not None:
                self._on_response("infisical", call.route, str(status or "error"))
            if response is not None and response.is_success:
                if call.auth or call.path in _LOGINS:
                    self.credential_refused = False
                return _json(response)
            payload = _json(response) if response is not None else None
            # A refused login (a wrong secret's 401, an unknown client id's 404) is never sent again.
            if (call.path in _LOGINS and _refuses_login(status)) or (
                status == HTTPStatus.UNAUTHORIZED and _auth_refused(status, payload)
            ):
                self.credential_refused = True
            message = _render(payload, response) if response is not None else failure
            if _is_3xx(response):
                # Never followed (see _send): refused here, before the generic error handling.
                raise self._error(call, status, _redirected(response), not_applied=call.method == "GET")
            if (
                used is not None
                and not progress.reauthed
                and self._auth.logs_in
                and _auth_refused(status, payload)
            ):
                # Refused at the door (expired, revoked), so nothing was applied: log in, once more.
                progress.reauthed = True
                self._forget(used)
                continue
            server_side = status is not None and status >= HTTPStatus.INTERNAL_SERVER_ERROR
            # Infisical may have failed after storing: no later refusal proves "not stored".
            progress.unknown = progress.unknown or lost or server_side
            headers_seen = response.headers if response is not None else httpx.Headers()
            raise _Failed(status, headers_seen, message, payload)

    def _send_login(self, call: _Call, headers: dict[str, str]) -> tuple[httpx.Response | None, str, bool]:
        """:meth:`_send` for a login, unless two in the lockout window went unanswered (may have failed)."""
        since = self._monotonic() - LOCKOUT_WINDOW
        self._unanswered_logins = [sent for sent in self._unanswered_logins if sent > since]
        if len(self._unanswered_logins) >= LOGINS_UNANSWERED:
            problem = (
                f"not sent: {LOGINS_UNANSWERED} Universal Auth logins in the last {LOCKOUT_WINDOW:g}s got no"
                " answer, and had they failed a third would lock the identity for 5 minutes; try again later"
            )
            raise self._error(call, None, problem, not_applied=True)
        response, failure, lost = self._send(call, headers)
        # A connection never made sent nothing (``lost`` is False): no login to have failed.
        if (response is None and lost) or (
            response is not None and response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR
        ):
            self._unanswered_logins.append(self._monotonic())
        elif response is not None and response.is_success:
            self._unanswered_logins.clear()  # the secret is right: a lost login was no failure
        return response, failure, lost

    def _send(self, call: _Call, headers: dict[str, str]) -> tuple[httpx.Response | None, str, bool]:
        """One attempt: (response, failure text, whether the request may have been applied)."""
        connect = min(self._connect_timeout or call.timeout, call.timeout)
        try:
            response = self._client.request(
                call.method,
                httpclient.url(self._url + call.path),  # parsed once per URL
                json=call.body,
                headers=headers,
                timeout=httpx.Timeout(call.timeout, connect=connect),
                follow_redirects=False,  # httpx's default, made explicit for a client passed in
            )
        # Exception types only, never their text: httpx/h11 quote a refused header value (the
        # bearer token) as bytes, which no literal redaction matches. The OS's reason for a failed
        # connect ("Connection refused") is fixed text and is kept. Never sent, in all three.
        except httpx.ConnectTimeout:
            return None, reach.cannot_reach(self._url, f"no connection within {connect:g}s"), False
        except httpx.ConnectError as exc:
            reason = reach.os_reason(exc) or f"no connection ({type(exc).__name__})"
            return None, reach.cannot_reach(self._url, reason), False
        except httpx.PoolTimeout:
            return None, "could not connect (PoolTimeout)", False
        except httpx.TimeoutException as exc:
            return None, f"no answer in time ({type(exc).__name__})", True
        except httpx.HTTPError as exc:  # a reset, a closed connection, a garbled answer: sent, answer lost
            return None, f"connection lost ({type(exc).__name__})", True
        return response, "", False

    def _error(
        self,
        call: _Call,
        status: int | None,
        message: str,
        *,
        not_applied: bool,
        kind: type[InfisicalError] = InfisicalError,
    ) -> InfisicalError:
        """The error for ``call``: message scrubbed of every secret we know and token-shaped text."""
        known = [*call.hide, self._auth.access_token, self._auth.client_secret, self._jwt]
        known.append(self._grant.token if self._grant is not None else None)
        message = redact(message, (s.reveal() for s in known if s is not None))[:_MAX_MESSAGE]
        return kind("infisical", call.route, status, message, not_applied=not_applied)

    def _app_connection(self, call: _Call, data: object) -> dict[str, Any]:
        record = data.get("appConnection") if isinstance(data, dict) else None
        keys = ("id", "name", "app", "method", "credentialsHash")
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in keys):
            problem = "the answer lacks appConnection.id, name, app, method or credentialsHash"
            raise self._error(call, HTTPStatus.OK, problem, not_applied=False)
        return record

    # ---- authentication -----------------------------------------------------------------------

    def _authorize(self, headers: dict[str, str], *, unknown: bool) -> Secret:
        """Add the bearer header, logging in or renewing first if needed; return the token used."""
        try:
            token = self._bearer()
        except InfisicalError as error:
            # A failed login after an unknown PATCH attempt proves nothing about that attempt.
            error.not_applied = error.not_applied and not unknown
            raise
        headers["Authorization"] = f"Bearer {token.reveal()}"
        return token

    def _bearer(self) -> Secret:
        if self._auth.access_token is not None:
            return self._auth.access_token
        with self._lock:
            grant, now = self._grant, self._clock()
            if grant is None or (grant.expires is not None and now + _EXPIRY_SKEW >= grant.expires):
                grant = self._login()
            elif grant.expires is not None and grant.expires - now < _renew_margin(grant.ttl):
                grant = self._renew(grant, now)
            self._grant = grant
            return grant.token

    def _forget(self, used: Secret) -> None:
        with self._lock:
            if self._grant is not None and self._grant.token is used:  # not one another thread got since
                self._grant = None

    def _login(self) -> _Grant:
        if self._auth.identity_id is not None:
            return self._kubernetes_login(self._auth.identity_id)
        route = LOGIN_ROUTE
        if self._login_refused is not None:
            # Refused once in this process: asking again could lock the identity out.
            status, message = self._login_refused
            raise InfisicalError("infisical", route, status, message, not_applied=True)
        client_id, client_secret = self._auth.client_id, self._auth.client_secret
        if client_id is None or client_secret is None:  # static mode: _bearer never comes here
            msg = "a static access token does not log in"
            raise RuntimeError(msg)
        body = {"clientId": client_id, "clientSecret": client_secret.reveal()}
        call = _Call("POST", _LOGIN, route, self._writes, self._timeout, body, auth=False)
        try:
            return self._grant_from(call, self._request(call), None)
        except InfisicalError as error:
            answered = error.status
            if answered is not None and login_refused(error):
                self._login_refused = (answered, error.message)
            raise

    def _kubernetes_login(self, identity_id: str) -> _Grant:
        route = KUBERNETES_LOGIN_ROUTE
        jwt = self._read_jwt()
        digest = hashlib.sha256(jwt.reveal().encode()).digest()
        held = self._kubernetes_refused
        if held is not None and held.digest == digest and self._monotonic() - held.at < KUBERNETES_LOGIN_HOLD:
            # Refused moments ago with this very token: asking again now would only be refused again.
            raise InfisicalError("infisical", route, held.status, held.message, not_applied=True)
        body = {"identityId": identity_id, "jwt": jwt.reveal()}
        call = _Call(
            "POST", _KUBERNETES_LOGIN, route, self._writes, self._timeout, body, auth=False, hide=(jwt,)
        )
        try:
            grant = self._grant_from(call, self._request(call), None)
        except InfisicalError as error:
            if error.status is not None and login_refused(error):
                self._kubernetes_refused = _Refusal(error.status, error.message, self._monotonic(), digest)
            raise
        self._kubernetes_refused = None
        return grant

    def _read_jwt(self) -> Secret:
        """The service-account token, read now (the kubelet rotates the file)."""
        read = self._auth.jwt
        if read is None:  # not Kubernetes Auth: _login never comes here
            msg = "no service-account token reader"
            raise RuntimeError(msg)
        try:
            self._jwt = read()
        except (OSError, ValueError, RotatorError) as error:
            problem = f"the service-account token could not be read ({error}); no login was sent"
            raise InfisicalError(
                "infisical", KUBERNETES_LOGIN_ROUTE, None, problem, not_applied=True
            ) from None
        return self._jwt

    def _renew(self, grant: _Grant, now: datetime) -> _Grant:
        if grant.max_end is not None and now + grant.ttl > grant.max_end:
            return self._login()  # Infisical would refuse and delete the token: start afresh
        body = {"accessToken": grant.token.reveal()}
        call = _Call("POST", _RENEW, f"POST {_RENEW}", self._writes, self._timeout, body, auth=False)
        try:
            return self._grant_from(call, self._request(call), grant)
        except InfisicalError as error:
            if error.status in _AUTH:  # Max TTL reached, or the JWT no longer verifies
                return self._login()
            return grant  # a transient failure: the token still has life left, renew next time

    def _grant_from(self, call: _Call, data: object, previous: _Grant | None) -> _Grant:
        fields = data if isinstance(data, dict) else {}
        token, expires_in, max_ttl = (
            fields.get(k) for k in ("accessToken", "expiresIn", "accessTokenMaxTTL")
        )
        if not (isinstance(token, str) and token and _seconds(expires_in) and _seconds(max_ttl)):
            problem = "the answer lacks accessToken, expiresIn or accessTokenMaxTTL"
            raise self._error(call, HTTPStatus.OK, problem, not_applied=False)
        now, ttl = self._clock(), timedelta(seconds=float(expires_in))
        if previous is not None:
            max_end = previous.max_end
        else:
            max_end = now + timedelta(seconds=float(max_ttl)) if max_ttl else None
        return _Grant(Secret(token), now + ttl if ttl else None, ttl, max_end)


def login_refused(error: InfisicalError) -> bool:
    """Whether ``error`` is a login Infisical refused (Universal Auth: never to be sent again).

    Any 4xx but a 429 (the lockout's own lock was busy, or a rate limit: refused before any
    effect). A 401 counts towards Universal Auth's lockout (three in 30 s); the others (an unknown
    client id's 404, an IP allow-list, a malformed body) would only be refused again, and which of
    them count is not documented. Each also marks the credential refused (the daemon's
    ``/readyz``). Kubernetes Auth has no lockout (see :data:`KUBERNETES_LOGIN_HOLD`).
    """
    return error.route in LOGIN_ROUTES and _refuses_login(error.status)


def _refuses_login(status: int | None) -> bool:
    """A login's answer that refuses the credential: any 4xx but a 429."""
    return (
        status is not None
        and HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR
        and status != HTTPStatus.TOO_MANY_REQUESTS
    )


def _renew_margin(ttl: timedelta) -> timedelta:
    """Renew with this much life left: max(20% of the TTL, 5 minutes), at most half the TTL."""
    return min(max(ttl * RENEW_FRACTION, RENEW_FLOOR), ttl / 2)


def _seconds(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _json(response: httpx.Response) -> Any:  # noqa: ANN401 - any JSON value
    try:
        return response.json()
    except ValueError:  # an HTML page from a proxy, an empty body
        return None


def _render(payload: object, response: httpx.Response) -> str:
    """Infisical's ``{error, message}`` as one line; zod issues as ``path: message; …``."""
    fallback = response.reason_phrase or f"HTTP {response.status_code}"
    if not isinstance(payload, dict):
        return fallback
    message, error = payload.get("message"), payload.get("error")
    if isinstance(message, list):
        text = "; ".join(_issue(issue) for issue in message) or fallback
    else:
        text = message if isinstance(message, str) and message else fallback
    return f"{error}: {text}" if isinstance(error, str) and error else text


def _is_3xx(response: httpx.Response | None) -> TypeGuard[httpx.Response]:
    """Whether ``response`` is a redirect of any kind (with a Location or not)."""
    return (
        response is not None and HTTPStatus.MULTIPLE_CHOICES <= response.status_code < HTTPStatus.BAD_REQUEST
    )


def _redirected(response: httpx.Response) -> str:
    """A 3xx as one line: where it pointed (no userinfo, query or fragment), and that we stayed."""
    location = response.headers.get("Location")
    if not location:
        return "redirected nowhere (no Location); not followed"
    try:
        target = response.url.join(location)
        shown = str(target.copy_with(query=None, fragment=None, username=None, password=None))
    except (httpx.InvalidURL, ValueError):
        shown = "an invalid URL"
    shown = re.sub(r"[^\x21-\x7e]", "?", shown)
    return f"redirected to {shown}; not followed: credentials go to the configured Infisical only"


def _issue(issue: object) -> str:
    if not isinstance(issue, dict):
        return str(issue)
    path = issue.get("path")
    where = ".".join(str(p) for p in path) if isinstance(path, list) else ""
    text = str(issue.get("message") or issue.get("code") or "invalid")
    branches = issue.get("unionErrors")
    if isinstance(branches, list) and branches and isinstance(branches[0], dict):
        # zod says only "Invalid input" for a failed union; its first branch is the access-token
        # shape rotator sends, whose issues say what is wrong.
        inner = branches[0].get("issues")
        if isinstance(inner, list) and inner:
            text += " (" + "; ".join(_issue(i) for i in inner) + ")"
    if where.endswith("accessTokenType") and issue.get("received") == "group":
        text += f" ({OLDER_INFISICAL})"
    return f"{where}: {text}" if where else text


def _is_missing(call: _Call, status: int | None, payload: object) -> bool:
    """Infisical's own ``NotFound`` for the object ``call`` names (reference/infisical.md §2 step 4).

    Fastify's route 404 (``"error": "Not Found"``) or a proxy's page is no proof the object is gone.
    """
    return (
        call.missing is not None
        and status == HTTPStatus.NOT_FOUND
        and isinstance(payload, dict)
        and payload.get("error") == "NotFound"
        and payload.get("message") == call.missing
    )


def _auth_refused(status: int | None, payload: object) -> bool:
    """Whether Infisical refused the bearer token itself (expired, malformed, revoked, missing)."""
    if status not in _AUTH or not isinstance(payload, dict):
        return False
    if payload.get("error") == "TokenError":
        return True
    message = payload.get("message")
    return status == HTTPStatus.UNAUTHORIZED and str(message).startswith(_AUTH_MESSAGES)


def _jwt_expiry(token: str) -> datetime | None:
    """The ``exp`` claim of a JWT, unverified; ``None`` if it is no JWT or has no usable ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - header, payload, signature
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        return datetime.fromtimestamp(exp, UTC)
    except (ValueError, OverflowError, OSError):  # not base64 / JSON, or an absurd timestamp
        return None
