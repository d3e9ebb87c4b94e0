"""The fake Infisical's check of a token with a fake GitLab in the same process answers as over loopback."""

import json

from collections.abc import Callable

import httpx
import pytest

from rotator.testing import Fakes
from rotator.testing._hop import ROUTE, USER_AGENT, Answer, HopError, get_user


def _closed_client() -> httpx.Client:
    """A client that cannot send: a call that reaches it has gone over the network."""
    client = httpx.Client()
    client.close()
    return client


def _seen(answer: Answer) -> tuple[int, str, object]:
    return answer.status, answer.reason, json.loads(answer.body) if answer.body else None


def _revoked(fakes: Fakes) -> str:
    token = fakes.gitlab.test_only_token(fakes.seed.adopt_token_ids[0])
    with fakes.gitlab.lock:
        token.revoked = True
    return token.value


TOKENS: dict[str, Callable[[Fakes], str]] = {
    "live": lambda fakes: fakes.seed.manager_token,
    "revoked": _revoked,
    "unknown": lambda _fakes: "glpat-" + "x" * 20,
    "the other fake's": lambda fakes: fakes.seed.infisical_token,
}


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_in_process_and_loopback_give_the_same_answer_and_count(fakes: Fakes, kind: str) -> None:
    """Status, reason phrase, body, and the call GitLab counts (route, agent, status, stranger) agree."""
    token = TOKENS[kind](fakes)
    gitlab = fakes.gitlab
    direct = get_user(_closed_client(), gitlab.url, token)  # no fault, no latency: in process
    gitlab.faults.set_latency(ROUTE, 0.001)  # a latency on the route sends it over loopback
    with httpx.Client() as client:
        looped = get_user(client, gitlab.url, token)
    assert _seen(direct) == _seen(looped)
    first, second = gitlab.calls(ROUTE)
    assert (first.route, first.user_agent, first.status, first.credential_of) == (
        second.route,
        second.user_agent,
        second.status,
        second.credential_of,
    )
    assert first.user_agent == USER_AGENT


def test_a_fault_on_the_route_goes_over_the_network(fakes: Fakes) -> None:
    """A dropped connection armed on the route is seen as httpx sees it: no answer."""
    fakes.gitlab.faults.drop_before(ROUTE)
    with httpx.Client() as client, pytest.raises(HopError, match="without sending a response"):
        get_user(client, fakes.gitlab.url, fakes.seed.manager_token)


def test_a_gitlab_refusing_connections_is_refused(fakes: Fakes) -> None:
    """A fake GitLab that stopped listening is not called in process: the connection is refused."""
    with fakes.gitlab.refusing(), httpx.Client() as client, pytest.raises(HopError, match="refused"):
        get_user(client, fakes.gitlab.url, fakes.seed.manager_token)
    assert fakes.gitlab.calls(ROUTE) == []
