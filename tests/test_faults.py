"""Fault injection on the fakes: fail, drop before/after applying, hang, latency; and call counts."""

import socket
import time
import urllib.parse

import gitlab
import httpx
import pytest
import requests

from hypothesis import given
from hypothesis import strategies as st

from rotator.testing import Fakes, Faults, ForeignHost


CREATE = "POST /api/v4/projects/:id/access_tokens"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"


def _create(fakes: Fakes) -> requests.Response:
    return requests.post(
        f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        json={"name": "f", "scopes": ["api"]},
        timeout=5,
    )


def _create_timing_out(fakes: Fakes) -> None:
    """A create whose client gives up after 0.3 s (the fault holds it longer)."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens",
            headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
            json={"name": "f", "scopes": ["api"]},
            timeout=0.3,
        )


def _token_count(fakes: Fakes) -> int:
    return len(fakes.gitlab.state.tokens)


def test_fail_n_times_applies_nothing_then_recovers(fakes: Fakes) -> None:
    """fail(route, 503, times=2) refuses two creates without creating, then the third succeeds."""
    fakes.gitlab.faults.fail(CREATE, 503, times=2)
    before = _token_count(fakes)
    assert [_create(fakes).status_code for _ in range(3)] == [503, 503, 201]
    assert _token_count(fakes) == before + 1
    assert fakes.gitlab.call_counts()[CREATE] == 3


def test_502_is_an_html_page_and_python_gitlab_raises(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """An injected 502 is nginx's HTML page; python-gitlab raises GitlabCreateError with code 502."""
    fakes.gitlab.faults.fail(CREATE, 502)
    with pytest.raises(gitlab.GitlabCreateError) as raised:
        gl.projects.get("acme/app", lazy=True).access_tokens.create({"name": "x", "scopes": ["api"]})
    assert raised.value.response_code == 502
    assert b"<html>" in (raised.value.response_body or b"")


def test_invalid_token_shape_is_an_authentication_error(fakes: Fakes, gl: gitlab.Gitlab) -> None:
    """A 401 of shape invalid_token is the own-credential body; python-gitlab raises an auth error."""
    fakes.gitlab.faults.fail("GET /api/v4/user", 401, shape="invalid_token")
    with pytest.raises(gitlab.GitlabAuthenticationError) as raised:
        gl.auth()
    assert raised.value.error_message == "invalid_token"


def test_drop_before_applies_nothing(fakes: Fakes) -> None:
    """drop_before closes the connection unanswered and creates no token."""
    fakes.gitlab.faults.drop_before(CREATE)
    before = _token_count(fakes)
    with pytest.raises(requests.ConnectionError):
        _create(fakes)
    assert _token_count(fakes) == before


def test_drop_after_applies_then_loses_the_response(fakes: Fakes) -> None:
    """drop_after creates the token, then the client sees a dropped connection."""
    fakes.gitlab.faults.drop_after(CREATE)
    before = _token_count(fakes)
    with pytest.raises(requests.ConnectionError):
        _create(fakes)
    assert _token_count(fakes) == before + 1


def test_drop_after_on_patch_stores_the_token(fakes: Fakes, infisical: httpx.Client) -> None:
    """A lost PATCH response still leaves the new token stored in the connection."""
    project = fakes.gitlab.state.find_resource("project", "acme/app")
    assert project is not None
    token = fakes.gitlab.seed_resource_token(project, "lost", ["api"]).value
    fakes.infisical.faults.drop_after(PATCH)
    connection = fakes.seed.connection_ids[0]
    with pytest.raises(httpx.RemoteProtocolError):
        infisical.patch(
            f"/api/v1/app-connections/gitlab/{connection}",
            json={
                "credentials": {
                    "accessToken": token,
                    "accessTokenType": "project",
                    "instanceUrl": fakes.seed.gitlab_url,
                }
            },
        )
    assert fakes.infisical.test_only_held_token(connection) == token


def test_hang_makes_the_client_time_out_and_applies_nothing(fakes: Fakes) -> None:
    """Hang holds the request past the client's read timeout; nothing is created."""
    fakes.gitlab.faults.hang(CREATE, seconds=5)
    before = _token_count(fakes)
    _create_timing_out(fakes)
    assert _token_count(fakes) == before


