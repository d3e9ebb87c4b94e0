"""The GitLab adapter against the fake GitLab, over real HTTP on loopback."""

import datetime as dt

from collections.abc import Callable, Iterator

import pytest

import rotator

from rotator.adapters.gitlab import GitLabAPI
from rotator.core.errors import GitLabError
from rotator.core.model import TokenRequest
from rotator.core.secret import Secret
from rotator.testing import Fakes


UA = f"rotator/{rotator.__version__}"
API = "/api/v4"
CREATE = f"POST {API}/projects/:id/access_tokens"
LIST = f"GET {API}/projects/:id/access_tokens"
GET = f"GET {API}/projects/:id/access_tokens/:token_id"
DELETE = f"DELETE {API}/projects/:id/access_tokens/:token_id"
PROJECT = f"GET {API}/projects/:id"
SELF = f"GET {API}/personal_access_tokens/self"


class Blocked(Exception):  # noqa: N818 - names what happened, not an error category
    """Raised by a test's sleep to prove a call would have waited for the limiter."""


@pytest.fixture
def waits() -> list[float]:
    """Every wait the adapter asked for; the tests never really sleep."""
    return []


@pytest.fixture
def make_api(fakes: Fakes, waits: list[float]) -> Iterator[Callable[..., GitLabAPI]]:
    """Build adapters for the fake (manager token unless told), closed after the test."""
    made: list[GitLabAPI] = []

    def make(
        token: str | None = None,
        *,
        timeout: float = 5.0,
        requests_per_minute: int = 600,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = waits.append,
    ) -> GitLabAPI:
        api = GitLabAPI(
            fakes.seed.gitlab_url,
            Secret(token or fakes.seed.manager_token),
            timeout=timeout,
            user_agent=UA,
            requests_per_minute=requests_per_minute,
            max_attempts=max_attempts,
            sleep=sleep,
        )
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(make_api: Callable[..., GitLabAPI]) -> GitLabAPI:
    """The adapter with the seeded manager token."""
    return make_api()


def _today(fakes: Fakes) -> dt.date:
    return fakes.clock.now().date()


def _request(fakes: Fakes, name: str = "app-rotated", days: int = 30) -> TokenRequest:
    return TokenRequest(name, ("api", "read_repository"), 30, _today(fakes) + dt.timedelta(days=days))


def _posts(fakes: Fakes) -> int:
    return len(fakes.gitlab.calls(CREATE))


def test_create_then_token_self_describes_the_new_token(api: GitLabAPI, fakes: Fakes) -> None:
    """A created token's value authenticates as that token, which is active with what was asked."""
    project = fakes.seed.project_ids[0]
    new = api.create_token(project, _request(fakes))
    assert isinstance(new.value, Secret)
    assert new.value.reveal() == fakes.gitlab.test_only_token(new.info.id).value
    assert (new.info.name, new.info.active, new.info.revoked) == ("app-rotated", True, False)
    assert new.info.scopes == ("api", "read_repository")
    assert new.info.access_level == 30
    assert new.info.expires_at == _today(fakes) + dt.timedelta(days=30)
    described = api.token_self(new.value)
    assert (described.id, described.active) == (new.info.id, True)


def test_list_includes_revoked_tokens_and_parses_timestamps(api: GitLabAPI, fakes: Fakes) -> None:
    """The list keeps revoked tokens (active false) and gives aware datetimes and dates."""
    project = fakes.seed.project_ids[0]
    new = api.create_token(project, _request(fakes))
    api.delete_token(project, new.info.id)
    tokens = {t.id: t for t in api.list_tokens(project)}
    assert set(tokens) == {fakes.seed.adopt_token_ids[0], new.info.id}
    assert (tokens[new.info.id].revoked, tokens[new.info.id].active) == (True, False)
    adopted = tokens[fakes.seed.adopt_token_ids[0]]
    assert adopted.active
    assert adopted.created_at is not None
    assert adopted.created_at.tzinfo is not None
    assert adopted.expires_at == _today(fakes) + dt.timedelta(days=30)


