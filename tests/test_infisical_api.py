import dataclasses
import json
import socket

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rotator.adapters.infisical import InfisicalAPI, InfisicalAuth
from rotator.core.errors import ConnectionNotFoundError, InfisicalError
from rotator.core.model import Connection
from rotator.core.secret import Secret
from rotator.testing import Fakes


UA = "rotator/9.9.9-test"
GET = "GET /api/v1/app-connections/gitlab/:connectionId"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
LOGIN = "POST /api/v1/auth/universal-auth/login"
RENEW = "POST /api/v1/auth/token/renew"
MakeAPI = Callable[..., InfisicalAPI]


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the adapter asked for, instead of really waiting."""
    return []


@pytest.fixture
def make_api(fakes: Fakes, sleeps: list[float]) -> Iterator[MakeAPI]:
    """Adapters for the fake Infisical: Universal Auth, the fake clock, no real sleeps; closed after."""
    made: list[InfisicalAPI] = []

    def make(**overrides: object) -> InfisicalAPI:
        options: dict[str, object] = {
            "url": fakes.seed.infisical_url,
            "auth": InfisicalAuth.universal(
                fakes.seed.infisical_client_id, Secret(fakes.seed.infisical_client_secret)
            ),
            "timeout": 5.0,
            "user_agent": UA,
            "sleep": sleeps.append,
            "clock": fakes.clock.now,
            **overrides,
        }
        api = InfisicalAPI(**options)  # type: ignore[arg-type]
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(make_api: MakeAPI) -> InfisicalAPI:
    """The default adapter: Universal Auth with the seeded identity."""
    return make_api()


def _new_token(fakes: Fakes, name: str = "next") -> Secret:
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    return Secret(fakes.gitlab.seed_resource_token(project, name, ["api"]).value)


def _conn_id(fakes: Fakes) -> str:
    return fakes.seed.connection_ids[0]


def _counts(fakes: Fakes) -> dict[str, int]:
    return fakes.infisical.call_counts(user_agent=UA)


def _error(excinfo: pytest.ExceptionInfo[InfisicalError]) -> InfisicalError:
    return excinfo.value


# ---- reading ------------------------------------------------------------------------------------


def test_get_connection_reads_the_record(fakes: Fakes, api: InfisicalAPI) -> None:
    """get_connection returns id, name, app, method, instanceUrl as stored, token type and hash."""
    conn = api.get_connection(_conn_id(fakes))
    assert conn.id == _conn_id(fakes)
    assert (conn.name, conn.app, conn.method) == ("gitlab-app", "gitlab", "access-token")
    assert conn.instance_url == fakes.seed.gitlab_url
    assert conn.access_token_type == "project"
    assert len(conn.credentials_hash) == 64


def test_absent_instance_url_reads_as_none(fakes: Fakes, api: InfisicalAPI) -> None:
    """A connection without instanceUrl (gitlab.com) reads with instance_url None, not a default."""
    seeded = fakes.infisical.seed_connection("glpat-old", instance_url=None, name="dotcom")
    assert api.get_connection(seeded.id).instance_url is None


def test_unknown_connection_is_a_404_not_applied(api: InfisicalAPI) -> None:
    """A missing connection raises 404 with Infisical's message, the route named by template."""
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection("00000000-0000-4000-8000-000000000000")
    error = _error(excinfo)
    assert (error.status, error.not_applied, error.route) == (404, True, GET)
    assert "Could not find App Connection" in error.message


def test_only_infisicals_own_404_says_a_connection_is_gone(fakes: Fakes, make_api: MakeAPI) -> None:
    """A deleted connection is ConnectionNotFoundError; a route 404 (a wrong base path) is not proof."""
    fakes.infisical.test_only_delete_connection(_conn_id(fakes))
    with pytest.raises(ConnectionNotFoundError):
        make_api().get_connection(_conn_id(fakes))
    static = InfisicalAuth.token(Secret(fakes.seed.infisical_token))
    with pytest.raises(InfisicalError) as excinfo:
        make_api(url=fakes.seed.infisical_url + "/proxy", auth=static).get_connection(_conn_id(fakes))
    assert (_error(excinfo).status, _error(excinfo).route) == (404, GET)
    assert not isinstance(_error(excinfo), ConnectionNotFoundError)