def test_hang_after_applies_then_holds_and_signals_reached(fakes: Fakes) -> None:
    """hang_after creates the token, sets ``reached`` only then, and the client times out."""
    fault = fakes.gitlab.faults.hang_after(CREATE, seconds=5)
    before = _token_count(fakes)
    assert not fault.reached.is_set()
    _create_timing_out(fakes)
    assert fault.reached.is_set()
    assert _token_count(fakes) == before + 1


def test_calls_record_the_requested_name_and_the_answer(fakes: Fakes) -> None:
    """A create's ``name`` and answered status are logged, so a blind retry shows as a repeated name."""
    fakes.gitlab.faults.fail(CREATE, 429)
    fakes.gitlab.faults.drop_after(CREATE)
    _create(fakes)
    with pytest.raises(requests.ConnectionError):
        _create(fakes)
    _create(fakes)
    assert [(c.name, c.status) for c in fakes.gitlab.calls(CREATE)] == [("f", 429), ("f", None), ("f", 201)]


def test_a_revoked_token_on_a_rotate_path_is_logged_as_reuse(fakes: Fakes) -> None:
    """Presenting a revoked token on …/rotate is recorded, so a campaign can prove it never happened."""
    created = _create(fakes).json()
    base = f"{fakes.seed.gitlab_url}/api/v4/projects/acme%2Fapp/access_tokens"
    manager = {"PRIVATE-TOKEN": fakes.seed.manager_token}
    assert requests.delete(f"{base}/{created['id']}", headers=manager, timeout=5).status_code == 204
    assert fakes.gitlab.test_only_reuse_detections() == []
    replay = requests.post(f"{base}/self/rotate", headers={"PRIVATE-TOKEN": created["token"]}, timeout=5)
    assert replay.status_code == 401
    assert fakes.gitlab.test_only_reuse_detections() == [created["id"]]


def test_persistent_latency_delays_every_call(fakes: Fakes) -> None:
    """set_latency adds its delay to every matching call until cleared."""
    fakes.gitlab.faults.set_latency("GET /api/v4/user", 0.2)
    headers = {"PRIVATE-TOKEN": fakes.seed.manager_token}
    started = time.monotonic()
    for _ in range(2):
        requests.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=5)
    assert time.monotonic() - started >= 0.4
    fakes.gitlab.faults.clear()
    assert fakes.gitlab.faults.latency_for("GET /api/v4/user") == 0


def test_calls_are_counted_per_route_and_user_agent(fakes: Fakes) -> None:
    """Counts split by route, and can be restricted to one client's User-Agent."""
    headers = {"PRIVATE-TOKEN": fakes.seed.manager_token}
    requests.get(
        f"{fakes.seed.gitlab_url}/api/v4/user",
        headers={**headers, "User-Agent": "rotator/0.1"},
        timeout=5,
    )
    requests.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers=headers, timeout=5)
    assert fakes.gitlab.call_counts() == {"GET /api/v4/user": 2}
    assert fakes.gitlab.call_counts(user_agent="rotator/") == {"GET /api/v4/user": 1}


def test_control_api_arms_faults_and_moves_the_clock_over_http(fakes: Fakes) -> None:
    """The /_fake/ routes let another process arm faults, read counts and move the clock."""
    base = fakes.seed.gitlab_url
    armed = httpx.post(f"{base}/_fake/faults", json={"route": CREATE, "kind": "fail", "status": 500})
    assert armed.status_code == 201
    assert httpx.get(f"{base}/_fake/faults").json()["faults"][0]["route"] == CREATE
    assert _create(fakes).status_code == 500
    assert httpx.get(f"{base}/_fake/calls").json() == {"counts": {CREATE: 1}}
    before = fakes.clock.now()
    httpx.post(f"{base}/_fake/clock", json={"advance_seconds": 86400})
    assert (fakes.clock.now() - before).days == 1
    assert httpx.post(f"{base}/_fake/faults", json={"route": CREATE, "kind": "nope"}).status_code == 400
    assert httpx.delete(f"{base}/_fake/faults").status_code == 204


@given(
    times=st.integers(min_value=1, max_value=20),
    requests_made=st.integers(min_value=0, max_value=40),
)
def test_a_fault_hits_exactly_times_requests(times: int, requests_made: int) -> None:
    """A fault armed for N requests hits min(N, requests made) of them, then is gone."""
    faults = Faults()
    faults.fail("GET /x", 500, times=times)
    hits = sum(faults.take("GET /x") is not None for _ in range(requests_made))
    assert hits == min(times, requests_made)
    assert (faults.pending() == []) == (requests_made >= times)