def test_list_follows_every_page_with_a_limiter_slot_each(
    make_api: Callable[..., GitLabAPI], fakes: Fakes, waits: list[float]
) -> None:
    """Over 100 tokens take two pages; with one request a minute the second page waits its turn."""
    resource = next(r for r in fakes.gitlab.state.resources.values() if r.path == "acme/app")
    for number in range(100):
        fakes.gitlab.seed_resource_token(resource, f"bulk-{number}", ["api"])
    assert len(make_api().list_tokens(resource.id)) == 101
    assert len(fakes.gitlab.calls(LIST)) == 2

    def refuse(seconds: float) -> None:
        waits.append(seconds)
        raise Blocked

    fakes.gitlab.reset_calls()
    with pytest.raises(Blocked):
        make_api(requests_per_minute=1, sleep=refuse).list_tokens(resource.id)
    assert len(fakes.gitlab.calls(LIST)) == 1
    assert waits[-1] > 50


def test_get_unknown_token_is_none(api: GitLabAPI, fakes: Fakes) -> None:
    """GitLab's 404 for a token id is None, not an error."""
    assert api.get_token(fakes.seed.project_ids[0], 999_999) is None


def test_delete_then_get_shows_the_token_revoked(api: GitLabAPI, fakes: Fakes) -> None:
    """A 204 revoke leaves the token listed as revoked and inactive."""
    project, token_id = fakes.seed.project_ids[0], fakes.seed.adopt_token_ids[0]
    api.delete_token(project, token_id)
    info = api.get_token(project, token_id)
    assert info is not None
    assert (info.revoked, info.active) == (True, False)


def test_delete_unknown_token_raises_its_status(api: GitLabAPI, fakes: Fakes) -> None:
    """A revoke that is not a 204 raises with the status for the engine to judge."""
    with pytest.raises(GitLabError) as raised:
        api.delete_token(fakes.seed.project_ids[0], 999_999)
    assert (raised.value.status, raised.value.not_applied) == (404, True)
    assert raised.value.route == "DELETE /projects/:id/access_tokens/:token_id"


def test_project_path_resolves_and_an_id_needs_no_call(api: GitLabAPI, fakes: Fakes) -> None:
    """``acme/app`` is looked up URL-encoded; a numeric id is returned without asking."""
    assert api.project_id(fakes.seed.project_paths[1]) == fakes.seed.project_ids[1]
    assert [c.path for c in fakes.gitlab.calls()] == [f"{API}/projects/acme%2Fapi"]
    assert api.project_id(fakes.seed.project_ids[0]) == fakes.seed.project_ids[0]
    assert len(fakes.gitlab.calls()) == 1


def test_unknown_project_path_is_404(api: GitLabAPI) -> None:
    """A path GitLab does not know raises 404, refused before anything happened."""
    with pytest.raises(GitLabError) as raised:
        api.project_id("acme/nope")
    assert (raised.value.status, raised.value.not_applied) == (404, True)
    assert raised.value.route == "GET /projects/:id"


def test_manager_access_level_and_self(api: GitLabAPI, fakes: Fakes) -> None:
    """The seeded manager is Maintainer (40); its token describes itself."""
    assert api.manager_access_level(fakes.seed.project_ids[0]) == 40
    manager = api.manager_self()
    assert (manager.name, manager.active, manager.access_level) == ("rotator-manager", True, None)


def test_create_too_far_out_names_the_limit(api: GitLabAPI, fakes: Fakes) -> None:
    """A 400-day expiry is refused with "must be before <date>" intact, for the engine to clamp."""
    with pytest.raises(GitLabError) as raised:
        api.create_token(fakes.seed.project_ids[0], _request(fakes, days=400))
    limit = (_today(fakes) + dt.timedelta(days=365)).isoformat()
    assert (raised.value.status, raised.value.not_applied) == (400, True)
    assert f"must be before {limit}" in raised.value.message


