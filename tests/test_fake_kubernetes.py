"""The fake Kubernetes API's TokenReview and the fake Infisical's Kubernetes Auth login: the real bodies."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from rotator.testing import FakeClock, FakeInfisical
from rotator.testing._infisical_auth import Identity
from rotator.testing.kubernetes import API_AUDIENCE, TOKEN_REVIEWS, FakeKubernetes, ServiceAccount


LOGIN = "/api/v1/auth/kubernetes-auth/login"
AUDIENCE = "infisical"


@dataclass
class Cluster:
    """Both fakes and an identity allowing rotator/rotator-daemon (and -cronjob) with audience infisical."""

    kubernetes: FakeKubernetes
    infisical: FakeInfisical
    identity: Identity
    pod: ServiceAccount
    reviewer: ServiceAccount

    def login(self, jwt: str, identity_id: str | None = None) -> httpx.Response:
        """POST the Kubernetes Auth login."""
        body = {"identityId": identity_id or self.identity.id, "jwt": jwt}
        return httpx.post(self.infisical.url + LOGIN, json=body)

    def pod_token(self, audience: str = AUDIENCE, account: ServiceAccount | None = None) -> str:
        """A projected token of the pod's service account (or ``account``) for ``audience``."""
        return self.kubernetes.issue_token(account or self.pod, audiences=(audience,))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Both fakes on one clock; the identity reviews with a token reviewer JWT."""
    clock = FakeClock()
    with FakeKubernetes(clock).running() as kubernetes, FakeInfisical(clock).running() as infisical:
        assert isinstance(kubernetes, FakeKubernetes)
        assert isinstance(infisical, FakeInfisical)
        pod = kubernetes.seed_service_account("rotator", "rotator-daemon")
        reviewer = kubernetes.seed_service_account("kube-system", "infisical-token-reviewer", can_review=True)
        identity = infisical.seed_identity()
        infisical.seed_kubernetes_auth(
            identity,
            kubernetes.url,
            allowed_namespaces="rotator",
            allowed_names="rotator-daemon, rotator-cronjob",
            allowed_audience=AUDIENCE,
            token_reviewer_jwt=kubernetes.issue_token(reviewer, lifetime=None),
        )
        yield Cluster(kubernetes, infisical, identity, pod, reviewer)


def _error(response: httpx.Response) -> tuple[int, str, object]:
    body = response.json()
    assert set(body) == {"reqId", "statusCode", "message", "error"}
    assert body["statusCode"] == response.status_code
    return response.status_code, body["error"], body["message"]


def test_a_login_with_the_pods_token_answers_an_access_token_that_works(cluster: Cluster) -> None:
    """The four login fields; the access token authenticates (an unknown connection is then a 404)."""
    response = cluster.login(cluster.pod_token())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "expiresIn", "accessTokenMaxTTL", "tokenType"}
    connection = "/api/v1/app-connections/gitlab/3c90c3cc-0d44-4b50-8888-8dd25736052a"
    read = httpx.get(
        cluster.infisical.url + connection, headers={"Authorization": f"Bearer {body['accessToken']}"}
    )
    assert (read.status_code, read.json()["error"]) == (404, "NotFound")


def test_a_token_for_another_audience_is_refused_by_the_review(cluster: Cluster) -> None:
    """The review asks for the allowed audience: the API server's error, as 401 KubernetesTokenReviewError."""
    assert _error(cluster.login(cluster.pod_token("vault"))) == (
        401,
        "KubernetesTokenReviewError",
        '[invalid bearer token, token audiences ["vault"] is invalid for the target audiences ["infisical"]]',
    )


def test_another_namespace_or_name_is_denied(cluster: Cluster) -> None:
    """A service account outside the allowed namespaces, or names, gets Infisical's access-denied 401."""
    elsewhere = cluster.kubernetes.seed_service_account("default", "rotator-daemon")
    assert _error(cluster.login(cluster.pod_token(account=elsewhere))) == (
        401,
        "UnauthorizedError",
        "Access denied: K8s namespace not allowed.",
    )
    stranger = cluster.kubernetes.seed_service_account("rotator", "someone")
    assert _error(cluster.login(cluster.pod_token(account=stranger))) == (
        401,
        "UnauthorizedError",
        "Access denied: K8s name not allowed.",
    )
    cronjob = cluster.kubernetes.seed_service_account("rotator", "rotator-cronjob")
    assert cluster.login(cluster.pod_token(account=cronjob)).status_code == 200  # the list's second entry


