"""``rotator`` with Infisical Kubernetes Auth: runs log in with the pod's token; bad setups say why."""

from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness
from tests.kubernetes_auth import IDENTITY_ID, LOGIN, TOKEN_FILE, PodLogin, pod, pod_harness


__all__ = ["pod"]  # the fixture, imported for this module's tests
UA_LOGIN = "POST /api/v1/auth/universal-auth/login"
DEFAULT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@pytest.fixture
def harness(fakes: Fakes, pod: PodLogin, tmp_path: Path) -> Harness:
    """The example's two targets, logging in to Infisical with Kubernetes Auth only."""
    return pod_harness(fakes, pod, tmp_path)


def test_run_once_logs_in_with_the_pods_token(fakes: Fakes, harness: Harness) -> None:
    """Both targets rotate; Infisical saw Kubernetes Auth logins only."""
    result = harness.run("run-once")
    assert result.code == 0, result.stderr
    counts = fakes.infisical.call_counts(user_agent="rotator/")
    assert counts[LOGIN] >= 1
    assert UA_LOGIN not in counts
    assert harness.held_works(0)
    assert harness.held_works(1)


MODES = (
    "give exactly one Infisical login, ROTATOR_INFISICAL_TOKEN (an access token),"
    " ROTATOR_INFISICAL_CLIENT_ID + ROTATOR_INFISICAL_CLIENT_SECRET (Universal Auth),"
    " or ROTATOR_INFISICAL_IDENTITY_ID (Kubernetes Auth)"
)
BAD_SETUPS = {
    "with-a-token": (
        {"ROTATOR_INFISICAL_TOKEN": "jwt"},
        f"ROTATOR_INFISICAL_TOKEN: is set as well as ROTATOR_INFISICAL_IDENTITY_ID: {MODES}",
    ),
    "with-universal-auth": (
        {"ROTATOR_INFISICAL_CLIENT_ID": "id", "ROTATOR_INFISICAL_CLIENT_SECRET": "s"},
        (
            "ROTATOR_INFISICAL_CLIENT_ID: is set as well as ROTATOR_INFISICAL_CLIENT_SECRET and"
            f" ROTATOR_INFISICAL_IDENTITY_ID: {MODES}"
        ),
    ),
    "not-a-uuid": (
        {IDENTITY_ID: "my-identity"},
        f"{IDENTITY_ID}: is not an identity id (a UUID: the machine identity's ID in Infisical)",
    ),
    "no-such-file": ({TOKEN_FILE: "/nonexistent/token"}, f"{TOKEN_FILE}: /nonexistent/token: no such file"),
    "default-path-absent": (
        {TOKEN_FILE: None},
        f"{TOKEN_FILE}: is not set, and the default {DEFAULT_TOKEN}: no such file",
    ),
    "file-alone": (
        {IDENTITY_ID: None, "ROTATOR_INFISICAL_TOKEN": "jwt"},
        (
            f"{TOKEN_FILE}: is set but {IDENTITY_ID} is not: Kubernetes Auth needs the identity's id"
            " (for another login mode, remove this variable)"
        ),
    ),
}


@pytest.mark.parametrize(("change", "said"), BAD_SETUPS.values(), ids=BAD_SETUPS.keys())
def test_a_bad_login_setup_exits_2_naming_the_variables(
    harness: Harness, pod: PodLogin, change: dict[str, str | None], said: str
) -> None:
    """Two login modes, a bad identity id, a missing token file or a file alone: exit 2, one line, no call."""
    if TOKEN_FILE in change and change[TOKEN_FILE] is None and Path(DEFAULT_TOKEN).exists():
        pytest.skip("this test runs in a pod: the default token path exists")
    login = {k: v for k, v in {**pod.environment(), **change}.items() if v is not None}
    harness.infisical_login = login
    result = harness.run("run-once")
    assert result.code == 2
    assert said in result.stderr
    assert harness.calls() == 0


def test_check_says_what_to_compare_when_the_audience_is_wrong(harness: Harness, pod: PodLogin) -> None:
    """``check`` with a token for another audience: one PROBLEM line naming both sides, exit 1."""
    pod.mount("vault")
    result = harness.run("check")
    assert result.code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    refusal = (
        'KubernetesTokenReviewError: [invalid bearer token, token audiences ["vault"]'
        ' is invalid for the target audiences ["infisical"]]'
    )
    assert problems == [
        (
            "PROBLEM infisical: credentials: Infisical refused the Kubernetes Auth login of the identity in"
            f" {IDENTITY_ID} with the service-account token in {TOKEN_FILE} (401: {refusal}): compare the"
            " identity's Kubernetes Auth in Infisical (allowed namespaces, service account names, audience)"
            " with this pod's service account and its token's audience"
        )
    ]