def test_dict_messages_are_flattened(api: GitLabAPI, fakes: Fakes) -> None:
    """``{"message": {"expires_at": [...]}}`` reads as "expires_at must be before ..."."""
    body = {"message": {"expires_at": ["must be before 2027-05-01"]}}
    fakes.gitlab.faults.fail(CREATE, 400, body=body)
    with pytest.raises(GitLabError) as raised:
        api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert raised.value.message == "expires_at must be before 2027-05-01"


@pytest.mark.parametrize(
    ("status", "shape", "message", "not_applied"),
    [
        (400, "param", "name is missing", True),
        (401, "expired", "invalid_token: Token is expired.", True),
        (403, "insufficient_scope", "insufficient_scope: The request requires higher privileges", True),
        (405, None, "405 Method Not Allowed", True),
        (409, None, "409 Conflict", True),
        (422, None, "422 Unprocessable Entity", True),
        (500, None, "500 Internal Server Error", False),
        (502, None, "an HTML error page", False),
        (503, None, "503 Service Unavailable", False),
        (525, None, "525 Error", False),
    ],
)
def test_failed_create_is_mapped_and_never_retried(  # noqa: PLR0913, PLR0917 - one row of the table
    api: GitLabAPI, fakes: Fakes, status: int, shape: str | None, message: str, not_applied: bool
) -> None:
    """Each answer becomes one GitLabError; 4xx refused (not applied), 5xx unknown; one POST only."""
    fakes.gitlab.faults.fail(CREATE, status, shape=shape)
    with pytest.raises(GitLabError) as raised:
        api.create_token(fakes.seed.project_ids[0], _request(fakes))
    error = raised.value
    assert (error.upstream, error.route, error.status) == (
        "gitlab",
        "POST /projects/:id/access_tokens",
        status,
    )
    assert error.message.startswith(message)
    assert error.not_applied is not_applied
    assert _posts(fakes) == 1


@pytest.mark.parametrize("arm", ["drop_before", "drop_after"])
def test_create_without_an_answer_is_never_retried(api: GitLabAPI, fakes: Fakes, arm: str) -> None:
    """A dropped connection on create: one POST, no status, outcome unknown (it may have applied)."""
    getattr(fakes.gitlab.faults, arm)(CREATE)
    with pytest.raises(GitLabError) as raised:
        api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert (raised.value.status, raised.value.not_applied) == (None, False)
    assert _posts(fakes) == 1
    created = [t for t in fakes.gitlab.state.tokens.values() if t.name == "app-rotated"]
    assert len(created) == (1 if arm == "drop_after" else 0)


def test_create_timeout_is_never_retried(make_api: Callable[..., GitLabAPI], fakes: Fakes) -> None:
    """A create that hits the read timeout is not sent again."""
    fakes.gitlab.faults.hang(CREATE, seconds=2)
    with pytest.raises(GitLabError) as raised:
        make_api(timeout=0.3).create_token(fakes.seed.project_ids[0], _request(fakes))
    assert (raised.value.status, raised.value.not_applied) == (None, False)
    assert raised.value.message.startswith("timed out")
    assert _posts(fakes) == 1


def test_create_429_waits_retry_after_then_creates_once(
    api: GitLabAPI, fakes: Fakes, waits: list[float]
) -> None:
    """A throttled create waits the Retry-After second and is sent again: two POSTs, one token."""
    fakes.gitlab.faults.fail(CREATE, 429)
    new = api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert waits == [1.0]
    assert _posts(fakes) == 2
    assert [t.id for t in fakes.gitlab.state.tokens.values() if t.name == "app-rotated"] == [new.info.id]


def test_429_retries_are_bounded(
    make_api: Callable[..., GitLabAPI], fakes: Fakes, waits: list[float]
) -> None:
    """A 429 that never ends stops after max_attempts, refused and so not applied."""
    fakes.gitlab.faults.fail(CREATE, 429, times=None)
    with pytest.raises(GitLabError) as raised:
        make_api(max_attempts=3).create_token(fakes.seed.project_ids[0], _request(fakes))
    assert (raised.value.status, raised.value.not_applied) == (429, True)
    assert _posts(fakes) == 3
    assert waits == [1.0, 1.0]