# ---- pushing ------------------------------------------------------------------------------------


def test_push_stores_the_value_and_returns_the_new_hash(fakes: Fakes, api: InfisicalAPI) -> None:
    """After a push the connection holds the new token and its hash is the one the PATCH returned."""
    before = api.get_connection(_conn_id(fakes))
    value = _new_token(fakes)
    new_hash = api.push_token(before, value)
    assert fakes.infisical.test_only_held_token(_conn_id(fakes)) == value.reveal()
    assert new_hash != before.credentials_hash
    assert api.get_connection(_conn_id(fakes)).credentials_hash == new_hash


def test_push_keeps_a_trailing_slash_instance_url(fakes: Fakes, api: InfisicalAPI) -> None:
    """The PATCH sends instanceUrl back exactly as read, trailing slash included, and the token type."""
    seeded = fakes.infisical.seed_connection(
        _new_token(fakes, "old").reveal(), instance_url=f"{fakes.seed.gitlab_url}/", name="slash"
    )
    conn = api.get_connection(seeded.id)
    assert conn.instance_url == f"{fakes.seed.gitlab_url}/"
    value = _new_token(fakes)
    api.push_token(conn, value)
    assert fakes.infisical.test_only_credentials(seeded.id) == {
        "accessToken": value.reveal(),
        "instanceUrl": f"{fakes.seed.gitlab_url}/",
        "accessTokenType": "project",
    }


def test_absent_instance_url_is_omitted_from_the_patch(fakes: Fakes, make_api: MakeAPI) -> None:
    """A connection read without instanceUrl is patched without it, never with null or gitlab.com."""
    bodies: list[dict[str, object]] = []
    client = httpx.Client(event_hooks={"request": [lambda r: bodies.append(json.loads(r.content or b"{}"))]})
    api = make_api(client=client)
    conn = Connection(_conn_id(fakes), "gitlab-app", "gitlab", "access-token", None, "project", "h")
    fakes.infisical.faults.fail(PATCH, 400)  # answered before the fake would call gitlab.com
    with pytest.raises(InfisicalError):
        api.push_token(conn, Secret("glpat-unused"))
    assert bodies[-1] == {"credentials": {"accessToken": "glpat-unused", "accessTokenType": "project"}}


def test_patch_gets_at_least_120_seconds(fakes: Fakes, make_api: MakeAPI) -> None:
    """Reads use the configured timeout; the PATCH, which makes Infisical call GitLab, at least 120 s."""
    timeouts: dict[str, float] = {}

    def record(request: httpx.Request) -> None:
        timeouts[request.method] = request.extensions["timeout"]["read"]

    api = make_api(client=httpx.Client(event_hooks={"request": [record]}))
    api.push_token(api.get_connection(_conn_id(fakes)), _new_token(fakes))
    assert timeouts == {"POST": 5.0, "GET": 5.0, "PATCH": 120.0}


def test_every_request_carries_rotators_user_agent(fakes: Fakes, api: InfisicalAPI) -> None:
    """Login, GET and PATCH all carry our User-Agent; Infisical's own GitLab check is not ours."""
    api.push_token(api.get_connection(_conn_id(fakes)), _new_token(fakes))
    assert fakes.infisical.call_counts() == _counts(fakes) == {LOGIN: 1, GET: 1, PATCH: 1}
    assert fakes.gitlab.calls(user_agent="rotator/") == []
    assert fakes.gitlab.call_counts() == {"GET /api/v4/user": 1}


# ---- PATCH outcomes -----------------------------------------------------------------------------


