"""A fake Infisical: Universal and Kubernetes Auth, the GitLab app-connection API, faithful to the real one.

Routes: ``POST /api/v1/auth/universal-auth/login``, ``POST /api/v1/auth/kubernetes-auth/login``
(the JWT reviewed by a Kubernetes API server: :mod:`rotator.testing._infisical_kubernetes`),
``POST /api/v1/auth/token/renew``,
``POST /api/v1/auth/token/revoke``, ``GET`` and ``PATCH /api/v1/app-connections/gitlab/:connectionId``.

The PATCH runs Infisical's steps in order (``reference/infisical.md`` §2): authentication,
write rate limit, zod validation (422), lookup (404), permission (403), platform-managed check,
re-parse against the stored method (400), then it really calls ``GET {instanceUrl}/api/v4/user``
with the new token, as gitbeaker does (``localhost`` refused, 429/502 retried ten times within about
0.35 s; 400 ``Failed to validate credentials: …`` if GitLab refuses), encrypts the
credentials with AES-256-GCM under a random IV, and answers the redacted record. ``credentialsHash``
is the SHA-256 of that encrypted blob, so it changes on every credential write, even of the same
token, and stays put on a metadata-only PATCH.

A body that is not JSON gets Fastify's parse error through Infisical's catch-all: 500
``InternalServerError`` "Something went wrong".

Rate limits are off by default, as on a self-hosted instance; pass ``reads_per_minute`` and
``writes_per_minute`` (Infisical Cloud: 60 and 200 per IP) to get 429 ``RateLimitExceeded``.
"""

import hashlib
import json
import math
import secrets
import time
import urllib.parse
import uuid

from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, NoReturn

import httpx

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rotator.testing._clock import FakeClock
from rotator.testing._http import FakeServer, FixedWindowLimiter, Request, Response
from rotator.testing._infisical_auth import Identity, IdentityAuth
from rotator.testing._infisical_errors import canned, fail
from rotator.testing._infisical_kubernetes import LOGIN as KUBERNETES_LOGIN
from rotator.testing._infisical_kubernetes import KubernetesAuth, post_with, review
from rotator.testing._zod import parse_update, required, uuid_issues