@given(route=st.sampled_from(["GET /a", "POST /a", "GET /b/1"]))
def test_globs_match_and_exact_names_do_not_leak(route: str) -> None:
    """A glob arms every matching route; an exact name arms only itself."""
    faults = Faults()
    faults.fail("GET *", 500, times=None)
    faults.fail("POST /a", 503, times=None)
    fault = faults.take(route)
    assert fault is not None
    assert fault.status == (503 if route == "POST /a" else 500)


def test_invalid_fault_arguments_are_refused() -> None:
    """Arming with times < 1 is a ValueError naming the rule."""
    with pytest.raises(ValueError, match="times must be at least 1"):
        Faults().fail("GET /x", 500, times=0)


def test_refusing_closes_the_port_then_listens_again_with_state_kept(fakes: Fakes) -> None:
    """Inside ``refusing()`` a connection is refused; after it, the same port answers, state intact."""
    before = _token_count(fakes)
    with fakes.gitlab.refusing(), pytest.raises(requests.ConnectionError):
        _create(fakes)
    assert _create(fakes).status_code == 201
    assert _token_count(fakes) == before + 1


def test_refusing_keeps_the_port_so_nothing_else_can_take_it(fakes: Fakes) -> None:
    """While refusing, the port is bound but not listening: a connect is refused and a bind fails."""
    parts = urllib.parse.urlsplit(fakes.seed.gitlab_url)
    host, port = str(parts.hostname), int(parts.port or 0)
    with fakes.gitlab.refusing():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=2).close()
        other = socket.socket()
        with other, pytest.raises(OSError, match="Address already in use"):
            other.bind((host, port))
    assert _create(fakes).status_code == 201


def test_redirect_and_foreign_next_point_a_client_at_another_host(fakes: Fakes, foreign: ForeignHost) -> None:
    """A redirect fault answers a Location on the other host; foreign_next moves the next link there."""
    base, headers = fakes.seed.gitlab_url, {"PRIVATE-TOKEN": fakes.seed.manager_token}
    fakes.gitlab.faults.redirect("GET /api/v4/projects/:id", foreign.url)
    moved = httpx.get(f"{base}/api/v4/projects/acme%2Fapp?x=1", headers=headers)
    assert (moved.status_code, moved.headers["Location"]) == (
        302,
        f"{foreign.url}/api/v4/projects/acme%2Fapp?x=1",
    )
    fakes.gitlab.faults.foreign_next("GET /api/v4/projects/:id/access_tokens", foreign.url)
    listed = requests.get(f"{base}/api/v4/projects/1/access_tokens", headers=headers, timeout=5)
    assert listed.status_code == 200
    assert listed.links["next"]["url"].startswith(f"{foreign.url}/api/v4/projects/1/access_tokens?")
    assert foreign.received() == []
    requests.get(listed.links["next"]["url"], headers=headers, timeout=5)
    assert [(r.method, r.credentials) for r in foreign.received()] == [("GET", ("private-token",))]


def test_a_credential_at_the_other_upstream_is_recorded(fakes: Fakes) -> None:
    """Each fake notes a request carrying the other's credential, and only such requests."""
    gitlab_token, infisical_token = fakes.seed.manager_token, fakes.seed.infisical_token
    connection = f"{fakes.seed.infisical_url}/api/v1/app-connections/gitlab/{fakes.seed.connection_ids[0]}"
    httpx.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers={"PRIVATE-TOKEN": gitlab_token})
    httpx.get(connection, headers={"Authorization": f"Bearer {infisical_token}"})
    assert fakes.gitlab.test_only_stranger_credentials() == []
    assert fakes.infisical.test_only_stranger_credentials() == []
    httpx.get(f"{fakes.seed.gitlab_url}/api/v4/user", headers={"Authorization": f"Bearer {infisical_token}"})
    httpx.get(connection, headers={"Cookie": f"a=b; session={gitlab_token}"})
    assert [c.credential_of for c in fakes.gitlab.test_only_stranger_credentials()] == ["infisical"]
    assert [c.credential_of for c in fakes.infisical.test_only_stranger_credentials()] == ["gitlab"]
