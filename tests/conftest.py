"""Shared fixtures: both fakes on loopback, seeded, and python-gitlab / httpx clients for them."""

from collections.abc import Iterator

import gitlab
import httpx
import pytest

from rotator.testing import Fakes, start_fakes


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """Both fakes, seeded, on ephemeral ports."""
    with start_fakes() as running:
        yield running


@pytest.fixture
def gl(fakes: Fakes) -> gitlab.Gitlab:
    """python-gitlab, unchanged, authenticated with the seeded manager token."""
    return gitlab.Gitlab(fakes.seed.gitlab_url, private_token=fakes.seed.manager_token, timeout=10)


@pytest.fixture
def infisical(fakes: Fakes) -> Iterator[httpx.Client]:
    """An httpx client for the fake Infisical, logged in with the seeded identity."""
    with httpx.Client(base_url=fakes.seed.infisical_url, timeout=10) as client:
        login = client.post(
            "/api/v1/auth/universal-auth/login",
            json={
                "clientId": fakes.seed.infisical_client_id,
                "clientSecret": fakes.seed.infisical_client_secret,
            },
        )
        client.headers["Authorization"] = f"Bearer {login.json()['accessToken']}"
        yield client
