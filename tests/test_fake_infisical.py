"""The fake Infisical: auth, the GitLab connection GET/PATCH, credentialsHash, limits, errors."""

import datetime as dt
import re

import httpx
import pytest

from rotator.testing import FakeInfisical, Fakes


def _conn(fakes: Fakes) -> str:
    return f"/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}"


def _new_token(fakes: Fakes) -> str:
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    return fakes.gitlab.seed_resource_token(project, "next", ["api"]).value


def _creds(fakes: Fakes, token: str) -> dict[str, object]:
    return {
        "credentials": {
            "accessToken": token,
            "accessTokenType": "project",
            "instanceUrl": fakes.seed.gitlab_url,
        }
    }


def _assert_error(response: httpx.Response, status: int, error: str) -> dict[str, object]:
    assert response.status_code == status
    body = response.json()
    assert set(body) >= {"reqId", "statusCode", "message", "error"}
    assert re.fullmatch(r"req-[A-Za-z0-9]{14}", body["reqId"])
    assert body["statusCode"] == status
    assert body["error"] == error
    return dict(body)


def test_login_answers_the_four_fields(fakes: Fakes) -> None:
    """Universal Auth login returns accessToken, expiresIn, accessTokenMaxTTL and tokenType."""
    response = httpx.post(
        f"{fakes.seed.infisical_url}/api/v1/auth/universal-auth/login",
        json={
            "clientId": fakes.seed.infisical_client_id,
            "clientSecret": fakes.seed.infisical_client_secret,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "expiresIn", "accessTokenMaxTTL", "tokenType"}
    assert body["tokenType"] == "Bearer"
    assert body["accessToken"].count(".") == 2


def test_three_bad_logins_lock_the_identity(fakes: Fakes) -> None:
    """Three wrong secrets in 30 s lock Universal Auth, even for the right secret, for 300 s."""
    url = f"{fakes.seed.infisical_url}/api/v1/auth/universal-auth/login"
    bad = {"clientId": fakes.seed.infisical_client_id, "clientSecret": "wrong"}
    for _ in range(3):
        _assert_error(httpx.post(url, json=bad), 401, "UnauthorizedError")
    good = {
        "clientId": fakes.seed.infisical_client_id,
        "clientSecret": fakes.seed.infisical_client_secret,
    }
    locked = _assert_error(httpx.post(url, json=good), 401, "UnauthorizedError")
    assert locked["message"] == "This identity auth method is temporarily locked, please try again later"
    fakes.clock.advance(dt.timedelta(seconds=301))
    assert httpx.post(url, json=good).status_code == 200


def test_login_body_validation_is_422(fakes: Fakes) -> None:
    """A login without clientSecret is 422 ValidationFailure with zod issues."""
    response = httpx.post(
        f"{fakes.seed.infisical_url}/api/v1/auth/universal-auth/login", json={"clientId": "x"}
    )
    body = _assert_error(response, 422, "ValidationFailure")
    assert body["message"] == [
        {
            "code": "invalid_type",
            "expected": "string",
            "received": "undefined",
            "path": ["clientSecret"],
            "message": "Required",
        }
    ]


def test_renew_extends_and_expired_tokens_cannot_renew(fakes: Fakes) -> None:
    """Renew works before expiry; after it the JWT check answers 403 TokenError."""
    url = f"{fakes.seed.infisical_url}/api/v1/auth/token/renew"
    renewed = httpx.post(url, json={"accessToken": fakes.seed.infisical_token})
    assert renewed.status_code == 200
    fakes.clock.advance(dt.timedelta(hours=3))
    expired = _assert_error(
        httpx.post(url, json={"accessToken": renewed.json()["accessToken"]}), 403, "TokenError"
    )
    assert expired["message"] == "Your token has expired. Please re-authenticate."


def test_renew_past_max_ttl_is_refused() -> None:
    """Renewal that would pass accessTokenMaxTTL is 401."""
    fake = FakeInfisical()
    identity = fake.seed_identity(ttl=60, max_ttl=100)
    token = fake.seed_access_token(identity)
    with fake.running():
        fake.clock.advance(dt.timedelta(seconds=50))
        response = httpx.post(f"{fake.url}/api/v1/auth/token/renew", json={"accessToken": token})
        reuse = httpx.get(
            f"{fake.url}/api/v1/app-connections/gitlab/{fake.org_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
    body = _assert_error(response, 401, "UnauthorizedError")
    assert body["message"] == "Failed to renew MI access token past its Max TTL expiration"
    gone = _assert_error(reuse, 401, "UnauthorizedError")
    assert gone["message"] == "No identity access token found"


def test_missing_bad_and_revoked_tokens(fakes: Fakes) -> None:
    """No bearer: 401 Token missing; malformed: 403 TokenError; revoked: 401 No identity token found."""
    url = fakes.seed.infisical_url + _conn(fakes)
    missing = _assert_error(httpx.get(url), 401, "UnauthorizedError")
    assert missing["message"] == "Token missing"
    _assert_error(httpx.get(url, headers={"Authorization": "Bearer not.a.jwt"}), 403, "TokenError")
    token = fakes.seed.infisical_token
    httpx.post(f"{fakes.seed.infisical_url}/api/v1/auth/token/revoke", json={"accessToken": token})
    revoked = _assert_error(
        httpx.get(url, headers={"Authorization": f"Bearer {token}"}), 401, "UnauthorizedError"
    )
    assert revoked["message"] == "No identity access token found"


def test_get_redacts_the_token(fakes: Fakes, infisical: httpx.Client) -> None:
    """GET answers the connection with credentials {instanceUrl, accessTokenType} only and a 64-hex hash."""
    body = infisical.get(_conn(fakes)).json()["appConnection"]
    assert body["credentials"] == {
        "instanceUrl": fakes.seed.gitlab_url,
        "accessTokenType": "project",
    }
    assert body["app"] == "gitlab"
    assert body["method"] == "access-token"
    assert re.fullmatch(r"[0-9a-f]{64}", body["credentialsHash"])
    assert fakes.seed.manager_token not in infisical.get(_conn(fakes)).text


def test_patch_stores_validates_and_changes_the_hash(fakes: Fakes, infisical: httpx.Client) -> None:
    """A PATCH with a valid token answers 200, a new hash, and the connection then holds it."""
    before = infisical.get(_conn(fakes)).json()["appConnection"]["credentialsHash"]
    token = _new_token(fakes)
    response = infisical.patch(_conn(fakes), json=_creds(fakes, token))
    assert response.status_code == 200
    after = response.json()["appConnection"]
    assert after["credentialsHash"] != before
    assert "accessToken" not in after["credentials"]
    assert token not in response.text
    assert infisical.get(_conn(fakes)).json()["appConnection"]["credentialsHash"] == after["credentialsHash"]
    assert fakes.infisical.test_only_held_token(fakes.seed.connection_ids[0]) == token
    user_calls = fakes.gitlab.calls("GET /api/v4/user")
    assert [c.user_agent for c in user_calls] == ["infisical-gitbeaker"]


def test_same_token_twice_changes_the_hash_metadata_does_not(fakes: Fakes, infisical: httpx.Client) -> None:
    """Every credential write gets a new hash (random IV); a name-only PATCH keeps it."""
    token = _new_token(fakes)
    first = infisical.patch(_conn(fakes), json=_creds(fakes, token)).json()["appConnection"][
        "credentialsHash"
    ]
    second = infisical.patch(_conn(fakes), json=_creds(fakes, token)).json()["appConnection"][
        "credentialsHash"
    ]
    assert first != second
    renamed = infisical.patch(_conn(fakes), json={"name": "renamed"}).json()["appConnection"]
    assert renamed["credentialsHash"] == second
    assert renamed["name"] == "renamed"


def test_patch_with_a_dead_token_is_400_and_stores_nothing(fakes: Fakes, infisical: httpx.Client) -> None:
    """GitLab refusing the token makes the PATCH 400 'Failed to validate credentials: Unauthorized'."""
    before = infisical.get(_conn(fakes)).json()["appConnection"]["credentialsHash"]
    body = _assert_error(infisical.patch(_conn(fakes), json=_creds(fakes, "glpat-dead")), 400, "BadRequest")
    assert body["message"] == "Failed to validate credentials: Unauthorized"
    assert infisical.get(_conn(fakes)).json()["appConnection"]["credentialsHash"] == before


def test_patch_without_access_token_type_is_422(fakes: Fakes, infisical: httpx.Client) -> None:
    """AccessTokenType is required: no union member matches, 422 with an invalid_union issue."""
    response = infisical.patch(_conn(fakes), json={"credentials": {"accessToken": "glpat-x"}})
    body = _assert_error(response, 422, "ValidationFailure")
    issues = body["message"]
    assert isinstance(issues, list)
    assert issues[0]["code"] == "invalid_union"
    assert issues[0]["path"] == ["credentials"]
    first = issues[0]["unionErrors"][0]["issues"]
    assert first[0]["path"] == ["credentials", "accessTokenType"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "Not A Slug"}, ["name"]),
        ({"isPlatformManagedCredentials": True}, ["isPlatformManagedCredentials"]),
        ({"isAutoRotationEnabled": True}, ["isAutoRotationEnabled"]),
        ({"description": "x" * 257}, ["description"]),
        (
            {"credentials": {"accessToken": "t", "accessTokenType": "project", "instanceUrl": ""}},
            ["credentials", "instanceUrl"],
        ),
    ],
)
def test_patch_body_validation_is_422(
    fakes: Fakes, infisical: httpx.Client, body: object, path: list[str]
) -> None:
    """Schema violations are 422 ValidationFailure naming the path."""
    answer = _assert_error(infisical.patch(_conn(fakes), json=body), 422, "ValidationFailure")
    assert isinstance(answer["message"], list)
    assert answer["message"][0]["path"] == path