def test_lost_answer_then_success_stores_one_value(
    fakes: Fakes, api: InfisicalAPI, sleeps: list[float]
) -> None:
    """A PATCH applied but unanswered is retried with the same value; the retry's hash comes back."""
    conn = api.get_connection(_conn_id(fakes))
    value = _new_token(fakes)
    fakes.infisical.faults.drop_after(PATCH)
    new_hash = api.push_token(conn, value)
    assert fakes.infisical.test_only_held_token(_conn_id(fakes)) == value.reveal()
    assert api.get_connection(_conn_id(fakes)).credentials_hash == new_hash
    assert _counts(fakes)[PATCH] == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("first", ["503", "drop_before", "drop_after"])
def test_refusal_after_an_unknown_attempt_is_not_proof(fakes: Fakes, api: InfisicalAPI, first: str) -> None:
    """A 400 after a 5xx or a dropped connection does not prove "not stored": not_applied is False."""
    conn = api.get_connection(_conn_id(fakes))
    faults = fakes.infisical.faults
    if first == "503":
        faults.fail(PATCH, 503)
    else:
        getattr(faults, first)(PATCH)
    faults.fail(PATCH, 400)
    with pytest.raises(InfisicalError) as excinfo:
        api.push_token(conn, _new_token(fakes))
    assert (_error(excinfo).status, _error(excinfo).not_applied) == (400, False)


def test_plain_refusal_is_not_applied_and_names_no_token(fakes: Fakes, api: InfisicalAPI) -> None:
    """A token GitLab refuses gives 400 "Failed to validate credentials", not applied, value never shown."""
    conn = api.get_connection(_conn_id(fakes))
    held = fakes.infisical.test_only_held_token(_conn_id(fakes))
    value = Secret("glpat-not-a-real-token-0123")
    with pytest.raises(InfisicalError) as excinfo:
        api.push_token(conn, value)
    error = _error(excinfo)
    assert (error.status, error.not_applied, error.route) == (400, True, PATCH)
    assert "Failed to validate credentials: Unauthorized" in str(error)
    assert value.reveal() not in str(error)
    assert value.reveal() not in repr(error)
    assert fakes.infisical.test_only_held_token(_conn_id(fakes)) == held


def test_echoed_secrets_are_scrubbed_from_messages(fakes: Fakes, api: InfisicalAPI) -> None:
    """Whatever the upstream echoes (the pushed value, a glpat, a JWT), the error shows none of it."""
    conn = api.get_connection(_conn_id(fakes))
    value = Secret("value-with-no-known-shape-42")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    message = f"rejected {value.reveal()} and glpat-AbC_123-xyz and Bearer {jwt}"
    body = {"reqId": "req-x", "statusCode": 400, "message": message, "error": "BadRequest"}
    fakes.infisical.faults.fail(PATCH, 400, body=body)
    with pytest.raises(InfisicalError) as excinfo:
        api.push_token(conn, value)
    text = repr(excinfo.value) + str(excinfo.value)
    for secret in (value.reveal(), "glpat-AbC_123-xyz", jwt):
        assert secret not in text
    assert "rejected [REDACTED] and [REDACTED] and Bearer [REDACTED]" in str(excinfo.value)


def test_validation_issues_are_rendered_readably(fakes: Fakes, api: InfisicalAPI) -> None:
    """A 422 names each zod issue by path and message, and was not applied."""
    conn = dataclasses.replace(api.get_connection(_conn_id(fakes)), instance_url="not a url")
    with pytest.raises(InfisicalError) as excinfo:
        api.push_token(conn, _new_token(fakes))
    error = _error(excinfo)
    assert (error.status, error.not_applied) == (422, True)
    assert error.message == "ValidationFailure: credentials.instanceUrl: Invalid Instance URL"


def test_failed_union_names_the_access_token_issue(fakes: Fakes, api: InfisicalAPI) -> None:
    """A failed credentials union says what is wrong with the access-token shape, not just "Invalid input"."""
    conn = dataclasses.replace(api.get_connection(_conn_id(fakes)), access_token_type=None)
    with pytest.raises(InfisicalError) as excinfo:
        api.push_token(conn, _new_token(fakes))
    message = _error(excinfo).message
    assert message.startswith("ValidationFailure: credentials: Invalid input (credentials.accessTokenType: ")
    assert "Expected 'project'" in message


