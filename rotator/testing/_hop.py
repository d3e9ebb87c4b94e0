"""The fake Infisical's check of a new token: ``GET {instanceUrl}/api/v4/user``, as gitbeaker sends it.

When ``instanceUrl`` is a fake listening in this very process, with no fault or latency armed on
that route, the request goes straight to the fake's :meth:`~rotator.testing._http.FakeServer.dispatch`:
the same routing, counting, credential checks, rate limit and answer as over loopback, without an
HTTP client and an HTTP server in between (a quarter of the fakes' CPU per rotation went there). Anything
else (another host, a fake with a fault or latency on the route, a stopped one) goes over the
network through httpx, as before.
"""

import urllib.parse

from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import httpx

from rotator.testing._http import Request, listening_here


ROUTE = "GET /api/v4/user"
USER_AGENT = "infisical-gitbeaker"


@dataclass(frozen=True, slots=True)
class Answer:
    """GitLab's answer: status, reason phrase (as sent on the status line) and body."""

    status: int
    reason: str
    body: bytes


class HopError(Exception):
    """No answer came back; the text is httpx's (``[Errno 111] Connection refused`` ...)."""


def get_user(client: httpx.Client, base: str, token: str) -> Answer:
    """``GET {base}/api/v4/user`` with ``token`` in ``PRIVATE-TOKEN``; :class:`HopError` without an answer."""
    server = listening_here(base)
    if server is not None and server.faults.quiet(ROUTE):
        host = urllib.parse.urlsplit(base).netloc
        headers = {  # what httpx sends, names lower-cased as the fakes' HTTP layer gives them
            "host": host,
            "accept": "*/*",
            "accept-encoding": "gzip, deflate",
            "connection": "keep-alive",
            "user-agent": USER_AGENT,
            "private-token": token,
        }
        response = server.dispatch(Request("GET", "/api/v4/user", {}, headers, b"", "127.0.0.1", host))
        if response is None:  # a fault armed since the check above dropped it
            message = "Server disconnected without sending a response."
            raise HopError(message)
        # http.server's status line: the standard phrase, or none for a code it does not know.
        reason = BaseHTTPRequestHandler.responses.get(response.status, ("",))[0]
        return Answer(response.status, reason, response.encode()[0])
    try:
        answer = client.get(f"{base}/api/v4/user", headers={"PRIVATE-TOKEN": token, "User-Agent": USER_AGENT})
    except httpx.HTTPError as exc:
        raise HopError(str(exc)) from exc
    return Answer(answer.status_code, answer.reason_phrase, answer.content)