def test_validation_runs_before_lookup(infisical: httpx.Client) -> None:
    """A bad uuid is 422 and an unknown uuid with a valid body is 404 with Infisical's text."""
    _assert_error(
        infisical.patch("/api/v1/app-connections/gitlab/not-a-uuid", json={}),
        422,
        "ValidationFailure",
    )
    unknown = "00000000-0000-4000-8000-000000000000"
    body = _assert_error(
        infisical.patch(f"/api/v1/app-connections/gitlab/{unknown}", json={}), 404, "NotFound"
    )
    assert body["message"] == f"Could not find App Connection with ID {unknown}"
    invalid = infisical.patch(f"/api/v1/app-connections/gitlab/{unknown}", json={"name": "Bad Name"})
    assert invalid.status_code == 422


def test_unknown_keys_are_stripped(fakes: Fakes, infisical: httpx.Client) -> None:
    """Unknown keys (method, extra credential fields) are ignored, not rejected."""
    body = _creds(fakes, _new_token(fakes))
    body["method"] = "oauth"
    creds = body["credentials"]
    assert isinstance(creds, dict)
    creds["extra"] = "ignored"
    assert infisical.patch(_conn(fakes), json=body).status_code == 200
    assert set(fakes.infisical.test_only_credentials(fakes.seed.connection_ids[0])) == {
        "accessToken",
        "instanceUrl",
        "accessTokenType",
    }