def test_429_waits_as_told_then_succeeds(fakes: Fakes, api: InfisicalAPI, sleeps: list[float]) -> None:
    """A 429 is retried after the server's Retry-After, and the push then succeeds."""
    conn = api.get_connection(_conn_id(fakes))
    value = _new_token(fakes)
    fakes.infisical.faults.fail(PATCH, 429)
    api.push_token(conn, value)
    assert sleeps == [1.0]
    assert fakes.infisical.test_only_held_token(_conn_id(fakes)) == value.reveal()


def test_429_until_attempts_run_out_is_not_applied(fakes: Fakes, make_api: MakeAPI) -> None:
    """Rate limited on every attempt: bounded attempts, then a 429 that was never applied."""
    api = make_api(max_attempts=3)
    conn = api.get_connection(_conn_id(fakes))
    fakes.infisical.faults.fail(PATCH, 429, times=None, shape="bare")  # no Retry-After: the message's hint
    with pytest.raises(InfisicalError) as excinfo:
        api.push_token(conn, _new_token(fakes))
    assert (_error(excinfo).status, _error(excinfo).not_applied) == (429, True)
    assert _counts(fakes)[PATCH] == 3


def test_relogin_failure_after_unknown_patch_is_not_proof(fakes: Fakes, api: InfisicalAPI) -> None:
    """If logging in again fails after a PATCH attempt with an unknown outcome, not_applied is False."""
    conn = api.get_connection(_conn_id(fakes))
    fakes.infisical.faults.drop_after(PATCH)
    fakes.infisical.faults.fail(PATCH, 401)
    fakes.infisical.faults.fail(LOGIN, 500, times=None)
    with pytest.raises(InfisicalError) as excinfo:
        api.push_token(conn, _new_token(fakes))
    assert (_error(excinfo).route, _error(excinfo).not_applied) == (LOGIN, False)


# ---- transport failures -------------------------------------------------------------------------


def test_unreachable_server_is_retried_then_raised(sleeps: list[float]) -> None:
    """A refused connection is retried with backoff; the error has no status and is not a refusal."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = InfisicalAPI(
        f"http://127.0.0.1:{port}",
        InfisicalAuth.token(Secret("t")),
        timeout=1,
        user_agent=UA,
        max_attempts=3,
        sleep=sleeps.append,
    )
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection("00000000-0000-4000-8000-000000000000")
    api.close()
    assert (_error(excinfo).status, _error(excinfo).not_applied) == (None, False)
    assert _error(excinfo).message == f"cannot reach http://127.0.0.1:{port}: connection refused"
    assert len(sleeps) == 2


def test_hung_read_times_out(fakes: Fakes, make_api: MakeAPI) -> None:
    """A request left unanswered hits the read timeout; the error says so and has no status."""
    api = make_api(timeout=0.2, max_attempts=2)
    api.get_connection(_conn_id(fakes))
    fakes.infisical.faults.hang(GET, seconds=1, times=2)
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(_conn_id(fakes))
    assert _error(excinfo).status is None
    assert "no answer in time" in _error(excinfo).message


def test_html_gateway_page_becomes_its_reason_phrase(fakes: Fakes, make_api: MakeAPI) -> None:
    """A proxy's HTML 502 is reported by its reason phrase, after the retries."""
    api = make_api(max_attempts=2)
    fakes.infisical.faults.fail(GET, 502, times=None)
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(_conn_id(fakes))
    assert (_error(excinfo).status, _error(excinfo).message) == (502, "Bad Gateway")
    assert _counts(fakes)[GET] == 2


# ---- Universal Auth -----------------------------------------------------------------------------


def test_constructing_makes_no_call(fakes: Fakes, api: InfisicalAPI) -> None:
    """Building the adapter (or asking its expiry) sends nothing: an idle run never logs in."""
    assert api.access_token_expiry() is None
    assert fakes.infisical.calls() == []


