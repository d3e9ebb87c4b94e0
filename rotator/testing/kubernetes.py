"""A fake Kubernetes API server: service-account tokens and ``TokenReview``, nothing else.

Infisical's Kubernetes Auth checks a pod's service-account JWT by posting a ``TokenReview`` to the
cluster's API server (``reference/infisical-2.md`` §3.1). This fake is that API server, on loopback:

* :meth:`FakeKubernetes.issue_token` mints a projected service-account token (a JWT with the claims
  the kubelet's tokens carry: ``aud``, ``exp``, ``iss``, ``sub = system:serviceaccount:NS:NAME``,
  ``kubernetes.io``) for a namespace, a name and audiences; only this fake can verify it.
* ``POST /apis/authentication.k8s.io/v1/tokenreviews`` answers as kube-apiserver does. The caller
  authenticates with ``Authorization: Bearer`` (the token reviewer's JWT, or the pod's own); like
  every request to the API server, that bearer must carry the API server's audience (401
  ``Unauthorized`` Status otherwise) and its service account must be allowed to create
  TokenReviews (``system:auth-delegator``; 403 ``Forbidden`` Status otherwise). The review itself
  is ``201`` with the spec echoed and a ``status``: ``authenticated``, ``user`` and ``audiences``,
  or ``user: {}`` with the authenticator's ``error`` (a wrong audience reads ``[invalid bearer
  token, token audiences ["a"] is invalid for the target audiences ["b"]]``). A token no
  authenticator recognises (not a JWT of this cluster) gets ``user: {}`` and no error.

Tokens are HS256 here (the real ones are RS256): nobody but this fake ever verifies them.
"""

import base64
import hashlib
import hmac
import json
import secrets
import uuid

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rotator.testing._clock import FakeClock
from rotator.testing._http import FakeServer, HTTPError, Request, Response


TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a route, not a secret
#: The API server's own audience (``--api-audiences``): what the default service-account token carries.
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ISSUER = API_AUDIENCE
_AUTH_DELEGATOR = "system:auth-delegator"