def test_oauth_shaped_credentials_on_an_access_token_connection_is_400(
    fakes: Fakes, infisical: httpx.Client
) -> None:
    """Credentials of another method pass the union but fail the stored method's re-parse: 400."""
    body = _assert_error(
        infisical.patch(_conn(fakes), json={"credentials": {"code": "abc"}}), 400, "BadRequest"
    )
    assert body["message"] == "Invalid credential format for GitLab Connection with method Access Token"


def test_permission_denied_is_403(fakes: Fakes, infisical: httpx.Client) -> None:
    """An identity without edit rights gets 403 PermissionDenied on PATCH but may still GET."""
    for identity in fakes.infisical.auth.identities.values():
        identity.can_edit = False
    assert infisical.get(_conn(fakes)).status_code == 200
    _assert_error(infisical.patch(_conn(fakes), json=_creds(fakes, "glpat-x")), 403, "PermissionDenied")


def test_get_of_another_apps_connection_is_400(fakes: Fakes, infisical: httpx.Client) -> None:
    """GET through the gitlab route of an AWS connection is 400 'is not for App "gitlab"'."""
    aws = fakes.infisical.seed_connection("x", instance_url=None, app="aws", method="access-key", name="aws")
    body = _assert_error(infisical.get(f"/api/v1/app-connections/gitlab/{aws.id}"), 400, "BadRequest")
    assert body["message"] == f'App Connection with ID {aws.id} is not for App "gitlab"'


def test_group_token_type_depends_on_server_age(fakes: Fakes, infisical: httpx.Client) -> None:
    """AccessTokenType 'group' is accepted by newer servers and 422 on older ones."""
    body = {
        "credentials": {
            "accessToken": _new_token(fakes),
            "accessTokenType": "group",
            "instanceUrl": fakes.seed.gitlab_url,
        }
    }
    assert infisical.patch(_conn(fakes), json=body).status_code == 200
    fakes.infisical.accept_group_tokens = False
    assert infisical.patch(_conn(fakes), json=body).status_code == 422


def test_rate_limits_answer_429_with_the_wait_in_the_message() -> None:
    """With reads_per_minute=1, the second GET is 429 RateLimitExceeded 'try again in N seconds'."""
    fake = FakeInfisical(reads_per_minute=1)
    token = fake.seed_access_token(fake.seed_identity())
    conn = fake.seed_connection("glpat-x", instance_url="https://gitlab.example.com")
    with fake.running():
        url = f"{fake.url}/api/v1/app-connections/gitlab/{conn.id}"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url, headers=headers).status_code == 200
        refused = httpx.get(url, headers=headers)
    body = _assert_error(refused, 429, "RateLimitExceeded")
    assert re.fullmatch(r"Rate limit exceeded\. Please try again in \d+ seconds", str(body["message"]))
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_held_token_control_route_is_test_only(fakes: Fakes) -> None:
    """GET /_fake/connections/<id>/held-token shows the plaintext, marked testOnly, and is not counted."""
    answer = httpx.get(
        f"{fakes.seed.infisical_url}/_fake/connections/{fakes.seed.connection_ids[0]}/held-token"
    )
    assert answer.json()["testOnly"] is True
    assert answer.json()["accessToken"] == fakes.gitlab.test_only_token(fakes.seed.adopt_token_ids[0]).value
    assert fakes.infisical.call_counts() == {}


def test_unknown_route_is_fastify_404(fakes: Fakes) -> None:
    """An unknown route answers Fastify's not-found body."""
    answer = httpx.get(f"{fakes.seed.infisical_url}/api/v1/nothing")
    assert answer.status_code == 404
    assert answer.json()["message"] == "Route GET:/api/v1/nothing not found"