def test_logs_in_once_for_many_calls(fakes: Fakes, api: InfisicalAPI) -> None:
    """Two reads and a push share one login."""
    conn = api.get_connection(_conn_id(fakes))
    api.get_connection(fakes.seed.connection_ids[1])
    api.push_token(conn, _new_token(fakes))
    assert _counts(fakes)[LOGIN] == 1


def test_expiry_follows_the_login(fakes: Fakes, api: InfisicalAPI) -> None:
    """After logging in, the expiry is expiresIn (two hours for the seed) from the login."""
    api.get_connection(_conn_id(fakes))
    expiry = api.access_token_expiry()
    assert expiry is not None
    assert abs(expiry - (fakes.clock.now() + timedelta(hours=2))) < timedelta(seconds=5)


def test_renews_when_little_life_is_left(fakes: Fakes, api: InfisicalAPI) -> None:
    """With under 20% of the TTL left the token is renewed, not replaced by a new login."""
    api.get_connection(_conn_id(fakes))
    fakes.clock.advance(timedelta(seconds=7200 * 0.85))
    api.get_connection(_conn_id(fakes))
    assert _counts(fakes) == {LOGIN: 1, RENEW: 1, GET: 2}
    expiry = api.access_token_expiry()
    assert expiry is not None
    assert expiry - fakes.clock.now() > timedelta(hours=1, minutes=59)


def test_refused_renewal_logs_in_again(fakes: Fakes, api: InfisicalAPI) -> None:
    """A renewal refused for Max TTL is followed by a fresh login, and the read succeeds."""
    api.get_connection(_conn_id(fakes))
    fakes.clock.advance(timedelta(seconds=7200 * 0.85))
    body = {
        "message": "Failed to renew MI access token due to Max TTL expiration",
        "error": "UnauthorizedError",
    }
    fakes.infisical.faults.fail(RENEW, 401, body=body)
    api.get_connection(_conn_id(fakes))
    assert _counts(fakes) == {LOGIN: 2, RENEW: 1, GET: 2}


def test_renewal_past_max_ttl_logs_in_instead(fakes: Fakes, make_api: MakeAPI) -> None:
    """When a renewal would pass accessTokenMaxTTL (Infisical would delete the token), log in instead."""
    identity = fakes.infisical.seed_identity(ttl=600, max_ttl=900)
    api = make_api(auth=InfisicalAuth.universal(identity.client_id, Secret(identity.client_secret)))
    api.get_connection(_conn_id(fakes))
    fakes.clock.advance(timedelta(seconds=400))
    api.get_connection(_conn_id(fakes))
    assert _counts(fakes) == {LOGIN: 2, GET: 2}


def test_expired_token_on_our_clock_means_a_new_login(fakes: Fakes, api: InfisicalAPI) -> None:
    """Once the token has expired by our clock, the next call logs in first and never sends it."""
    api.get_connection(_conn_id(fakes))
    fakes.clock.advance(timedelta(hours=3))
    api.get_connection(_conn_id(fakes))
    assert _counts(fakes) == {LOGIN: 2, GET: 2}


def test_token_refused_by_the_server_means_one_new_login(fakes: Fakes, make_api: MakeAPI) -> None:
    """A 403 TokenError (expired on the server's clock) is met by one login and one retry."""
    api = make_api(clock=lambda: datetime.now(UTC))
    api.get_connection(_conn_id(fakes))
    fakes.clock.advance(timedelta(hours=3))
    api.get_connection(_conn_id(fakes))
    assert _counts(fakes) == {LOGIN: 2, GET: 3}


def test_login_again_only_once_per_call(fakes: Fakes, api: InfisicalAPI) -> None:
    """A token refused twice in a row raises after one new login, not an endless loop."""
    api.get_connection(_conn_id(fakes))
    fakes.infisical.faults.fail(GET, 401, times=2)
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(_conn_id(fakes))
    assert (_error(excinfo).status, _error(excinfo).not_applied) == (401, True)
    assert _counts(fakes) == {LOGIN: 2, GET: 3}