@dataclass(slots=True)
class ServiceAccount:
    """A service account; ``can_review`` stands for a binding to ``system:auth-delegator``."""

    namespace: str
    name: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    can_review: bool = False

    @property
    def username(self) -> str:
        """``system:serviceaccount:NAMESPACE:NAME``, as the API server names it."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"


class FakeKubernetes(FakeServer):
    """A Kubernetes API server on loopback that reviews tokens; see the module docstring."""

    upstream = "kubernetes"

    def __init__(self, clock: FakeClock | None = None, *, test_hooks_key: str | None = None) -> None:
        """An empty cluster (no service accounts), not yet listening."""
        super().__init__(clock, test_hooks_key=test_hooks_key)
        self._key = secrets.token_bytes(32)
        self.service_accounts: dict[tuple[str, str], ServiceAccount] = {}
        self.route("POST", TOKEN_REVIEWS, self._review)

    def canned_error(self, status: int, shape: str | None, request: Request) -> Response:
        """The API server's ``Status`` body for ``status``."""
        del shape, request
        reasons = {
            400: "BadRequest",
            401: "Unauthorized",
            403: "Forbidden",
            404: "NotFound",
            429: "TooManyRequests",
        }
        reason = reasons.get(status, "InternalError")
        return _status(status, reason, reason if status == 401 else f"fault injected ({status})")

    def not_found(self, request: Request) -> Response:
        """The API server's 404 for a path it does not serve."""
        del request
        return _status(404, "NotFound", "the server could not find the requested resource")

    def owns_credential(self, value: str) -> bool:
        """Whether ``value`` is a token this cluster signed."""
        return self._claims(value) is not None

    # ---- seeding --------------------------------------------------------------------------------

    def seed_service_account(self, namespace: str, name: str, *, can_review: bool = False) -> ServiceAccount:
        """A service account; ``can_review``: bound to ``system:auth-delegator`` (may create TokenReviews)."""
        with self.lock:
            account = ServiceAccount(namespace, name, can_review=can_review)
            self.service_accounts[(namespace, name)] = account
            return account

    def issue_token(
        self,
        account: ServiceAccount,
        *,
        audiences: tuple[str, ...] = (API_AUDIENCE,),
        lifetime: timedelta | None = timedelta(hours=1),
    ) -> str:
        """A projected token for ``account`` with these audiences, as the kubelet mounts it.

        ``lifetime=None``: no expiry, as a long-lived token from a ``kubernetes.io/service-account-token``
        Secret (what a token reviewer JWT usually is).
        """
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "aud": list(audiences),
            "iat": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": account.namespace,
                "pod": {"name": f"{account.name}-0", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": account.name, "uid": account.uid},
            },
            "nbf": now,
            "sub": account.username,
        }
        if lifetime is not None:
            claims["exp"] = now + int(lifetime.total_seconds())
        header = _b64({"alg": "HS256", "kid": hashlib.sha256(self._key).hexdigest()[:16], "typ": "JWT"})
        payload = _b64(claims)
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64_bytes(signature)}"

    # ---- the route ------------------------------------------------------------------------------

    def _review(self, request: Request) -> Response:
        reviewer = self._authenticate(request.headers.get("authorization", ""))
        if not reviewer.can_review:
            message = (
                f'tokenreviews.authentication.k8s.io is forbidden: User "{reviewer.username}" cannot create'
                ' resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope'
            )
            details = {"group": "authentication.k8s.io", "kind": "tokenreviews"}
            raise HTTPError(_status(403, "Forbidden", message, details=details))
        try:
            body = request.json()
        except ValueError:
            raise HTTPError(_status(400, "BadRequest", "the object provided is unrecognized")) from None
        spec = body.get("spec") if isinstance(body, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise HTTPError(_status(400, "BadRequest", "token is required for TokenReview in authentication"))
        requested = spec.get("audiences")
        wanted = [a for a in requested if isinstance(a, str)] if isinstance(requested, list) else []
        return Response(
            201,
            {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": self._status_of(token, wanted or [API_AUDIENCE]),
            },
        )

    def _authenticate(self, authorization: str) -> ServiceAccount:
        """The bearer's service account, authenticated for the API server itself (its audience)."""
        scheme, _, token = authorization.partition(" ")
        claims = self._claims(token) if scheme.lower() == "bearer" else None
        account = self._account(claims) if claims is not None else None
        if account is None or claims is None or self._problem(claims, [API_AUDIENCE]) is not None:
            raise HTTPError(_status(401, "Unauthorized", "Unauthorized"))
        return account

    def _status_of(self, token: str, audiences: list[str]) -> dict[str, Any]:
        claims = self._claims(token)
        if claims is None:  # not a token of this cluster: no authenticator claims it
            return {"user": {}}
        problem = self._problem(claims, audiences)
        account = self._account(claims)
        if problem is None and account is None:
            problem = "service account token has been invalidated"
        if problem is not None or account is None:
            return {"user": {}, "error": f"[invalid bearer token, {problem}]"}
        pod = claims["kubernetes.io"]["pod"]
        return {
            "authenticated": True,
            "user": {
                "username": account.username,
                "uid": account.uid,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{account.namespace}",
                    "system:authenticated",
                ],
                "extra": {
                    "authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"],
                    "authentication.kubernetes.io/pod-name": [pod["name"]],
                    "authentication.kubernetes.io/pod-uid": [pod["uid"]],
                },
            },
            "audiences": [a for a in claims["aud"] if a in audiences],
        }

    def _problem(self, claims: dict[str, Any], audiences: list[str]) -> str | None:
        """Why a verified token does not authenticate for ``audiences`` (kube-apiserver's words)."""
        if "exp" in claims and self.clock.now().timestamp() >= claims["exp"]:
            return "service account token has expired"
        if not set(claims["aud"]) & set(audiences):
            wanted = _go_quoted(audiences)
            return f"token audiences {_go_quoted(claims['aud'])} is invalid for the target audiences {wanted}"
        return None

    def _account(self, claims: dict[str, Any]) -> ServiceAccount | None:
        """The token's service account, if it still exists with the same uid."""
        bound = claims["kubernetes.io"]
        account = self.service_accounts.get((bound["namespace"], bound["serviceaccount"]["name"]))
        return account if account is not None and account.uid == bound["serviceaccount"]["uid"] else None

    def _claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this cluster signed, unexpired or not; ``None`` for anything else."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return None
        if not hmac.compare_digest(signature, expected) or not isinstance(claims, dict):
            return None
        return claims


def _status(status: int, reason: str, message: str, **extra: object) -> Response:
    """A ``kind: Status`` failure, as every API server error is."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        **extra,
        "code": status,
    }
    return Response(status, body)


def _go_quoted(values: list[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _b64(data: dict[str, Any]) -> str:
    return _b64_bytes(json.dumps(data, separators=(",", ":")).encode())


def _b64_bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