def test_an_expired_or_foreign_token_is_not_authenticated(cluster: Cluster) -> None:
    """Expired: the API server's error; not this cluster's token: "Kubernetes token not authenticated"."""
    token = cluster.pod_token()
    cluster.kubernetes.clock.advance(timedelta(hours=2))
    assert _error(cluster.login(token)) == (
        401,
        "KubernetesTokenReviewError",
        "[invalid bearer token, service account token has expired]",
    )
    assert _error(cluster.login("eyJ.not.ours")) == (
        401,
        "KubernetesTokenReviewError",
        "Kubernetes token not authenticated",
    )


def test_an_unknown_identity_or_a_missing_jwt(cluster: Cluster) -> None:
    """No Kubernetes Auth on that identity: 404 NotFound; no jwt: 422 ValidationFailure."""
    other = cluster.infisical.seed_identity()
    assert _error(cluster.login(cluster.pod_token(), identity_id=other.id)) == (
        404,
        "NotFound",
        "Kubernetes auth method not found for identity, did you configure Kubernetes auth?",
    )
    missing = httpx.post(cluster.infisical.url + LOGIN, json={"identityId": cluster.identity.id})
    status, error, message = _error(missing)
    assert (status, error) == (422, "ValidationFailure")
    assert isinstance(message, list)
    assert message[0]["path"] == ["jwt"]


def test_the_pods_own_token_as_reviewer(cluster: Cluster) -> None:
    """No reviewer JWT: the pod's token reviews itself; with its own audience the API server refuses it."""
    cluster.infisical.kubernetes_auths[cluster.identity.id].token_reviewer_jwt = None
    assert _error(cluster.login(cluster.pod_token())) == (
        401,
        "KubernetesTokenReviewerUnauthorized",
        "Unauthorized",
    )
    # With the API server's audience it authenticates, but may not create TokenReviews.
    cluster.infisical.kubernetes_auths[cluster.identity.id].allowed_audience = ""
    status, error, message = _error(cluster.login(cluster.pod_token(API_AUDIENCE)))
    assert (status, error) == (401, "KubernetesTokenReviewerForbidden")
    assert message == (
        'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:rotator:rotator-daemon"'
        ' cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope'
    )
    cluster.kubernetes.seed_service_account("rotator", "rotator-daemon", can_review=True)  # bound: a new uid
    assert cluster.login(cluster.pod_token(API_AUDIENCE)).status_code == 401  # the old token's uid is gone


def test_an_unreachable_cluster_is_a_400(cluster: Cluster) -> None:
    """The API server refusing connections: 400 KubernetesConnectionRefused naming the host."""
    token = cluster.pod_token()
    with cluster.kubernetes.refusing():
        status, error, message = _error(cluster.login(token))
    assert (status, error) == (400, "KubernetesConnectionRefused")
    assert message == (
        f"Failed to connect to Kubernetes API server at {cluster.kubernetes.url}: Connection refused."
        " Verify the host URL and ensure the kubernetes api server is accessible."
    )


def test_the_token_review_answers_as_kube_apiserver(cluster: Cluster) -> None:
    """201 with the spec echoed and a status; a missing token or bearer gets a Status failure."""
    url = cluster.kubernetes.url + TOKEN_REVIEWS
    reviewer = {"Authorization": "Bearer " + cluster.kubernetes.issue_token(cluster.reviewer, lifetime=None)}
    token = cluster.pod_token()
    review = httpx.post(url, json={"spec": {"token": token, "audiences": [AUDIENCE]}}, headers=reviewer)
    assert review.status_code == 201
    body = review.json()
    assert (body["kind"], body["apiVersion"], body["spec"]["token"]) == (
        "TokenReview",
        "authentication.k8s.io/v1",
        token,
    )
    status = body["status"]
    assert status["authenticated"] is True
    assert status["audiences"] == [AUDIENCE]
    assert status["user"]["username"] == "system:serviceaccount:rotator:rotator-daemon"
    assert "system:serviceaccounts:rotator" in status["user"]["groups"]
    unknown = httpx.post(url, json={"spec": {"token": "opaque"}}, headers=reviewer)
    assert (unknown.status_code, unknown.json()["status"]) == (201, {"user": {}})
    empty = httpx.post(url, json={"spec": {}}, headers=reviewer)
    assert (empty.status_code, empty.json()["reason"], empty.json()["message"]) == (
        400,
        "BadRequest",
        "token is required for TokenReview in authentication",
    )
    anonymous = httpx.post(url, json={"spec": {"token": token}})
    assert anonymous.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
