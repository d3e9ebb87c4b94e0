"""The fakes without a socket: an httpx transport and a requests adapter over their own dispatch.

The product's clients (httpx for Infisical, python-gitlab's requests session for GitLab) accept a
transport or a session; given these, each request goes straight to :meth:`FakeServer.dispatch`
in the calling thread, with the fakes' routing, counting, rate limits and faults unchanged. What
the client sees is what it would see over loopback, down to the exception types:

=========================  ============================  =====================================
fake's outcome             httpx raises                  requests raises
=========================  ============================  =====================================
nothing listening          ``ConnectError``              ``ConnectionError``
closed unanswered          ``RemoteProtocolError``       ``ConnectionError``
held past read timeout     ``ReadTimeout``               ``ReadTimeout``
=========================  ============================  =====================================

A ``hang`` or ``latency`` fault holds the request without waiting: the seconds are added up and
compared with the client's read timeout (the same outcome as waiting, in no time). A request is
routed by its host and port to the fake started there; another address is refused, like a port
nothing listens on. A fake that is stopped or inside :meth:`FakeServer.refusing` refuses too.
"""

import email.utils
import errno
import io
import os
import urllib.parse

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.client import RemoteDisconnected

import httpx
import requests
import requests.adapters
import urllib3

from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from rotator.testing._http import FakeServer, Request


__all__ = ["FakeAdapter", "FakeTransport", "Upstreams", "session_for"]

#: What http.server's ``send_response`` sends as ``Server`` (``server_version``, a space, and the
#: empty ``sys_version``); h11 strips the trailing space, http.client keeps it.
_SERVER = "fake "


class _Refused(Exception):  # noqa: N818 - what happened, as a client would say it
    """No fake listens at the address."""


class _Dropped(Exception):  # noqa: N818
    """The fake closed the connection without answering."""


class _TimedOut(Exception):  # noqa: N818
    """The fake held the request for at least the client's read timeout."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(slots=True)
class _Held:
    """Adds up the seconds the fake held one request for (see ``FakeServer.dispatch``)."""

    seconds: float = 0.0

    def __call__(self, seconds: float) -> None:
        self.seconds += seconds


@dataclass(frozen=True, slots=True)
class Upstreams:
    """The fakes a transport reaches, found by the host and port of their :attr:`FakeServer.url`."""

    servers: tuple[FakeServer, ...] = field(default=())
    #: Called after each request the fakes handled (answered or not), before the client hears:
    #: a test can stop the client right there, as a SIGKILL during the call would.
    after: Callable[[], None] | None = None

    def find(self, url: str) -> FakeServer | None:
        """The listening fake at ``url``'s host and port, if any."""
        wanted = _address(url)
        for server in self.servers:
            if server.listening and _address(server.url) == wanted:
                return server
        return None

    def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        read_timeout: float | None,
    ) -> _Answer:
        """One request through the fake's dispatch; raises what a socket would have shown."""
        server = self.find(url)
        if server is None:
            raise _Refused
        split = urllib.parse.urlsplit(url)
        lowered = {name.lower(): value for name, value in headers.items()}
        lowered.setdefault("host", split.netloc)  # urllib3 adds Host below requests' headers
        request = Request(
            method=method,
            path=split.path or "/",
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=lowered,
            body=body,
            client="127.0.0.1",
            host=lowered["host"],
        )
        held = _Held()
        response = server.dispatch(request, held)
        if self.after is not None:
            self.after()
        if read_timeout is not None and held.seconds >= read_timeout:
            raise _TimedOut
        if response is None:
            raise _Dropped
        payload, ctype = response.encode()
        # The order and the headers http.server's handler sends (rotator.testing._http._RequestHandler).
        merged = {"Content-Type": ctype, **response.headers}
        answer = [("Server", _SERVER), ("Date", email.utils.formatdate(usegmt=True)), *merged.items()]
        answer.append(("Content-Length", str(len(payload))))
        return _Answer(response.status, answer, b"" if method == "HEAD" else payload)


