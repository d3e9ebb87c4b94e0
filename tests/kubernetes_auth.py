"""A pod's Infisical Kubernetes Auth for tests: the fake cluster, an identity allowing the pod, a token file.

The cluster shares the fakes' clock. The identity reviews tokens with a token reviewer JWT (a
long-lived token of a service account bound to ``system:auth-delegator``), as the docs recommend
with a dedicated audience; it allows namespace ``rotator``, service account ``rotator-daemon``
and audience ``infisical``, as ``deploy/kubernetes`` sets them up.
"""

import contextlib

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rotator.testing import Fakes
from rotator.testing._infisical_auth import Identity
from rotator.testing.kubernetes import FakeKubernetes, ServiceAccount
from tests.cli_harness import Harness


NAMESPACE = "rotator"
NAME = "rotator-daemon"
AUDIENCE = "infisical"
IDENTITY_ID = "ROTATOR_INFISICAL_IDENTITY_ID"
TOKEN_FILE = "ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE"
#: The fake Infisical's route name for a Kubernetes Auth login.
LOGIN = "POST /api/v1/auth/kubernetes-auth/login"


@dataclass
class PodLogin:
    """The cluster, the identity with Kubernetes Auth, the pod's service account and its token file."""

    kubernetes: FakeKubernetes
    identity: Identity
    pod: ServiceAccount
    token_file: Path

    def mount(self, audience: str = AUDIENCE, account: ServiceAccount | None = None) -> str:
        """Write a fresh projected token (as the kubelet does when it rotates it); return it."""
        token = self.kubernetes.issue_token(account or self.pod, audiences=(audience,))
        self.token_file.write_text(token)
        return token

    def environment(self) -> dict[str, str]:
        """The variables that select Kubernetes Auth with this token file."""
        return {IDENTITY_ID: self.identity.id, TOKEN_FILE: str(self.token_file)}


@contextlib.contextmanager
def pod_login(fakes: Fakes, folder: Path) -> Iterator[PodLogin]:
    """Start the fake cluster beside ``fakes`` and set up the identity and a mounted token."""
    kubernetes = FakeKubernetes(fakes.clock)
    with kubernetes.running():
        pod = kubernetes.seed_service_account(NAMESPACE, NAME)
        reviewer = kubernetes.seed_service_account("kube-system", "infisical-token-reviewer", can_review=True)
        identity = fakes.infisical.seed_identity()
        fakes.infisical.seed_kubernetes_auth(
            identity,
            kubernetes.url,
            allowed_namespaces=NAMESPACE,
            allowed_names=NAME,
            allowed_audience=AUDIENCE,
            token_reviewer_jwt=kubernetes.issue_token(reviewer, lifetime=None),
        )
        login = PodLogin(kubernetes, identity, pod, folder / "token")
        login.mount()
        yield login


@pytest.fixture
def pod(fakes: Fakes, tmp_path: Path) -> Iterator[PodLogin]:
    """The fake cluster and an identity allowing rotator/rotator-daemon with audience infisical."""
    with pod_login(fakes, tmp_path) as login:
        yield login


def pod_harness(fakes: Fakes, pod: PodLogin, folder: Path) -> Harness:
    """The example's two targets, logging in to Infisical with the pod's Kubernetes Auth only."""
    made = Harness(fakes, folder)
    made.infisical_login = pod.environment()
    return made
