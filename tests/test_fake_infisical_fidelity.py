"""The fake Infisical against the real server: one test per difference of ``infisical-real-server.md``."""

import time

import httpx
import pytest

from rotator.testing import Fakes
from tests.test_fake_infisical import _assert_error, _conn, _creds, _new_token


USER = "GET /api/v4/user"
LOGIN = "/api/v1/auth/universal-auth/login"


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (429, "Check the applicable rate limits for this endpoint."),
        (502, "Verify the status of the endpoint."),
    ],
)
def test_d1_gitlab_429_or_502_fails_the_patch_after_ten_calls_in_well_under_a_second(
    fakes: Fakes, infisical: httpx.Client, status: int, advice: str
) -> None:
    """D1: gitbeaker's 10 calls, 2**i * 0.25 ms apart, then 400 with its retry message (not 25 s)."""
    fakes.gitlab.faults.fail(USER, status, times=None)
    started = time.monotonic()
    response = infisical.patch(_conn(fakes), json=_creds(fakes, _new_token(fakes)))
    elapsed = time.monotonic() - started
    body = _assert_error(response, 400, "BadRequest")
    assert body["message"] == (
        "Failed to validate credentials: Could not successfully complete this request after 10 retries,"
        f" last status code: {status}. {advice}"
    )
    assert fakes.gitlab.call_counts() == {USER: 10}
    assert elapsed < 5  # the real server's 0.35 s, with room for a busy machine; the old fake took 25.6 s


def test_d1_a_few_429s_then_success_store_the_token(fakes: Fakes, infisical: httpx.Client) -> None:
    """D1: three 429s then a 200: the PATCH succeeds after four calls."""
    fakes.gitlab.faults.fail(USER, 429, times=3)
    token = _new_token(fakes)
    assert infisical.patch(_conn(fakes), json=_creds(fakes, token)).status_code == 200
    assert fakes.gitlab.call_counts() == {USER: 4}
    assert fakes.infisical.test_only_held_token(fakes.seed.connection_ids[0]) == token


def test_d3_an_unknown_client_id_is_404_not_found(fakes: Fakes) -> None:
    """D3: a login with a client id no identity has is 404 NotFound, not 401."""
    response = httpx.post(
        f"{fakes.seed.infisical_url}{LOGIN}",
        json={"clientId": "00000000-0000-4000-8000-000000000000", "clientSecret": "anything"},
    )
    body = _assert_error(response, 404, "NotFound")
    assert body["message"] == "No identity with specified client ID was found"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "host.docker.internal"])
def test_d9_localhost_as_instance_url_is_refused(fakes: Fakes, infisical: httpx.Client, host: str) -> None:
    """D9: the names localhost and host.docker.internal are refused before any call to GitLab."""
    body = _creds(fakes, _new_token(fakes))
    credentials = body["credentials"]
    assert isinstance(credentials, dict)
    credentials["instanceUrl"] = str(credentials["instanceUrl"]).replace("127.0.0.1", host)
    answer = _assert_error(infisical.patch(_conn(fakes), json=body), 400, "BadRequest")
    assert answer["message"] == "Failed to validate credentials: Local IPs not allowed as URL"
    assert fakes.gitlab.call_counts() == {}


def test_d9_an_ip_literal_on_loopback_passes(fakes: Fakes, infisical: httpx.Client) -> None:
    """D9: 127.0.0.1 passes (as with ALLOW_INTERNAL_IP_CONNECTIONS), so the fakes' own URLs work."""
    assert fakes.seed.gitlab_url.startswith("http://127.0.0.1:")
    assert infisical.patch(_conn(fakes), json=_creds(fakes, _new_token(fakes))).status_code == 200


@pytest.mark.parametrize("route", ["PATCH connection", "login"])
def test_d11_invalid_json_is_500_something_went_wrong(
    fakes: Fakes, infisical: httpx.Client, route: str
) -> None:
    """D11: a body that is not JSON falls through Infisical's error handler: 500 InternalServerError."""
    headers = {"Content-Type": "application/json"}
    if route == "login":
        response = httpx.post(f"{fakes.seed.infisical_url}{LOGIN}", content=b"{not json", headers=headers)
    else:
        response = infisical.patch(_conn(fakes), content=b"{not json", headers=headers)
    body = _assert_error(response, 500, "InternalServerError")
    assert set(body) == {"reqId", "statusCode", "message", "error"}
    assert body["message"] == "Something went wrong"


def test_d12_the_403_cause_is_gitlabs_error_before_its_description(
    fakes: Fakes, infisical: httpx.Client
) -> None:
    """D12: GitLab's insufficient_scope 403 gives 'Forbidden. Cause: insufficient_scope' (error first)."""
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    weak = fakes.gitlab.seed_resource_token(project, "weak", ["read_repository"]).value
    body = _assert_error(infisical.patch(_conn(fakes), json=_creds(fakes, weak)), 400, "BadRequest")
    assert body["message"] == "Failed to validate credentials: Forbidden. Cause: insufficient_scope"


def test_d12_a_message_only_body_gives_its_message(fakes: Fakes, infisical: httpx.Client) -> None:
    """D12: a 403 whose body has only message (no error) takes message as the cause."""
    fakes.gitlab.faults.fail(USER, 403, body={"message": "403 Forbidden"})
    body = _assert_error(
        infisical.patch(_conn(fakes), json=_creds(fakes, _new_token(fakes))), 400, "BadRequest"
    )
    assert body["message"] == "Failed to validate credentials: Forbidden. Cause: 403 Forbidden"
