"""The Infisical adapter's Kubernetes Auth on the fakes: login, the token re-read, refusals and their hold."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.adapters.infisical import (
    KUBERNETES_LOGIN_HOLD,
    KUBERNETES_LOGIN_ROUTE,
    InfisicalAPI,
    InfisicalAuth,
)
from rotator.core.errors import InfisicalError
from rotator.doors.environment import jwt_reader
from rotator.testing import Fakes
from tests.kubernetes_auth import TOKEN_FILE, PodLogin, pod_login


UA = "rotator/9.9.9-test"
GET = "GET /api/v1/app-connections/gitlab/:connectionId"
LOGIN = "POST /api/v1/auth/kubernetes-auth/login"


class Monotonic:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        """Start at 1000 s."""
        self.now = 1000.0

    def __call__(self) -> float:
        """The current reading."""
        return self.now


@pytest.fixture
def pod(fakes: Fakes, tmp_path: Path) -> Iterator[PodLogin]:
    """The fake cluster, an identity allowing rotator/rotator-daemon (audience infisical), a mounted token."""
    with pod_login(fakes, tmp_path) as login:
        yield login


@pytest.fixture
def monotonic() -> Monotonic:
    """The adapter's monotonic clock."""
    return Monotonic()


@pytest.fixture
def api(fakes: Fakes, pod: PodLogin, monotonic: Monotonic) -> Iterator[InfisicalAPI]:
    """The adapter with Kubernetes Auth, reading the token file as the daemon does."""
    reader = jwt_reader({TOKEN_FILE: str(pod.token_file)}, str(pod.token_file))
    adapter = InfisicalAPI(
        fakes.seed.infisical_url,
        InfisicalAuth.kubernetes(pod.identity.id, reader),
        timeout=5.0,
        user_agent=UA,
        sleep=lambda _: None,
        clock=fakes.clock.now,
        monotonic=monotonic,
    )
    yield adapter
    adapter.close()


def _counts(fakes: Fakes) -> dict[str, int]:
    return fakes.infisical.call_counts(user_agent=UA)


def test_the_pod_logs_in_with_its_token_and_reads_a_connection(fakes: Fakes, api: InfisicalAPI) -> None:
    """One Kubernetes Auth login, then the read; the access token's expiry is known afterwards."""
    assert api.access_token_expiry() is None  # asking logs nobody in
    connection = api.get_connection(fakes.seed.connection_ids[0])
    assert connection.name == "gitlab-app"
    assert _counts(fakes) == {LOGIN: 1, GET: 1}
    assert api.access_token_expiry() is not None
    assert not api.credential_refused


def test_the_token_file_is_read_again_at_the_next_login(
    fakes: Fakes, pod: PodLogin, api: InfisicalAPI
) -> None:
    """The kubelet rotated the token: the next login (the access token expired) sends the new one."""
    api.get_connection(fakes.seed.connection_ids[0])
    fakes.clock.advance(timedelta(hours=3))  # past the access token's TTL and the first token's expiry
    pod.mount()  # the kubelet's fresh token; the one read at the first login has expired
    api.get_connection(fakes.seed.connection_ids[0])
    assert _counts(fakes) == {LOGIN: 2, GET: 2}
    assert not api.credential_refused


def test_a_wrong_audience_is_refused_and_held_until_the_token_changes(
    fakes: Fakes, pod: PodLogin, api: InfisicalAPI, monotonic: Monotonic
) -> None:
    """Refused: 401 in the review's words, no JWT in it; held (not sent again) unless the token changes."""
    token = pod.mount("vault")
    with pytest.raises(InfisicalError) as first:
        api.get_connection(fakes.seed.connection_ids[0])
    error = first.value
    assert (error.status, error.route, error.not_applied) == (401, KUBERNETES_LOGIN_ROUTE, True)
    assert error.message == (
        "KubernetesTokenReviewError: [invalid bearer token, token audiences"
        ' ["vault"] is invalid for the target audiences ["infisical"]]'
    )
    assert token not in str(error)
    assert api.credential_refused
    # Within the hold, with the same token: the same answer, nothing sent.
    monotonic.now += KUBERNETES_LOGIN_HOLD - 1
    with pytest.raises(InfisicalError) as held:
        api.get_connection(fakes.seed.connection_ids[0])
    assert (held.value.status, held.value.message) == (401, error.message)
    assert _counts(fakes) == {LOGIN: 1}
    # After the hold it is asked again (Kubernetes Auth has no lockout): still refused.
    monotonic.now += 2
    with pytest.raises(InfisicalError):
        api.get_connection(fakes.seed.connection_ids[0])
    assert _counts(fakes) == {LOGIN: 2}
    # A new token (the audience fixed in the pod spec) is sent at once, and works.
    pod.mount()
    api.get_connection(fakes.seed.connection_ids[0])
    assert _counts(fakes) == {LOGIN: 3, GET: 1}
    assert not api.credential_refused


def test_a_namespace_the_identity_does_not_allow_is_refused(
    fakes: Fakes, pod: PodLogin, api: InfisicalAPI
) -> None:
    """Another namespace's service account: Infisical's access-denied 401, and the credential is refused."""
    pod.mount(account=pod.kubernetes.seed_service_account("default", "rotator-daemon"))
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(fakes.seed.connection_ids[0])
    assert (excinfo.value.status, excinfo.value.message) == (
        401,
        "UnauthorizedError: Access denied: K8s namespace not allowed.",
    )
    assert api.credential_refused


def test_an_unreadable_token_file_sends_nothing(fakes: Fakes, pod: PodLogin, api: InfisicalAPI) -> None:
    """The mount gone: an error naming the file and the variable, not applied, and no request."""
    pod.token_file.unlink()
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(fakes.seed.connection_ids[0])
    assert (excinfo.value.status, excinfo.value.not_applied) == (None, True)
    assert excinfo.value.message == (
        f"the service-account token could not be read ({TOKEN_FILE}: {pod.token_file}: no such file);"
        " no login was sent"
    )
    assert _counts(fakes) == {}
