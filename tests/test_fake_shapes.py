"""Pin the fakes' entity fields and injected-fault bodies to the reference's shapes."""

import re

import httpx
import pytest
import requests

from rotator.testing import Fakes


GET_CONNECTION = "GET /api/v1/app-connections/gitlab/:connectionId"
LIST_TOKENS = "GET /api/v4/projects/:id/access_tokens"


def test_token_entity_has_exactly_the_documented_fields(fakes: Fakes) -> None:
    """A listed project token has the newest entity's fields and never 'token'."""
    response = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        timeout=10,
    )
    (token,) = response.json()
    assert set(token) == {
        "id", "name", "revoked", "created_at", "description", "scopes", "user_id", "last_used_at",
        "active", "expires_at", "access_level", "resource_type", "resource_id",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", token["created_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", token["expires_at"])


def test_connection_entity_has_exactly_the_documented_fields(fakes: Fakes, infisical: httpx.Client) -> None:
    """The sanitized connection carries the documented fields and no encrypted column."""
    body = infisical.get(f"/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}").json()
    assert set(body) == {"appConnection"}
    assert set(body["appConnection"]) == {
        "id", "name", "description", "version", "orgId", "createdAt", "updatedAt",
        "isPlatformManagedCredentials", "gatewayId", "projectId", "isAutoRotationEnabled",
        "credentialsHash", "app", "method", "credentials",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "expected_body", "has_retry_after"),
    [
        (None, "Retry later\n", True),
        ("bare", "Retry later\n", False),
        (
            "app",
            '{"message":{"error":"This endpoint has been requested too many times. Try again later."}}',
            False,
        ),
    ],
)
def test_gitlab_429_shapes(
    fakes: Fakes, shape: str | None, expected_body: str, has_retry_after: bool
) -> None:
    """Rack::Attack's 429 has Retry-After and RateLimit-*; the app limiter's and a bare one have none."""
    fakes.gitlab.faults.fail(LIST_TOKENS, 429, shape=shape)
    response = requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        timeout=10,
    )
    assert response.status_code == 429
    assert response.text == expected_body
    assert ("Retry-After" in response.headers) is has_retry_after
    assert ("RateLimit-Reset" in response.headers) is has_retry_after


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (500, "InternalServerError", "Something went wrong"),
        (429, "RateLimitExceeded", "Rate limit exceeded. Please try again in 1 seconds"),
        (401, "UnauthorizedError", "No identity access token found"),
        (403, "TokenError", "Your token has expired. Please re-authenticate."),
    ],
)
def test_infisical_injected_errors_use_its_body(
    fakes: Fakes, infisical: httpx.Client, status: int, error: str, message: str
) -> None:
    """Injected Infisical errors carry {reqId, statusCode, message, error} with its own texts."""
    fakes.infisical.faults.fail(GET_CONNECTION, status)
    response = infisical.get(f"/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}")
    assert response.status_code == status
    body = response.json()
    assert (body["statusCode"], body["error"], body["message"]) == (status, error, message)


def test_infisical_502_is_a_load_balancer_page(fakes: Fakes, infisical: httpx.Client) -> None:
    """A 502 in front of Infisical is HTML, not JSON."""
    fakes.infisical.faults.fail(GET_CONNECTION, 502)
    response = infisical.get(f"/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