class FakeTransport(httpx.BaseTransport):
    """An httpx transport to the fakes (``httpx.Client(transport=FakeTransport(gitlab, infisical))``)."""

    def __init__(self, *servers: FakeServer, after: Callable[[], None] | None = None) -> None:
        """Reach ``servers`` (each by the address it was started on); see :attr:`Upstreams.after`."""
        self.upstreams = Upstreams(servers, after)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Hand ``request`` to its fake; raise what httpx raises over a socket when there is no answer."""
        timeouts = request.extensions.get("timeout", {})
        try:
            answer = self.upstreams.exchange(
                request.method, str(request.url), dict(request.headers), request.read(), timeouts.get("read")
            )
        except _Refused:
            refused = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
            raise httpx.ConnectError(str(refused), request=request) from refused
        except _Dropped:
            msg = "Server disconnected without sending a response."
            raise httpx.RemoteProtocolError(msg, request=request) from None
        except _TimedOut:
            msg = "timed out"
            raise httpx.ReadTimeout(msg, request=request) from TimeoutError(msg)
        headers = [(name, value.rstrip()) for name, value in answer.headers]  # as h11 reads them
        return httpx.Response(
            answer.status,
            headers=headers,
            stream=httpx.ByteStream(answer.body),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": _reason(answer.status).encode()},
        )


class FakeAdapter(requests.adapters.BaseAdapter):
    """A requests adapter to the fakes; see :func:`session_for`."""

    def __init__(self, *servers: FakeServer, after: Callable[[], None] | None = None) -> None:
        """Reach ``servers`` (each by the address it was started on); see :attr:`Upstreams.after`."""
        super().__init__()
        self.upstreams = Upstreams(servers, after)

    def send(  # noqa: PLR0913, PLR0917 - requests' own signature
        self,
        request: requests.PreparedRequest,
        stream: bool = False,  # noqa: FBT001, FBT002, ARG002 - requests' own signature; the body is in memory
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,  # noqa: FBT001, FBT002, ARG002 - no TLS here
        cert: object = None,  # noqa: ARG002
        proxies: Mapping[str, str] | None = None,  # noqa: ARG002
    ) -> requests.Response:
        """Hand ``request`` to its fake; raise what requests raises over a socket when there is no answer."""
        read = timeout[1] if isinstance(timeout, tuple) else timeout
        url = request.url or ""
        body = request.body or b""
        try:
            answer = self.upstreams.exchange(
                request.method or "GET",
                url,
                dict(request.headers),
                body.encode() if isinstance(body, str) else bytes(body),
                read,
            )
        except _Refused:
            refused = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
            raise requests.exceptions.ConnectionError(refused, request=request) from refused
        except _Dropped:
            lost = urllib3.exceptions.ProtocolError(
                "Connection aborted.", RemoteDisconnected("Remote end closed connection without response")
            )
            raise requests.exceptions.ConnectionError(lost, request=request) from None
        except _TimedOut:
            msg = f"Read timed out. (read timeout={read})"
            raise requests.exceptions.ReadTimeout(msg, request=request) from TimeoutError("timed out")
        return self._response(request, answer)

    def _response(self, request: requests.PreparedRequest, answer: _Answer) -> requests.Response:
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.body),
            headers=urllib3.HTTPHeaderDict(answer.headers),
            status=answer.status,
            reason=_reason(answer.status),
            preload_content=False,
            request_method=request.method,
            request_url=request.url,
        )
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.raw = raw
        response.reason = _reason(answer.status)
        response.url = request.url or ""
        response.encoding = get_encoding_from_headers(response.headers)
        response.request = request
        # As HTTPAdapter.build_response sets it (the stubs say only an HTTPAdapter can be there).
        response.connection = self  # type: ignore[assignment]
        return response

    def close(self) -> None:
        """Nothing to release: there are no connections."""


def session_for(*servers: FakeServer, after: Callable[[], None] | None = None) -> requests.Session:
    """A requests session whose every ``http://`` and ``https://`` request goes to ``servers``."""
    session = requests.Session()
    adapter = FakeAdapter(*servers, after=after)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _address(url: str) -> tuple[str, int | None]:
    split = urllib.parse.urlsplit(url)
    return (split.hostname or "", split.port)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