def test_permission_denied_is_not_a_login_problem(fakes: Fakes, api: InfisicalAPI) -> None:
    """A 403 PermissionDenied raises at once: logging in again would not change the role."""
    api.get_connection(_conn_id(fakes))
    fakes.infisical.faults.fail(GET, 403, shape="permission")
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(_conn_id(fakes))
    assert _error(excinfo).status == 403
    assert "PermissionDenied" in _error(excinfo).message
    assert _counts(fakes) == {LOGIN: 1, GET: 2}


def test_invalid_credentials_are_never_retried(fakes: Fakes, make_api: MakeAPI, sleeps: list[float]) -> None:
    """A login refused with "Invalid credentials" is tried exactly once per process, so no lockout follows."""
    api = make_api(auth=InfisicalAuth.universal(fakes.seed.infisical_client_id, Secret("wrong-secret-0000")))
    for _ in range(3):
        with pytest.raises(InfisicalError) as excinfo:
            api.get_connection(_conn_id(fakes))
        assert (_error(excinfo).status, _error(excinfo).not_applied) == (401, True)
        assert _error(excinfo).route == LOGIN
        assert "Invalid credentials" in _error(excinfo).message
    assert _counts(fakes) == {LOGIN: 1}
    assert sleeps == []
    assert make_api().get_connection(_conn_id(fakes)).id == _conn_id(fakes)  # the identity is not locked


def test_an_unknown_client_id_is_a_refused_credential_asked_once(
    fakes: Fakes, make_api: MakeAPI, sleeps: list[float]
) -> None:
    """Infisical's 404 for an unknown client id marks the credential refused and is never sent again."""
    unknown = InfisicalAuth.universal("00000000-0000-4000-8000-000000000000", Secret("some-secret-0000"))
    api = make_api(auth=unknown)
    for _ in range(2):
        with pytest.raises(InfisicalError) as excinfo:
            api.get_connection(_conn_id(fakes))
        assert (_error(excinfo).status, _error(excinfo).not_applied) == (404, True)
        assert _error(excinfo).message == "NotFound: No identity with specified client ID was found"
        assert api.credential_refused
    assert _counts(fakes) == {LOGIN: 1}
    assert sleeps == []


def test_unanswered_logins_stop_before_a_third_could_lock_the_identity(
    fakes: Fakes, make_api: MakeAPI
) -> None:
    """Logins whose answers are lost (each may have failed) stop at two per 30 s: no lockout follows."""
    wrong = InfisicalAuth.universal(fakes.seed.infisical_client_id, Secret("wrong-secret-0000"))
    fakes.infisical.faults.drop_after(LOGIN, times=None)  # applied (a failure counted), answer lost
    with pytest.raises(InfisicalError) as excinfo:
        make_api(auth=wrong).get_connection(_conn_id(fakes))
    assert "not sent" in _error(excinfo).message
    assert "lock the identity" in _error(excinfo).message
    assert _counts(fakes) == {LOGIN: 2}
    fakes.infisical.faults.clear()
    assert make_api().get_connection(_conn_id(fakes)).id == _conn_id(fakes)  # the identity is not locked


class _RefusedFirst(httpx.BaseTransport):
    """Refuses the first ``times`` connections (nothing sent), then carries requests to the fakes."""

    def __init__(self, times: int) -> None:
        self.left, self.real = times, httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.left:
            self.left -= 1
            refused = "[Errno 111] Connection refused"
            raise httpx.ConnectError(refused, request=request)
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


def test_logins_never_sent_do_not_count_towards_the_lockout(fakes: Fakes, make_api: MakeAPI) -> None:
    """A refused connection sent no login, so it cannot have failed one: the run's retries get through."""
    client = httpx.Client(transport=_RefusedFirst(3), timeout=5.0)
    try:
        assert make_api(client=client).get_connection(_conn_id(fakes)).id == _conn_id(fakes)
    finally:
        client.close()
    assert _counts(fakes) == {LOGIN: 1, GET: 1}