CONNECTIONS = "/api/v1/app-connections/gitlab"
DEFAULT_GITLAB = "https://gitlab.com"
_KMS_VERSION = b"v01"
_METHOD_NAMES = {"access-token": "Access Token", "oauth": "OAuth"}
_APP_NAMES = {"gitlab": "GitLab", "aws": "AWS", "github": "GitHub"}
#: Host names ``blockLocalAndPrivateIpAddresses`` refuses outright (outside development mode).
_LOCAL_NAMES = frozenset({"localhost", "host.docker.internal"})
#: gitbeaker's ``maxRetries`` and ``retryCodes``.
_GITBEAKER_TRIES = 10
_GITBEAKER_RETRIED = frozenset({429, 502})


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class Connection:
    """An app connection row; credentials are stored only encrypted."""

    id: str
    name: str
    app: str
    method: str
    encrypted: bytes = field(repr=False)
    org_id: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    project_id: str | None = None
    platform_managed: bool = False

    def sanitized(self) -> dict[str, Any]:
        """The API view: credentials without ``accessToken``, plus ``credentialsHash``."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "version": 1,
            "orgId": self.org_id,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "isPlatformManagedCredentials": self.platform_managed,
            "gatewayId": None,
            "projectId": self.project_id,
            "isAutoRotationEnabled": False,
            "credentialsHash": hashlib.sha256(self.encrypted).hexdigest(),
            "app": self.app,
            "method": self.method,
        }


class FakeInfisical(FakeServer):
    """An Infisical instance on loopback; see the module docstring."""

    upstream = "infisical"

    def __init__(  # noqa: PLR0913 - keyword-only switches, each with a default
        self,
        clock: FakeClock | None = None,
        *,
        reads_per_minute: int | None = None,
        writes_per_minute: int | None = None,
        accept_group_tokens: bool = True,
        validation_retry_delay: float = 0.00025,
        test_hooks_key: str | None = None,
    ) -> None:
        """Create an empty instance (see the module docstring for the options)."""
        super().__init__(clock, test_hooks_key=test_hooks_key)
        self.auth = IdentityAuth()
        self.connections: dict[str, Connection] = {}
        #: Kubernetes Auth attached to identities, by identity id.
        self.kubernetes_auths: dict[str, KubernetesAuth] = {}
        self.org_id = str(uuid.uuid4())
        self.accept_group_tokens = accept_group_tokens
        self.validation_retry_delay = validation_retry_delay
        self._key = AESGCM.generate_key(bit_length=256)
        # One client for the validation calls, as a server keeps its pool: building an httpx
        # client per PATCH costs ~20 ms of TLS-context set-up (bench/fakes.py).
        self._gitlab_client = httpx.Client(timeout=30)
        self._reads = FixedWindowLimiter(reads_per_minute, self.clock) if reads_per_minute else None
        self._writes = FixedWindowLimiter(writes_per_minute, self.clock) if writes_per_minute else None
        self.route("POST", "/api/v1/auth/universal-auth/login", self._login)
        self.route("POST", KUBERNETES_LOGIN, self._kubernetes_login)
        self.route("POST", "/api/v1/auth/token/renew", self._renew)
        self.route("POST", "/api/v1/auth/token/revoke", self._revoke)
        self.route("GET", f"{CONNECTIONS}/:connectionId", self._get)
        self.route("PATCH", f"{CONNECTIONS}/:connectionId", self._patch)
        self.route("GET", "/_fake/connections/:connectionId/held-token", self._control_held_token)

    # ---- server hooks -------------------------------------------------------------------------

    def canned_error(self, status: int, shape: str | None, request: Request) -> Response:
        """Infisical's body for ``status``."""
        del request
        return canned(status, shape)

    def not_found(self, request: Request) -> Response:
        """Fastify's 404 for an unknown route."""
        return Response(
            404,
            {
                "message": f"Route {request.method}:{request.path} not found",
                "error": "Not Found",
                "statusCode": 404,
            },
        )

    def stop(self) -> None:
        """Stop serving and close the client used to validate tokens with GitLab."""
        super().stop()
        self._gitlab_client.close()

    def owns_credential(self, value: str) -> bool:
        """Whether ``value`` is an access token this instance signed, or an identity's client secret."""
        with self.lock:
            return self.auth.issued(value)

    # ---- seeding and the test-only view -------------------------------------------------------

    def seed_identity(self, *, ttl: int = 7200, max_ttl: int = 2592000) -> Identity:
        """A machine identity with Universal Auth (``client_id``/``client_secret``)."""
        with self.lock:
            return self.auth.add_identity(ttl=ttl, max_ttl=max_ttl)

    def seed_kubernetes_auth(  # noqa: PLR0913 - the attach form's own fields
        self,
        identity: Identity,
        kubernetes_host: str,
        *,
        allowed_namespaces: str = "",
        allowed_names: str = "",
        allowed_audience: str = "",
        token_reviewer_jwt: str | None = None,
    ) -> KubernetesAuth:
        """Attach Kubernetes Auth to ``identity``, reviewing at ``kubernetes_host`` (comma lists)."""
        auth = KubernetesAuth(
            identity.id,
            kubernetes_host,
            allowed_namespaces,
            allowed_names,
            allowed_audience,
            token_reviewer_jwt,
        )
        with self.lock:
            self.kubernetes_auths[identity.id] = auth
        return auth

    def seed_access_token(self, identity: Identity) -> str:
        """An access token for ``identity``, as if it had logged in."""
        with self.lock:
            return str(self.auth.issue(identity, self.clock.now())["accessToken"])

    def seed_connection(  # noqa: PLR0913 - the connection's own fields
        self,
        access_token: str,
        *,
        instance_url: str | None,
        access_token_type: str = "project",  # noqa: S107 - a token kind, not a secret
        name: str = "gitlab",
        connection_id: str | None = None,
        app: str = "gitlab",
        method: str = "access-token",
    ) -> Connection:
        """A connection holding ``access_token`` (no validation call, as if made long ago)."""
        creds = {"accessToken": access_token}
        if instance_url is not None:
            creds["instanceUrl"] = instance_url
        creds["accessTokenType"] = access_token_type
        with self.lock:
            now = self.clock.now()
            conn = Connection(
                connection_id or str(uuid.uuid4()),
                name,
                app,
                method,
                self._encrypt(creds),
                self.org_id,
                now,
                now,
            )
            self.connections[conn.id] = conn
            return conn

    def test_only_credentials(self, connection_id: str) -> dict[str, str]:
        """TEST ONLY: the decrypted credentials a connection holds (the token included)."""
        with self.lock:
            blob = self.connections[connection_id].encrypted
        return dict(json.loads(AESGCM(self._key).decrypt(blob[:12], blob[12:-3], None)))

    def test_only_held_token(self, connection_id: str) -> str:
        """TEST ONLY: the plaintext token a connection holds."""
        return self.test_only_credentials(connection_id)["accessToken"]

    def test_only_delete_connection(self, connection_id: str) -> None:
        """TEST ONLY: delete a connection, as a person would in the UI; later reads answer 404."""
        with self.lock:
            del self.connections[connection_id]

    def _control_held_token(self, request: Request) -> Response:
        connection_id = request.args["connectionId"]
        if connection_id not in self.connections:
            return Response(404, {"message": "no such connection"})
        return Response(200, {"accessToken": self.test_only_held_token(connection_id), "testOnly": True})

    # ---- steps --------------------------------------------------------------------------------

    def _encrypt(self, credentials: dict[str, str]) -> bytes:
        # Infisical: IV(12) || AES-256-GCM ciphertext || tag(16) || b"v01"; key order as zod emits.
        iv = secrets.token_bytes(12)
        plain = json.dumps(credentials, separators=(",", ":")).encode()
        return iv + AESGCM(self._key).encrypt(iv, plain, None) + _KMS_VERSION

    def _limit(self, limiter: FixedWindowLimiter | None, request: Request) -> dict[str, str]:
        if limiter is None:
            return {}
        allowed, remaining, reset_in = limiter.hit(request.client)
        seconds = math.ceil(reset_in)
        headers = {
            "x-ratelimit-limit": str(limiter.limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(seconds),
        }
        if not allowed:
            fail(
                429,
                "RateLimitExceeded",
                f"Rate limit exceeded. Please try again in {seconds} seconds",
                {**headers, "retry-after": str(seconds)},
            )
        return headers

    def _check_params(self, request: Request) -> None:
        # Fastify validates params first and stops there, before the body.
        issues = uuid_issues(request.args["connectionId"])
        if issues:
            fail(422, "ValidationFailure", issues)

    def _connection(self, request: Request, identity: Identity, *, edit: bool) -> Connection:
        conn = self.connections.get(request.args["connectionId"])
        if conn is None:
            fail(
                404,
                "NotFound",
                f"Could not find App Connection with ID {request.args['connectionId']}",
            )
        if not (identity.can_edit if edit else identity.can_read):
            action = "edit" if edit else "read"
            fail(
                403,
                "PermissionDenied",
                f"You are not allowed to {action} on app-connections",
                details=[],
            )
        return conn

    def _validate_with_gitlab(self, credentials: dict[str, str]) -> None:
        """``client.Users.showCurrentUser()`` through gitbeaker, as the real server makes it.

        ``getGitLabInstanceUrl`` first refuses the names ``localhost`` and ``host.docker.internal``
        (IP literals such as 127.0.0.1 pass, as with ``ALLOW_INTERNAL_IP_CONNECTIONS``). gitbeaker
        then makes up to 10 calls, retrying 429 and 502 after ``2**i * 0.25`` **milliseconds**
        (about 0.35 s in all), and gives up with its own retry message.
        """
        base = credentials.get("instanceUrl", DEFAULT_GITLAB).rstrip("/")
        if urllib.parse.urlsplit(base).hostname in _LOCAL_NAMES:
            fail(400, "BadRequest", "Failed to validate credentials: Local IPs not allowed as URL")
        headers = {"PRIVATE-TOKEN": credentials["accessToken"], "User-Agent": "infisical-gitbeaker"}
        for attempt in range(_GITBEAKER_TRIES):
            try:
                answer = self._gitlab_client.get(f"{base}/api/v4/user", headers=headers)
            except httpx.HTTPError as exc:
                fail(400, "BadRequest", f"Failed to validate credentials: {exc!s}")
            if answer.is_success:
                return
            if answer.status_code not in _GITBEAKER_RETRIED:
                fail(400, "BadRequest", f"Failed to validate credentials: {_gitbeaker_error(answer)}")
            time.sleep(self.validation_retry_delay * 2**attempt)
        status = answer.status_code
        advice = (
            "Check the applicable rate limits for this endpoint"
            if status == HTTPStatus.TOO_MANY_REQUESTS
            else "Verify the status of the endpoint"
        )
        fail(
            400,
            "BadRequest",
            "Failed to validate credentials: Could not successfully complete this request after"
            f" {_GITBEAKER_TRIES} retries, last status code: {status}. {advice}.",
        )

    # ---- handlers -----------------------------------------------------------------------------

    def _login(self, request: Request) -> Response:
        headers = self._limit(self._writes, request)
        data = _json_object(request)
        issues = [required(k) for k in ("clientId", "clientSecret") if not isinstance(data.get(k), str)]
        if issues:
            fail(422, "ValidationFailure", issues)
        result = self.auth.login(data["clientId"].strip(), data["clientSecret"].strip(), self.clock.now())
        return Response(200, result, headers)

    def _kubernetes_login(self, request: Request) -> Response:
        headers = self._limit(self._writes, request)
        data = _json_object(request)
        issues = [required(k) for k in ("identityId", "jwt") if not isinstance(data.get(k), str)]
        if issues:
            fail(422, "ValidationFailure", issues)
        auth = self.kubernetes_auths.get(data["identityId"].strip())
        identity = self.auth.identities.get(auth.identity_id) if auth is not None else None
        if auth is None or identity is None:
            fail(
                404,
                "NotFound",
                "Kubernetes auth method not found for identity, did you configure Kubernetes auth?",
            )
        # The real service reviews the token outside any lock of ours; so does the fake.
        self.lock.release()
        try:
            namespace, name = review(auth, data["jwt"].strip(), post_with(self._gitlab_client))
        finally:
            self.lock.acquire()
        claims = {"identityAuth": {"kubernetes": {"namespace": namespace, "name": name}}}
        return Response(200, self.auth.issue(identity, self.clock.now(), **claims), headers)

    def _renew(self, request: Request) -> Response:
        headers = self._limit(self._writes, request)
        data = _json_object(request)
        if not isinstance(data.get("accessToken"), str):
            fail(422, "ValidationFailure", [required("accessToken")])
        return Response(200, self.auth.renew(data["accessToken"].strip(), self.clock.now()), headers)

    def _revoke(self, request: Request) -> Response:
        headers = self._limit(self._writes, request)
        data = _json_object(request)
        if not isinstance(data.get("accessToken"), str):
            fail(422, "ValidationFailure", [required("accessToken")])
        self.auth.revoke(data["accessToken"].strip(), self.clock.now())
        return Response(200, {"message": "Successfully revoked access token"}, headers)

    def _get(self, request: Request) -> Response:
        identity = self.auth.authenticate(request.headers.get("authorization"), self.clock.now())
        headers = self._limit(self._reads, request)
        self._check_params(request)
        conn = self._connection(request, identity, edit=False)
        if conn.app != "gitlab":
            fail(400, "BadRequest", f'App Connection with ID {conn.id} is not for App "gitlab"')
        return Response(200, {"appConnection": self._view(conn)}, headers)

    def _patch(self, request: Request) -> Response:
        identity = self.auth.authenticate(request.headers.get("authorization"), self.clock.now())
        headers = self._limit(self._writes, request)
        self._check_params(request)
        try:
            parsed, body_issues = parse_update(request.json(), accept_group=self.accept_group_tokens)
        except ValueError:
            _unparsable()
        if body_issues:
            fail(422, "ValidationFailure", body_issues)
        conn = self._connection(request, identity, edit=True)
        credentials = parsed.get("credentials")
        if credentials is not None:
            self._check_credentials(conn, credentials)
        name = parsed.get("name")
        if name is not None and any(c.name == name and c.id != conn.id for c in self.connections.values()):
            fail(400, "BadRequest", f'An App Connection with the name "{name}" already exists')
        if credentials is not None:
            conn.encrypted = self._encrypt(credentials[1])
        if name is not None:
            conn.name = name
        if "description" in parsed:
            conn.description = parsed["description"]
        conn.updated_at = self.clock.now()
        return Response(200, {"appConnection": self._view(conn)}, headers)

    def _check_credentials(self, conn: Connection, credentials: tuple[str, dict[str, str]]) -> None:
        """Steps 7-8 of the PATCH: platform-managed, stored-method re-parse, live GitLab check."""
        if conn.platform_managed:
            fail(
                400,
                "BadRequest",
                "Cannot update credentials or management status for platform managed connections",
            )
        shape, value = credentials
        if conn.app != "gitlab" or shape != conn.method:
            app = _APP_NAMES.get(conn.app, conn.app)
            method = _METHOD_NAMES.get(conn.method, conn.method)
            fail(400, "BadRequest", f"Invalid credential format for {app} Connection with method {method}")
        # The real service calls GitLab outside any lock of ours; so does the fake, so a slow
        # GitLab does not stall other requests to this server.
        self.lock.release()
        try:
            self._validate_with_gitlab(value)
        finally:
            self.lock.acquire()

    def _view(self, conn: Connection) -> dict[str, Any]:
        view = conn.sanitized()
        if conn.app == "gitlab":
            stored = self.test_only_credentials(conn.id)
            view["credentials"] = {k: v for k, v in stored.items() if k in {"instanceUrl", "accessTokenType"}}
        return view


def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = request.json()
    except ValueError:
        _unparsable()
    return data if isinstance(data, dict) else {}


def _unparsable() -> NoReturn:
    """Fastify's JSON parse error is no class Infisical's error handler knows: its catch-all 500."""
    fail(500, "InternalServerError", "Something went wrong")


def _gitbeaker_error(answer: httpx.Response) -> str:
    """``GitbeakerRequestError``'s text as Infisical words it: the status text, then the cause.

    gitbeaker's cause is the JSON body's ``error``, else its ``message`` (a non-string one as JSON),
    or a non-JSON body's text; Infisical leaves the cause out after ``Unauthorized``.
    """
    phrase = answer.reason_phrase or str(answer.status_code)
    if "application/json" in answer.headers.get("content-type", ""):
        try:
            body = answer.json()
        except ValueError:
            body = None
        found = (body.get("error") or body.get("message") or "") if isinstance(body, dict) else ""
        cause = found if isinstance(found, str) else json.dumps(found, separators=(",", ":"))
    else:
        cause = answer.text
    return f"{phrase}. Cause: {cause}" if cause and phrase != "Unauthorized" else phrase
