"""``rotator daemon`` with Infisical Kubernetes Auth: it rotates; a refused pod is one line and not ready."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness
from tests.kubernetes_auth import LOGIN, PodLogin, pod, pod_harness
from tests.test_daemon import DaemonProcess, daemon_config, finished_for


__all__ = ["pod"]  # the fixture, imported for this module's tests
pytestmark = pytest.mark.slow


def ran(name: str) -> Callable[[dict[str, Any]], bool]:
    """A test for ``daemon.run`` events of target ``name``."""
    return lambda event: event.get("event") == "daemon.run" and event["target"] == name


@pytest.fixture
def harness(fakes: Fakes, pod: PodLogin, tmp_path: Path) -> Harness:
    """The example's targets, a daemon section, and Kubernetes Auth as the only Infisical login."""
    made = pod_harness(fakes, pod, tmp_path)
    daemon_config(made, tmp_path)
    return made


def test_the_daemon_logs_in_with_the_pods_token_and_rotates(fakes: Fakes, harness: Harness) -> None:
    """Both targets rotate through a Kubernetes Auth login; /readyz is 200 with the credential ok."""
    d = DaemonProcess(harness)
    for name in ("app-deploy", "api-deploy"):
        assert d.wait_for(finished_for(name), 30)["outcome"] == "succeeded"
    ready = d.client.get("/readyz")
    assert (ready.status_code, ready.json()["infisical"]["credential"]) == (200, "ok")
    assert d.stop() == 0
    assert fakes.infisical.call_counts(user_agent="rotator/")[LOGIN] >= 1
    assert harness.held_works(0)
    assert harness.held_works(1)


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        (
            lambda pod: pod.mount("vault"),
            (
                'KubernetesTokenReviewError: [invalid bearer token, token audiences ["vault"]'
                ' is invalid for the target audiences ["infisical"]]'
            ),
        ),
        (
            lambda pod: pod.mount(account=pod.kubernetes.seed_service_account("default", "rotator-daemon")),
            "UnauthorizedError: Access denied: K8s namespace not allowed.",
        ),
    ],
    ids=["wrong-audience", "wrong-namespace"],
)
def test_a_refused_pod_is_one_clear_line_and_not_ready(
    harness: Harness, pod: PodLogin, setup: object, cause: str
) -> None:
    """A wrong audience or namespace: one daemon.credential_refused line saying what to check; /readyz 503."""
    assert callable(setup)
    setup(pod)
    mutations = harness.mutations()
    d = DaemonProcess(harness)
    d.wait_for(lambda e: e.get("event") == "daemon.credential_refused", 30)
    for name in ("app-deploy", "api-deploy"):
        d.wait_for(ran(name), 30)
    ready = d.client.get("/readyz")
    assert (ready.status_code, ready.json()["infisical"]["credential"]) == (503, "refused")
    assert d.stop() == 0
    refusals = [e for e in d.events() if e.get("event") == "daemon.credential_refused"]
    assert len(refusals) == 1
    assert refusals[0]["credential"] == "infisical_access_token"
    assert refusals[0]["problem"].startswith(
        "Infisical refused the Kubernetes Auth login of the identity in ROTATOR_INFISICAL_IDENTITY_ID with"
        f" the service-account token in ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE (401: {cause}): compare"
    )
    assert "credential_unread" not in d.output()
    assert harness.mutations() == mutations
    assert pod.token_file.read_text() not in d.output()