def test_429_without_headers_backs_off(api: GitLabAPI, fakes: Fakes, waits: list[float]) -> None:
    """The application limiter's 429 has no Retry-After: exponential backoff instead."""
    fakes.gitlab.faults.fail(LIST, 429, shape="app")
    api.list_tokens(fakes.seed.project_ids[0])
    assert len(waits) == 1
    assert 0 < waits[0] <= 0.5


def test_list_retries_a_5xx_once(api: GitLabAPI, fakes: Fakes, waits: list[float]) -> None:
    """A 500 on a list is retried after a backoff: one extra call, then the answer."""
    fakes.gitlab.faults.fail(LIST, 500)
    assert len(api.list_tokens(fakes.seed.project_ids[0])) == 1
    assert len(fakes.gitlab.calls(LIST)) == 2
    assert len(waits) == 1


@pytest.mark.parametrize(
    ("route", "call"),
    [
        (GET, lambda api, f: api.get_token(f.seed.project_ids[0], f.seed.adopt_token_ids[0])),
        (DELETE, lambda api, f: api.delete_token(f.seed.project_ids[0], f.seed.adopt_token_ids[0])),
        (PROJECT, lambda api, f: api.project_id(f.seed.project_paths[0])),
        (PROJECT, lambda api, f: api.manager_access_level(f.seed.project_ids[0])),
        (SELF, lambda api, _: api.manager_self()),
        (SELF, lambda api, f: api.token_self(Secret(f.seed.manager_token))),
    ],
)
def test_idempotent_calls_retry_5xx_and_lost_connections(
    api: GitLabAPI, fakes: Fakes, waits: list[float], route: str, call: Callable[[GitLabAPI, Fakes], object]
) -> None:
    """Reads, lookups and revoke are safe to repeat: a reset, a 502 and a lost answer cost 3 calls."""
    fakes.gitlab.faults.drop_before(route)
    fakes.gitlab.faults.fail(route, 502)
    fakes.gitlab.faults.drop_after(route)
    call(api, fakes)
    assert len(fakes.gitlab.calls(route)) == 4
    assert len(waits) == 3


def test_5xx_retries_are_bounded(
    make_api: Callable[..., GitLabAPI], fakes: Fakes, waits: list[float]
) -> None:
    """A 503 that never ends stops after max_attempts with an unknown outcome."""
    fakes.gitlab.faults.fail(LIST, 503, times=None)
    with pytest.raises(GitLabError) as raised:
        make_api(max_attempts=4).list_tokens(fakes.seed.project_ids[0])
    assert (raised.value.status, raised.value.not_applied) == (503, False)
    assert len(fakes.gitlab.calls(LIST)) == 4
    assert len(waits) == 3


def test_every_request_carries_the_user_agent(api: GitLabAPI, fakes: Fakes) -> None:
    """Each request, the token_self one included, says rotator/<version>."""
    project = api.project_id(fakes.seed.project_paths[0])
    api.manager_access_level(project)
    new = api.create_token(project, _request(fakes))
    api.token_self(new.value)
    api.list_tokens(project)
    api.delete_token(project, new.info.id)
    api.get_token(project, new.info.id)
    calls = fakes.gitlab.calls()
    assert len(calls) == 7
    assert {c.user_agent for c in calls} == {UA}


