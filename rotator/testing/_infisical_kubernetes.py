"""Kubernetes Auth for the fake Infisical: ``POST /api/v1/auth/kubernetes-auth/login``.

As ``identity-kubernetes-auth-service.ts`` does (``reference/infisical-2.md`` §3.1), in its order:
the identity's Kubernetes Auth is looked up (404 ``NotFound``); the JWT is reviewed by a
``TokenReview`` posted to the configured API server (10 s timeout), authenticated with the token
reviewer JWT if one is configured, else with the incoming JWT itself, and asking for the allowed
audience if one is set; the API server's failures become Infisical's errors
(``handleAxiosError``: a 401 or 403 from the cluster is a 401 ``KubernetesTokenReviewer…`` with the
cluster's message, a refused connection a 400 ``KubernetesConnectionRefused``); then a review
``error`` or an unauthenticated review is a 401 ``KubernetesTokenReviewError``, and the namespace,
the name and the audience are checked against the allowed ones (comma lists, exact matches), each
a 401 ``UnauthorizedError`` ``Access denied: K8s … not allowed.``

The real server refuses an API server on a private or loopback address unless the review goes
through a gateway; this fake allows loopback, where the fake Kubernetes API listens.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from rotator.testing._infisical_errors import fail


LOGIN = "/api/v1/auth/kubernetes-auth/login"
_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
_TIMEOUT = 10.0
_SERVICE_ACCOUNT = "system:serviceaccount:"


@dataclass(slots=True)
class KubernetesAuth:
    """An identity's Kubernetes Auth, as attached in Infisical (token review mode ``api``)."""

    identity_id: str
    kubernetes_host: str
    allowed_namespaces: str = ""
    allowed_names: str = ""
    allowed_audience: str = ""
    token_reviewer_jwt: str | None = None


#: How the fake posts a review: (url, body, bearer) -> the API server's answer (httpx errors raised).
Post = Callable[[str, dict[str, Any], str], httpx.Response]


def review(auth: KubernetesAuth, jwt: str, post: Post) -> tuple[str, str]:
    """Review ``jwt`` for ``auth``; the service account's (namespace, name), or Infisical's error."""
    spec: dict[str, Any] = {"token": jwt}
    if auth.allowed_audience:
        spec["audiences"] = [auth.allowed_audience]
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    host = auth.kubernetes_host.rstrip("/")
    try:
        answer = post(f"{host}{_REVIEWS}", body, auth.token_reviewer_jwt or jwt)
    except httpx.TimeoutException:
        fail(
            400,
            "KubernetesConnectionTimeout",
            f"Connection to Kubernetes API server at {host} timed out."
            " Verify network connectivity and firewall rules.",
        )
    except httpx.HTTPError:
        fail(
            400,
            "KubernetesConnectionRefused",
            f"Failed to connect to Kubernetes API server at {host}: Connection refused. Verify the host URL"
            " and ensure the kubernetes api server is accessible.",
        )
    data = _json(answer)
    if not answer.is_success:
        _cluster_refused(answer, data)
    status = data.get("status") if isinstance(data, dict) else None
    status = status if isinstance(status, dict) else {}
    if "error" in status:
        fail(401, "KubernetesTokenReviewError", status["error"])
    user = status.get("user") if isinstance(status.get("user"), dict) else {}
    username = user.get("username") if isinstance(user, dict) else None
    if status.get("authenticated") is not True or not isinstance(username, str):
        fail(401, "KubernetesTokenReviewError", "Kubernetes token not authenticated")
    namespace, _, name = username.removeprefix(_SERVICE_ACCOUNT).partition(":")
    _allowed(auth.allowed_namespaces, namespace, "namespace")
    _allowed(auth.allowed_names, name, "name")
    if auth.allowed_audience and auth.allowed_audience not in (status.get("audiences") or []):
        fail(401, "UnauthorizedError", "Access denied: K8s audience not allowed.")
    return namespace, name


def _allowed(allowed: str, value: str, what: str) -> None:
    """An empty list allows everything; else ``value`` must be one of its entries."""
    if allowed and value not in {entry.strip() for entry in allowed.split(",")}:
        fail(401, "UnauthorizedError", f"Access denied: K8s {what} not allowed.")


def _cluster_refused(answer: httpx.Response, data: object) -> None:
    """``handleAxiosHttpError`` for the API server's non-2xx answer."""
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str) or not message:
        message = answer.text or None
    if answer.status_code == 401:
        fail(
            401, "KubernetesTokenReviewerUnauthorized", message or "Token reviewer JWT is invalid or expired."
        )
    if answer.status_code == 403:
        fail(
            401, "KubernetesTokenReviewerForbidden", message or "Token reviewer JWT does not have permission."
        )
    if message:
        fail(401, "KubernetesTokenReviewRequestError", message)
    phrase = answer.reason_phrase or "Unknown error"
    fail(400, "KubernetesTokenReviewRequestError", f"Kubernetes returned HTTP {answer.status_code}: {phrase}")


def _json(answer: httpx.Response) -> object:
    try:
        return answer.json()
    except ValueError:
        return None


def post_with(client: httpx.Client) -> Post:
    """A :data:`Post` over ``client``, with Infisical's 10-second timeout."""

    def post(url: str, body: dict[str, Any], bearer: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
        return client.post(url, json=body, headers=headers, timeout=_TIMEOUT)

    return post
