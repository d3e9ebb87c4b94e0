"""The in-process transports answer as the fakes do over loopback: status, headers, body, failures."""

import re
import time

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests

from rotator.testing import Fakes, Fault, ForeignHost
from rotator.testing.transport import FakeTransport, session_for


VERSION = "GET /api/v4/version"
PROJECT = "GET /api/v4/projects/:id"
CONNECTION = "GET /api/v1/app-connections/gitlab/:connectionId"
TIMEOUT = 0.3

Outcome = tuple[Any, ...]
Send = Callable[[str, str, dict[str, str], dict[str, Any] | None], Outcome]


def _headers(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Response headers, names lower-cased, without the wall-clock ``Date`` (its value moves)."""
    return [(name.lower(), value) for name, value in pairs if name.lower() != "date"]


def _body(content: bytes) -> bytes:
    """The body less Infisical's random ``reqId`` (each answer has its own)."""
    return re.sub(rb'"reqId":"req-\w+"', b'"reqId":"req-X"', content)


def _chain(exc: BaseException) -> tuple[str, ...]:
    """The exception's type, then the types it wraps (at most the two the adapters look at)."""
    return (type(exc).__name__,)


def _httpx(client: httpx.Client) -> Send:
    def send(method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> Outcome:
        try:
            answer = client.request(method, url, headers=headers, json=body, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            return ("raised", *_chain(exc))
        return (
            "answered",
            answer.status_code,
            answer.reason_phrase,
            _headers(list(answer.headers.multi_items())),
            _body(answer.content),
        )

    return send


def _requests(session: requests.Session) -> Send:
    def send(method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> Outcome:
        try:
            answer = session.request(method, url, headers=headers, json=body, timeout=TIMEOUT)
        except requests.RequestException as exc:
            return ("raised", *_chain(exc))
        return (
            "answered",
            answer.status_code,
            answer.reason,
            _headers(list(answer.headers.items())),
            _body(answer.content),
        )

    return send


@pytest.fixture(params=["httpx", "requests"])
def clients(
    request: pytest.FixtureRequest, fakes: Fakes, foreign: ForeignHost
) -> Iterator[tuple[Send, Send]]:
    """(over loopback, in process): the same client library both ways, each with its defaults."""
    if request.param == "httpx":
        transport = FakeTransport(fakes.gitlab, fakes.infisical, foreign)
        with httpx.Client() as loopback, httpx.Client(transport=transport) as inside:
            yield _httpx(loopback), _httpx(inside)
        return
    with requests.Session() as session, session_for(fakes.gitlab, fakes.infisical, foreign) as fake:
        yield _requests(session), _requests(fake)


def _gitlab(fakes: Fakes, path: str) -> tuple[str, dict[str, str]]:
    return f"{fakes.seed.gitlab_url}/api/v4{path}", {"PRIVATE-TOKEN": fakes.seed.manager_token}


def _infisical(fakes: Fakes, path: str) -> tuple[str, dict[str, str]]:
    return f"{fakes.seed.infisical_url}/api/v1{path}", {
        "Authorization": f"Bearer {fakes.seed.infisical_token}"
    }


READS: dict[str, Callable[[Fakes], tuple[str, dict[str, str]]]] = {
    "gitlab version": lambda f: _gitlab(f, "/version"),
    "gitlab project by path": lambda f: _gitlab(f, "/projects/acme%2Fapp"),
    "gitlab token list with a query": lambda f: _gitlab(f, "/projects/acme%2Fapp/access_tokens?state=active"),
    "gitlab adopted token": lambda f: _gitlab(
        f, f"/projects/acme%2Fapp/access_tokens/{f.seed.adopt_token_ids[0]}"
    ),
    "gitlab user": lambda f: _gitlab(f, "/user"),
    "gitlab no such route": lambda f: _gitlab(f, "/nowhere"),
    "gitlab without credential": lambda f: (_gitlab(f, "/user")[0], {}),
    "infisical connection": lambda f: _infisical(f, f"/app-connections/gitlab/{f.seed.connection_ids[0]}"),
    "infisical unknown connection": lambda f: _infisical(f, "/app-connections/gitlab/nope"),
    "infisical without credential": lambda f: (_infisical(f, "/app-connections/gitlab/x")[0], {}),
}


@pytest.mark.parametrize("route", list(READS))
def test_a_read_answers_the_same_in_process(fakes: Fakes, clients: tuple[Send, Send], route: str) -> None:
    """ROUTE's status, reason, headers (less Date) and body are the same both ways."""
    loopback, inside = clients
    url, headers = READS[route](fakes)
    assert inside("GET", url, headers, None) == loopback("GET", url, headers, None)


def test_a_create_answers_the_same_shape_in_process(fakes: Fakes, clients: tuple[Send, Send]) -> None:
    """A token create: same status and header names both ways, a body with the same fields."""
    url, headers = _gitlab(fakes, "/projects/acme%2Fapp/access_tokens")
    body = {"name": "t", "scopes": ["api"], "expires_at": "2099-01-01", "access_level": 40}
    outcomes = [send("POST", url, headers, body) for send in clients]
    shapes = [
        (o[1], o[2], [n for n, _ in o[3]], sorted(httpx.Response(200, content=o[4]).json())) for o in outcomes
    ]
    assert shapes[0] == shapes[1]
    assert len(fakes.gitlab.state.tokens) >= 2  # both creates were applied


#: fault → what each client should see; (kind, status, shape, seconds)
FAULTS: dict[str, tuple[str, int, str | None, float]] = {
    "fail-500": ("fail", 500, None, 0.0),
    "fail-401-invalid-token": ("fail", 401, "invalid_token", 0.0),
    "fail-429": ("fail", 429, None, 0.0),
    "fail-429-bare": ("fail", 429, "bare", 0.0),
    "drop_before": ("drop_before", 0, None, 0.0),
    "drop_after": ("drop_after", 0, None, 0.0),
    "hang-short": ("hang", 0, None, TIMEOUT / 3),
    "hang-past-timeout": ("hang", 0, None, TIMEOUT * 2),
    "hang_after": ("hang_after", 0, None, TIMEOUT * 2),
    "latency-short": ("latency", 0, None, TIMEOUT / 3),
    "latency-past-timeout": ("latency", 0, None, TIMEOUT * 2),
    "redirect": ("redirect", 302, None, 0.0),
    "foreign_next": ("foreign_next", 200, None, 0.0),
}


@pytest.mark.parametrize("upstream", ["gitlab", "infisical"])
@pytest.mark.parametrize("mode", list(FAULTS))
def test_every_fault_mode_looks_the_same_in_process(
    fakes: Fakes, foreign: ForeignHost, clients: tuple[Send, Send], mode: str, upstream: str
) -> None:
    """MODE on a read: the same answer or the same exception both ways, and the same call recorded."""
    kind, status, shape, seconds = FAULTS[mode]
    server = fakes.gitlab if upstream == "gitlab" else fakes.infisical
    route = VERSION if upstream == "gitlab" else CONNECTION
    url, headers = (
        _gitlab(fakes, "/version")
        if upstream == "gitlab"
        else _infisical(fakes, f"/app-connections/gitlab/{fakes.seed.connection_ids[0]}")
    )
    seen: list[tuple[Outcome, list[int | None], list[Any]]] = []
    for send in clients:
        server.reset_calls()
        before = len(foreign.received())
        fault = server.faults.add(
            Fault(route, kind, status or 500, shape, seconds=seconds, location=foreign.url)  # type: ignore[arg-type]
        )
        outcome = send("GET", url, headers, None)
        assert fault.reached.wait(5)
        if kind == "latency":
            time.sleep(seconds)  # over loopback the fake answers after the client gave up: let it
        # requests follows a redirect by default, httpx does not: the same both ways all the same.
        seen.append((outcome, [c.status for c in server.calls(route)], foreign.received()[before:]))
    assert seen[0] == seen[1]


@pytest.mark.parametrize("upstream", ["gitlab", "infisical"])
def test_a_refusing_fake_refuses_in_process(fakes: Fakes, clients: tuple[Send, Send], upstream: str) -> None:
    """Inside ``refusing()``, and at an address no fake holds, both ways raise the same connect error."""
    server = fakes.gitlab if upstream == "gitlab" else fakes.infisical
    url = f"{server.url}/api/v4/version"
    with server.refusing():
        outcomes = [send("GET", url, {}, None) for send in clients]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "raised"
    inside = clients[1]
    assert inside("GET", "http://127.0.0.1:9/x", {}, None) == outcomes[0]