def test_error_messages_never_show_a_token_value(api: GitLabAPI, fakes: Fakes) -> None:
    """A token value echoed in GitLab's message is scrubbed, prefix and all."""
    held = fakes.gitlab.test_only_token(fakes.seed.adopt_token_ids[0]).value
    body = {"message": f"400 Bad request - {held} and {fakes.seed.manager_token} and glpat-abc_DEF-123"}
    fakes.gitlab.faults.fail(CREATE, 400, body=body)
    with pytest.raises(GitLabError) as raised:
        api.create_token(fakes.seed.project_ids[0], _request(fakes))
    text = f"{raised.value} {raised.value!r}"
    assert "glpat-" not in text
    assert held not in text
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_a_routable_token_in_an_error_message_is_redacted_whole(api: GitLabAPI, fakes: Fakes) -> None:
    """A routable token GitLab echoes (``glpat-<payload>.01.<crc>``) leaves no part behind, dots included."""
    echoed = fakes.gitlab.test_only_token(fakes.seed.adopt_token_ids[1]).value
    assert "." in echoed  # the fakes mint GitLab's routable format
    fakes.gitlab.faults.fail(CREATE, 400, body={"message": f"400 Bad request - {echoed} is not allowed"})
    with pytest.raises(GitLabError) as raised:
        api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert "400 Bad request - [REDACTED] is not allowed" in str(raised.value)


def test_unknown_manager_token_is_a_plain_401(make_api: Callable[..., GitLabAPI], fakes: Fakes) -> None:
    """A credential GitLab does not know: 401 Unauthorized, with the token nowhere in the error."""
    bogus = "glpat-" + "x" * 20
    with pytest.raises(GitLabError) as raised:
        make_api(bogus).manager_self()
    assert (raised.value.status, raised.value.message, raised.value.not_applied) == (
        401,
        "401 Unauthorized",
        True,
    )
    assert "glpat-" not in str(raised.value)
    assert len(fakes.gitlab.calls(SELF)) == 1


def test_expired_manager_token_says_invalid_token(make_api: Callable[..., GitLabAPI], fakes: Fakes) -> None:
    """An expired manager token: 401 whose message is invalid_token and GitLab's reason."""
    user = fakes.gitlab.seed_user("someone")
    expired = fakes.gitlab.seed_personal_token(user, ["api"], days=0)
    with pytest.raises(GitLabError) as raised:
        make_api(expired.value).list_tokens(fakes.seed.project_ids[0])
    assert raised.value.status == 401
    assert raised.value.message.startswith("invalid_token: Token is expired.")


def test_token_self_with_a_revoked_value_is_invalid_token(api: GitLabAPI, fakes: Fakes) -> None:
    """Verifying a revoked value fails with the caller-credential 401, not a permission one."""
    project = fakes.seed.project_ids[0]
    new = api.create_token(project, _request(fakes))
    api.delete_token(project, new.info.id)
    with pytest.raises(GitLabError) as raised:
        api.token_self(new.value)
    assert (raised.value.status, raised.value.route) == (401, "GET /personal_access_tokens/self")
    assert raised.value.message.startswith("invalid_token: Token was revoked.")
    assert new.value.reveal() not in str(raised.value)


def test_an_unexpected_success_body_is_an_error(api: GitLabAPI, fakes: Fakes) -> None:
    """A 2xx GitLab would never send (HTML, or a token without its fields) raises, outcome unknown."""
    fakes.gitlab.faults.fail(GET, 200, body="<html>maintenance</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(GitLabError) as raised:
        api.get_token(fakes.seed.project_ids[0], fakes.seed.adopt_token_ids[0])
    assert (raised.value.status, raised.value.not_applied) == (200, False)
    fakes.gitlab.faults.fail(SELF, 200, body={"id": 1, "name": "x"})
    with pytest.raises(GitLabError) as raised:
        api.manager_self()
    assert raised.value.message.startswith("unexpected answer (KeyError")


def test_a_refused_header_value_is_not_quoted_in_the_error(make_api: Callable[..., GitLabAPI]) -> None:
    """A token with a line break fails in the HTTP library; the error names the type, not the value."""
    custom = "acme-Zk3xQ9vT2mLp8Rw4Yb6N"  # a custom prefix: no shape-based redaction catches it
    api = make_api(f"{custom}\n")
    with pytest.raises(GitLabError) as raised:
        api.manager_self()
    assert raised.value.message == "unexpected answer (ValueError)"
    assert "Zk3x" not in str(raised.value)