def test_lockout_is_not_retried(fakes: Fakes, make_api: MakeAPI) -> None:
    """A locked identity's 401 is raised after a single login attempt."""
    url = f"{fakes.seed.infisical_url}/api/v1/auth/universal-auth/login"
    for _ in range(3):
        httpx.post(url, json={"clientId": fakes.seed.infisical_client_id, "clientSecret": "bad"})
    with pytest.raises(InfisicalError) as excinfo:
        make_api().get_connection(_conn_id(fakes))
    assert _error(excinfo).status == 401
    assert "temporarily locked" in _error(excinfo).message
    assert _counts(fakes) == {LOGIN: 1}


# ---- static token -------------------------------------------------------------------------------


def test_static_token_never_logs_in(fakes: Fakes, make_api: MakeAPI) -> None:
    """With a static access token, reads and pushes work and no login or renewal is ever sent."""
    api = make_api(auth=InfisicalAuth.token(Secret(fakes.seed.infisical_token)))
    api.push_token(api.get_connection(_conn_id(fakes)), _new_token(fakes))
    fakes.clock.advance(timedelta(seconds=7200 * 0.85))
    api.get_connection(_conn_id(fakes))
    assert _counts(fakes) == {GET: 2, PATCH: 1}


def test_static_token_expiry_comes_from_its_jwt(fakes: Fakes, make_api: MakeAPI) -> None:
    """The static token's expiry is its JWT exp claim, read without a call; None for a non-JWT."""
    api = make_api(auth=InfisicalAuth.token(Secret(fakes.seed.infisical_token)))
    expiry = api.access_token_expiry()
    assert expiry is not None
    assert abs(expiry - (fakes.clock.now() + timedelta(hours=2))) < timedelta(seconds=5)
    assert make_api(auth=InfisicalAuth.token(Secret("opaque-token"))).access_token_expiry() is None
    assert fakes.infisical.calls() == []


def test_static_token_refused_is_raised(fakes: Fakes, make_api: MakeAPI) -> None:
    """A refused static token raises 403 TokenError at once: there is nothing to log in with."""
    api = make_api(auth=InfisicalAuth.token(Secret(fakes.seed.infisical_token)))
    fakes.infisical.faults.fail(GET, 403)
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(_conn_id(fakes))
    assert _error(excinfo).status == 403
    assert "TokenError" in _error(excinfo).message
    assert fakes.seed.infisical_token not in str(_error(excinfo))
    assert _counts(fakes) == {GET: 1}


def test_auth_takes_exactly_one_mode() -> None:
    """InfisicalAuth refuses no mode, two modes or half a mode, and never shows a secret in its repr."""
    with pytest.raises(ValueError, match="exactly one"):
        InfisicalAuth()
    with pytest.raises(ValueError, match="exactly one"):
        InfisicalAuth(Secret("t"), "id", Secret("s"))
    with pytest.raises(ValueError, match="exactly one"):
        InfisicalAuth(Secret("t"), identity_id="i", jwt=lambda: Secret("j"))
    with pytest.raises(ValueError, match="exactly one"):
        InfisicalAuth(identity_id="i")
    assert "s3cret" not in repr(InfisicalAuth.universal("id", Secret("s3cret")))
    assert "j3wt" not in repr(InfisicalAuth.kubernetes("i", lambda: Secret("j3wt")))


def test_a_refused_header_value_is_not_quoted_in_the_error(fakes: Fakes, make_api: MakeAPI) -> None:
    """A bearer token with a line break fails in httpx; the error names the type, not the value."""
    custom = "acme-Zk3xQ9vT2mLp8Rw4Yb6N"  # a custom prefix: no shape-based redaction catches it
    api = make_api(auth=InfisicalAuth.token(Secret(f"{custom}\nx")), max_attempts=1)
    with pytest.raises(InfisicalError) as excinfo:
        api.get_connection(_conn_id(fakes))
    assert _error(excinfo).message == "connection lost (LocalProtocolError)"
    assert "Zk3x" not in str(_error(excinfo))
